"""Identical reads at the same time share one run.

A caller joins a run of the same key that has not started yet, never one already running: that
one began before the caller asked, and could miss what the caller has just done (a job submitted a
moment ago). So while one run of a key is in flight, the callers arriving meanwhile all wait for
the next one, which starts when it ends: at most two runs per key at once, one in flight and one
waiting, however many callers. Under load (hundreds of clients polling the same user's job list)
the login node and the scheduler do one command where they did hundreds; alone, a caller runs at
once as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def retrieve(fut: asyncio.Future[Any]) -> None:
    """A done callback for a future several callers share: its exception is theirs to handle, and
    when they have all gone (cancelled calls) it must not be logged as never retrieved."""
    if not fut.cancelled():
        fut.exception()


class _Run(Generic[T]):
    def __init__(self, prev: _Run[T] | None, fn: Callable[[], Awaitable[T]]):
        self.started = False
        self.task: asyncio.Task[T] = asyncio.ensure_future(self._go(prev, fn))
        self.task.add_done_callback(retrieve)

    async def _go(self, prev: _Run[T] | None, fn: Callable[[], Awaitable[T]]) -> T:
        if prev is not None and not prev.task.done():
            await asyncio.wait([prev.task])
        self.started = True
        return await fn()


class Coalescer(Generic[T]):
    """Runs of fn() by key; see the module's text. A caller that is cancelled leaves the run to the
    others (it is shielded), and every caller gets the run's result or its exception."""

    def __init__(self) -> None:
        self._latest: dict[Hashable, _Run[T]] = {}

    def __len__(self) -> int:
        return len(self._latest)

    async def run(self, key: Hashable, fn: Callable[[], Awaitable[T]]) -> T:
        run = self._latest.get(key)
        if run is None or run.started:
            run = self._latest[key] = _Run(run, fn)
            run.task.add_done_callback(lambda _: self._forget(key, run))
        return await asyncio.shield(run.task)

    def _forget(self, key: Hashable, run: _Run[T]) -> None:
        if self._latest.get(key) is run:
            del self._latest[key]
