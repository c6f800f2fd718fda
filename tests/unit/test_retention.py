"""Retention of finished tasks, on a real SQLite task store (no processes)."""

from __future__ import annotations

import asyncio
import time

from core.adapters.taskstore import TaskStore
from core.domain.errors import BackendUnavailable
from core.domain.tasks import Task, TaskState
from core.services.retention import GIVE_UP_AFTER, purge_expired

DAY = 86400.0


def _store(tmp_path) -> TaskStore:
    return TaskStore(tmp_path / "tasks.db")


def test_only_tasks_finished_before_the_retention_are_purged(tmp_path):
    store = _store(tmp_path)
    old = asyncio.run(store.create("alice", "job", "cluster"))
    asyncio.run(store.update(old.id, state=TaskState.SUCCEEDED, result={"jobId": "1"}))
    running = asyncio.run(store.create("alice", "job", "cluster"))
    asyncio.run(store.update(running.id, state=TaskState.RUNNING))
    fresh = asyncio.run(store.create("bob", "transfer.upload", "cluster"))
    asyncio.run(store.update(fresh.id, state=TaskState.FAILED))
    discarded: list[str] = []

    async def discard(t: Task) -> None:
        discarded.append(t.id)

    # 10 days later with a retention of 30 days: nothing goes
    assert asyncio.run(purge_expired(store, 30 * DAY, discard, now=time.time() + 10 * DAY)) == 0
    # 31 days later: both finished tasks go, with their directories; the running one stays
    assert asyncio.run(purge_expired(store, 30 * DAY, discard, now=time.time() + 31 * DAY)) == 2
    assert sorted(discarded) == sorted([old.id, fresh.id])
    assert asyncio.run(store.get_any(old.id)) is None and asyncio.run(store.get_any(fresh.id)) is None
    assert asyncio.run(store.get("alice", running.id)).state is TaskState.RUNNING


def test_a_directory_that_cannot_be_removed_keeps_its_task_for_a_while(tmp_path):
    store = _store(tmp_path)
    t = asyncio.run(store.create("alice", "job", "cluster"))
    asyncio.run(store.update(t.id, state=TaskState.SUCCEEDED))

    async def unreachable(_: Task) -> None:
        raise BackendUnavailable("cannot reach the login node")

    later = time.time() + 31 * DAY
    assert asyncio.run(purge_expired(store, 30 * DAY, unreachable, now=later)) == 0
    assert asyncio.run(store.get_any(t.id)) is not None
    # after the grace period the task row goes anyway (the directory is given up on)
    assert asyncio.run(purge_expired(store, 30 * DAY, unreachable, now=later + GIVE_UP_AFTER)) == 1
    assert asyncio.run(store.get_any(t.id)) is None
