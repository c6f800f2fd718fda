"""The TaskRepository contract, run against both stores: SQLite (a file) and PostgreSQL (the
stack's server, a database of its own). Two store objects on the same database stand for two
core replicas."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from core.adapters.pgtasks import PostgresTaskStore
from core.adapters.taskstore import TaskStore
from core.domain.errors import FailedPrecondition, InvalidArgument, NotFound, Reason
from core.domain.tasks import TaskError, TaskState
from tests.conftest import profile_up

DATABASE = "firecrest_contract"


@pytest.fixture(scope="module")
def pg_dsn(stack: dict[str, str]) -> str:
    from devstack import postgres
    from devstack.layout import load_layout

    profile_up("ha")  # the stack's PostgreSQL runs
    layout = load_layout()
    postgres.ensure_database(layout, DATABASE)
    return postgres.dsn(layout, DATABASE)


@pytest.fixture(params=["sqlite", "postgres"])
async def stores(request: Any, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """stores(poll_interval=...) -> a new store object on the same database (a 'replica')."""
    made: list[Any] = []
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgres" else ""

    def make(poll_interval: float = 0.2) -> Any:
        s = PostgresTaskStore(dsn, poll_interval=poll_interval) if dsn else TaskStore(
            tmp_path / "tasks.db", poll_interval=poll_interval
        )
        made.append(s)
        return s

    yield make
    for s in made:
        await s.close()


def owner() -> str:
    return f"u{uuid.uuid4().hex[:10]}"  # the PostgreSQL database outlives the test: fresh owners


async def test_create_get_and_isolation(stores):
    a, b = stores(), stores()
    alice, bob = owner(), owner()
    t, created = await a.create_or_get(alice, "job", "c", {"x": 1}, "req-1")
    same, again = await b.create_or_get(alice, "job", "c", {"x": 2}, "req-1")  # the retry, on another replica
    other, _ = await b.create_or_get(bob, "job", "c", {}, "req-1")
    assert created and not again and same.id == t.id != other.id and same.metadata == {"x": 1}
    assert (await b.get(alice, t.id)).id == t.id
    for call in (b.get(bob, t.id), b.cancel(bob, t.id), b.delete(bob, t.id), b.get(alice, "0" * 32)):
        with pytest.raises(NotFound):
            await call


async def test_concurrent_idempotent_creates_give_one_task(stores):
    replicas = [stores() for _ in range(3)]
    alice = owner()
    results = await asyncio.gather(*(r.create_or_get(alice, "job", "c", {}, "k") for r in replicas for _ in range(3)))
    assert len({t.id for t, _ in results}) == 1
    assert sum(created for _, created in results) == 1


async def test_updates_merge_and_final_states_never_change(stores):
    a, b = stores(), stores()
    alice = owner()
    t = await a.create(alice, "transfer.upload", "c", {"a": 1})
    t = await b.update(t.id, state=TaskState.RUNNING, progress=0.5, metadata={"b": 2})
    assert (t.state, t.progress, dict(t.metadata), t.version) == (TaskState.RUNNING, 0.5, {"a": 1, "b": 2}, 2)
    first, second = await asyncio.gather(
        a.update(t.id, state=TaskState.SUCCEEDED, result={"ok": True}),
        b.update(t.id, state=TaskState.FAILED, error=TaskError(Reason.INTERNAL, "late")),
    )
    final = await a.get(alice, t.id)
    assert final.done and final.end_time is not None
    assert final in (first, second) and final.version == 3  # one of them won, whole; the other changed nothing
    with pytest.raises(FailedPrecondition):
        await a.delete(alice, (await a.create(alice, "job", "c")).id)
    await b.delete(alice, t.id)
    assert await a.get_any(t.id) is None


async def test_list_find_active_and_counts(stores):
    s = stores()
    alice = owner()
    ids = [(await s.create(alice, "job" if i % 2 else "transfer.cp", "c", {"jobId": str(i)})).id for i in range(5)]
    await s.update(ids[1], state=TaskState.FAILED, error=TaskError(Reason.INTERNAL, "x"))
    seen, token = [], ""
    while True:
        page = await s.list(alice, page_size=2, page_token=token)
        seen += [t.id for t in page.tasks]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids))
    assert [t.id for t in (await s.list(alice, kind="job")).tasks] == [ids[3], ids[1]]
    assert [t.id for t in (await s.list(alice, state=TaskState.FAILED)).tasks] == [ids[1]]
    with pytest.raises(InvalidArgument):
        await s.list(alice, kind="transfer.cp", page_token=(await s.list(alice, kind="job", page_size=1)).next_page_token)
    assert [t.id for t in await s.find(alice, "job", "jobId", "3")] == [ids[3]]
    assert {t.id for t in await s.active(owner=alice)} == set(ids) - {ids[1]}
    counts = await s.count_by_state()
    assert counts[("job", "failed")] >= 1 and counts[("transfer.cp", "queued")] >= 3


def _statements(store: Any) -> list[str]:
    """The SQL statements the store sends from now on (each of its database connections traced)."""
    out: list[str] = []
    if isinstance(store, TaskStore):
        store._conn.set_trace_callback(out.append)
        store._reader.set_trace_callback(out.append)
        return out

    class Counted(psycopg.AsyncCursor):  # type: ignore[type-arg]
        async def execute(self, query: Any, params: Any = None, **kw: Any) -> Any:
            out.append(str(query))
            return await super().execute(query, params, **kw)

    idle = list(store._pool._pool)  # the pool's open connections (nothing is in use between calls)
    assert idle
    for conn in idle:
        conn.cursor_factory = Counted
    return out


async def test_a_task_read_is_one_statement(stores):
    """GET /tasks/{id} is one store.get: one indexed SELECT, whoever asks (sqlite-utils made three);
    SQLite answers a task read again, while its file has not changed, with no statement at all."""
    s = stores()
    kept = isinstance(s, TaskStore)
    alice = owner()
    t = await s.create(alice, "job", "c", {"jobId": "1"})
    await s.get(alice, t.id)
    sent = _statements(s)
    assert (await s.get(alice, t.id)).id == t.id
    if kept:
        assert sent == []
    else:
        assert len(sent) == 1 and sent[0].lower().startswith("select"), sent
    with pytest.raises(NotFound):
        await s.get(owner(), t.id)
    assert len(sent) == (0 if kept else 2), sent
    assert len((await s.list(alice, page_size=1)).tasks) == 1 and len(sent) == (1 if kept else 3), sent


async def test_a_kept_task_is_read_again_after_any_change_to_the_file(stores, tmp_path):
    """The SQLite store keeps the tasks it read until the database changes, whoever changes it: this
    store, another store on the same file, or another process."""
    a, b = stores(), stores()
    alice = owner()
    t = await a.create(alice, "job", "c", {"jobId": "1"})
    assert (await a.get(alice, t.id)).state is TaskState.QUEUED
    await b.update(t.id, state=TaskState.RUNNING)  # another replica (another connection)
    assert (await a.get(alice, t.id)).state is TaskState.RUNNING
    await a.update(t.id, progress=0.5)  # this store's own change
    assert (await a.get(alice, t.id)).progress == 0.5
    if isinstance(a, TaskStore):  # another process writing the file
        script = (
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute(\"update tasks set progress = 0.75, version = version + 1 where id = ?\", [sys.argv[2]]); "
            "c.commit(); c.close()"
        )
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, str(a.path), t.id)
        assert await proc.wait() == 0
        assert (await a.get(alice, t.id)).progress == 0.75
    await b.forget(t.id)
    with pytest.raises(NotFound):
        await a.get(alice, t.id)


async def test_a_watch_on_one_replica_wakes_on_another_replicas_change(stores, request):
    """Between PostgreSQL replicas a change is announced (NOTIFY), so a waiter whose polling is
    far slower than the test's patience still sees it; SQLite replicas see it by polling."""
    slow = 600.0 if "postgres" in request.node.callspec.id else 0.2
    watcher, writer = stores(poll_interval=slow), stores()
    alice = owner()
    t = await writer.create(alice, "job", "c")
    await watcher.get(alice, t.id)  # connected and listening

    async def finish() -> None:
        await asyncio.sleep(0.5)
        await writer.update(t.id, state=TaskState.RUNNING)
        await asyncio.sleep(0.5)
        await writer.update(t.id, state=TaskState.SUCCEEDED)

    async def follow() -> list[TaskState]:
        return [x.state async for x in watcher.watch(alice, t.id)]

    f = asyncio.create_task(finish())
    states = await asyncio.wait_for(follow(), 120)  # not notified: it would sleep for `slow`
    await f
    assert states[0] is TaskState.QUEUED and states[-1] is TaskState.SUCCEEDED
    done = await asyncio.wait_for(watcher.wait(alice, t.id, 300), 120)
    assert done.state is TaskState.SUCCEEDED


def test_a_wal_stamp_without_a_wal_index_never_matches(tmp_path):
    """No -shm file (or not asked to watch one): no stamp, so the store reads every task again."""
    from core.adapters.taskstore import WalStamp

    assert WalStamp(None)() is None
    assert WalStamp(tmp_path / "none.db")() is None
    (tmp_path / "short.db-shm").write_bytes(b"\0" * 100)  # not a wal-index
    assert WalStamp(tmp_path / "short.db")() is None
