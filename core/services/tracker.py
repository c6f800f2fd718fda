"""One task tracker for every kind of long work (jobs, transfers): the loop that follows
unfinished tasks until their work ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class TaskTracker:
    """Runs `pass_once()` (one pass over the unfinished tasks of a kind; True while some remain)
    again after `busy_interval` seconds while tasks remain, after `idle_interval` when none do, and
    at once after wake(). A failing pass is logged and retried; cancel the asyncio task running
    run() to stop it. Every replica of the core runs one per kind: a pass must be harmless when
    another replica makes the same one (the task store never lets a final state change)."""

    def __init__(
        self,
        name: str,
        pass_once: Callable[[], Awaitable[bool]],
        *,
        busy_interval: float,
        idle_interval: float,
        clock: Callable[[], float] = time.time,
        min_pass_gap: float = 0.0,
    ):
        self.name = name
        self._pass_once = pass_once
        self.busy_interval = busy_interval
        self.idle_interval = idle_interval
        self.clock = clock
        self.last_pass: float | None = None  # clock() when a pass last completed
        # a wake() starts the next pass at once, but never sooner than min_pass_gap after the
        # previous pass began (a burst of wakes costs one pass per gap, not one each)
        self.min_pass_gap = min_pass_gap
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Start the next pass now (a wake during a pass makes the next one start at once)."""
        self._wake.set()

    async def run(self) -> None:
        began: float | None = None
        while True:
            if began is not None and self.min_pass_gap > 0:
                await asyncio.sleep(max(0.0, began + self.min_pass_gap - time.monotonic()))
            began = time.monotonic()
            self._wake.clear()
            try:
                pending = await self._pass_once()
                self.last_pass = self.clock()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s tracker pass failed", self.name)
                pending = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.busy_interval if pending else self.idle_interval)
