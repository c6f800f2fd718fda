"""Retention: finished tasks are kept for a while (their results and errors stay readable), then
purged with what the gateway left in the user's home for them (a job's script directory, a
transfer's script and logs). What the user's own job wrote is never touched."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from core.domain.errors import GatewayError
from core.domain.tasks import Task, TaskRepository

log = logging.getLogger(__name__)

# a purge that cannot remove a task's directory (the user can no longer log in, the system is
# gone) retries on later passes, and gives up on the directory after this long past retention
GIVE_UP_AFTER = 7 * 86400.0


async def purge_expired(
    store: TaskRepository,
    retention: float,
    discard: Callable[[Task], Awaitable[None]],
    now: float | None = None,
    batch: int = 200,
) -> int:
    """Purge the tasks that ended more than `retention` seconds ago; returns how many."""
    now = time.time() if now is None else now
    purged = 0
    for task in await store.ended_before(now - retention, limit=batch):
        try:
            await discard(task)
        except GatewayError as e:
            if task.end_time is not None and task.end_time > now - retention - GIVE_UP_AFTER:
                log.info("task %s: its directory stays for now (%s)", task.id, e.message)
                continue
            log.warning("task %s: giving up on its directory (%s)", task.id, e.message)
        await store.forget(task.id)
        purged += 1
    return purged


async def purge_forever(
    store: TaskRepository,
    retention: float,
    discard: Callable[[Task], Awaitable[None]],
    interval: float,
) -> None:
    """The core's background loop around purge_expired."""
    while True:
        try:
            n = await purge_expired(store, retention, discard)
            if n:
                log.info("purged %d tasks older than %.0f s", n, retention)
        except Exception:
            log.exception("task purge failed; retrying in %.0f s", interval)
        await asyncio.sleep(interval)
