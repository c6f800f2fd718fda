"""Task stores: the SQLite one (embedded, the default, one core) and what every store shares.

A task store implements core.domain.tasks.TaskRepository (see its docstring for the API). The
row in the database is the truth; waiters and watchers are woken early by a notifier (within a
process, and across replicas for stores that can: PostgreSQL's LISTEN/NOTIFY) and also re-read
the row every `poll_interval` seconds, so a change made by another process is always seen.

SQLite (WAL mode) runs on one thread of its own: the event loop never waits for the database
(a locked file blocks that thread, never the RPCs that do not touch tasks). Updates run in
`BEGIN IMMEDIATE` transactions, so two processes on one file cannot interleave a read and a write.
PostgreSQL: core.adapters.pgtasks.

Kinds are short dotted names: "job", "transfer.upload", ... A task's `system` is the system name
it acts on. Errors are core.domain.tasks.TaskError(reason, message, metadata).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import mmap
import os
import re
import sqlite3
import struct
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from core.domain.errors import BackendUnavailable, FailedPrecondition, InvalidArgument, NotFound, Reason
from core.domain.tasks import (
    TASK_ID,
    Task,
    TaskError,
    TaskPage,
    TaskState,
    check_kind,
    check_request_id,
    decode_page_token,
    encode_page_token,
    filter_signature,
    page_size,
    plan_update,
)

TABLE = "tasks"
T = TypeVar("T")


def _now_us() -> int:
    return time.time_ns() // 1000


def _loads(v: Any) -> Any:
    if v is None or v == "":
        return None
    return json.loads(v) if isinstance(v, str) else v


def row_to_task(row: Mapping[str, Any]) -> Task:
    err = _loads(row["error"])
    return Task(
        id=row["id"],
        owner=row["owner"],
        kind=row["kind"],
        system=row["system"],
        state=TaskState(row["state"]),
        progress=float(row["progress"] or 0.0),
        metadata=_loads(row["metadata"]) or {},
        result=_loads(row["result"]),
        error=TaskError.from_dict(err) if err else None,
        request_id=row["request_id"],
        create_time=row["create_us"] / 1e6,
        update_time=row["update_us"] / 1e6,
        end_time=row["end_us"] / 1e6 if row["end_us"] is not None else None,
        version=int(row["version"]),
    )


def task_to_row(t: Task) -> dict[str, Any]:
    return {
        "id": t.id,
        "owner": t.owner,
        "kind": t.kind,
        "system": t.system,
        "state": t.state.value,
        "progress": t.progress,
        "metadata": json.dumps(dict(t.metadata)),
        "result": json.dumps(dict(t.result)) if t.result is not None else None,
        "error": json.dumps(t.error.to_dict()) if t.error is not None else None,
        "request_id": t.request_id,
        "create_us": round(t.create_time * 1e6),
        "update_us": round(t.update_time * 1e6),
        "end_us": round(t.end_time * 1e6) if t.end_time is not None else None,
        "version": t.version,
    }


def new_task(owner: str, kind: str, system: str, metadata: Mapping[str, Any], request_id: str | None) -> Task:
    check_kind(kind)
    now = _now_us() / 1e6
    return Task(
        id=uuid.uuid4().hex,
        owner=owner,
        kind=kind,
        system=system,
        state=TaskState.QUEUED,
        progress=0.0,
        metadata=dict(metadata),
        result=None,
        error=None,
        request_id=check_request_id(request_id),
        create_time=now,
        update_time=now,
        end_time=None,
        version=1,
    )


COLUMNS = tuple(task_to_row(new_task("o", "k", "s", {}, None)))
_METADATA_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_metadata_key(key: str) -> str:
    if not _METADATA_KEY.fullmatch(key):
        raise InvalidArgument(f"invalid metadata key {key!r}")
    return key


def owner_filters(
    owner: str, state: TaskState | None, kind: str | None, system: str | None, placeholder: str
) -> tuple[list[str], list[Any]]:
    """The WHERE clauses and values of a task listing (the SQL placeholder is the driver's)."""
    where, args = [f"owner = {placeholder}"], [owner]
    for column, value in (("state", state.value if state is not None else None), ("kind", kind), ("system", system)):
        if value:
            where.append(f"{column} = {placeholder}")
            args.append(value)
    return where, args


class _Notifier:
    """Wakes asyncio waiters of a task id, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def register(self, task_id: str) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.setdefault(task_id, set()).add(entry)
        return entry

    def unregister(self, task_id: str, entry: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            s = self._waiters.get(task_id)
            if s is not None:
                s.discard(entry)
                if not s:
                    del self._waiters[task_id]

    def notify_all(self) -> None:
        with self._lock:
            ids = list(self._waiters)
        for task_id in ids:
            self.notify(task_id)

    def notify(self, task_id: str) -> None:
        with self._lock:
            entries = list(self._waiters.get(task_id, ()))
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, ev in entries:
            if loop is running:
                ev.set()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(ev.set)


class WaitingStore:
    """What every store shares: owner checks, cancel/delete on top of update/forget, and wait/
    watch on top of get + a notifier + polling. A subclass implements the storage calls."""

    poll_interval: float

    def __init__(self, poll_interval: float) -> None:
        self.poll_interval = poll_interval
        self._releasing = False
        self._notifier = _Notifier()

    async def get_any(self, task_id: str) -> Task | None:
        raise NotImplementedError

    async def update(
        self,
        task_id: str,
        *,
        state: TaskState | None = None,
        progress: float | None = None,
        result: Mapping[str, Any] | None = None,
        error: TaskError | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Task:
        raise NotImplementedError

    async def forget(self, task_id: str) -> None:
        raise NotImplementedError

    async def create_or_get(
        self, owner: str, kind: str, system: str, metadata: Mapping[str, Any], request_id: str | None = None
    ) -> tuple[Task, bool]:
        raise NotImplementedError

    async def create(
        self,
        owner: str,
        kind: str,
        system: str,
        metadata: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> Task:
        return (await self.create_or_get(owner, kind, system, metadata or {}, request_id))[0]

    async def get(self, owner: str, task_id: str) -> Task:
        t = await self.get_any(task_id)
        if t is None or t.owner != owner:
            # the same answer for "does not exist" and "not yours": ids do not leak
            raise NotFound(f"task '{task_id}' not found", metadata={"task_id": task_id})
        return t

    async def cancel(self, owner: str, task_id: str, message: str = "cancelled by its owner") -> Task:
        t = await self.get(owner, task_id)
        if t.done:
            return t
        return await self.update(
            task_id, state=TaskState.CANCELLED, error=TaskError(Reason.FAILED_PRECONDITION, message)
        )

    async def delete(self, owner: str, task_id: str) -> None:
        t = await self.get(owner, task_id)
        if not t.done:
            raise FailedPrecondition(
                f"task '{task_id}' is {t.state.value}: cancel it or wait until it is done before deleting it",
                metadata={"task_id": task_id, "state": t.state.value},
            )
        await self.forget(task_id)

    # ---- waiting -------------------------------------------------------------------------------
    async def wait(self, owner: str, task_id: str, timeout: float) -> Task:
        """The task once it is done, or as it is when `timeout` seconds have passed."""
        deadline = time.monotonic() + max(0.0, timeout)
        entry = self._notifier.register(task_id)
        try:
            while True:
                entry[1].clear()
                t = await self.get(owner, task_id)
                remaining = deadline - time.monotonic()
                if t.done or remaining <= 0 or self._releasing:
                    return t
                await self._sleep(entry[1], min(remaining, self.poll_interval))
        finally:
            self._notifier.unregister(task_id, entry)

    async def watch(self, owner: str, task_id: str) -> AsyncIterator[Task]:
        """The task now, then after every change, until (and including) its final state. Raises
        NotFound if it does not exist (or is deleted meanwhile)."""
        entry = self._notifier.register(task_id)
        try:
            seen = -1
            while True:
                entry[1].clear()
                t = await self.get(owner, task_id)
                if t.version != seen:
                    seen = t.version
                    yield t
                if t.done:
                    return
                if self._releasing:
                    raise BackendUnavailable("the gateway is restarting: watch the task again")
                await self._sleep(entry[1], self.poll_interval)
        finally:
            self._notifier.unregister(task_id, entry)

    def release_waiters(self) -> None:
        """For a stopping server: every wait() answers the task as it is now and every watch()
        ends with BackendUnavailable (the client watches again), instead of holding the
        shutdown for their whole timeout."""
        self._releasing = True
        self._notifier.notify_all()

    @staticmethod
    async def _sleep(ev: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ev.wait(), timeout=seconds)


class WalStamp:
    """Whether a SQLite database in WAL mode may have changed since an earlier look, read without a
    system call and without SQLite: the wal-index header, the first 48 bytes of the `-shm` file
    that every connection to the database maps (https://www.sqlite.org/walformat.html), changes
    with every commit (its mxFrame, iChange and frame checksum) and every WAL reset (its salts),
    whoever commits: this process's connections or another process's. A torn read (a commit being
    published as it is read) only differs from the last stamp: a change is never missed, at worst
    one is seen too early.

    Why not a query: each SQLite call releases the GIL, and under load the gRPC poller thread
    takes it each time, so even a one-row SELECT by primary key cost the event loop 36 us per
    call (a task GET at 500 connections: 4,274 instead of 5,090 req/s).

    The map stays valid while a connection of this process holds the database open: SQLite
    truncates the -shm file only when a connection opens it with no other connection on it."""

    HEADER = 48
    WAL_INDEX_VERSION = 3007000

    def __init__(self, db: Path | None):
        """db: the database file (None: a stamp that never matches, no caching)."""
        self._map: mmap.mmap | None = None
        if db is None:
            return
        try:
            fd = os.open(f"{db}-shm", os.O_RDONLY)
        except OSError:
            return
        try:
            if os.fstat(fd).st_size >= mmap.PAGESIZE:
                self._map = mmap.mmap(fd, mmap.PAGESIZE, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
        # iVersion (native byte order) and isInit: anything else is a format this class does not know
        if self._map is not None and (
            struct.unpack_from("=I", self._map, 0)[0] != self.WAL_INDEX_VERSION or self._map[12] != 1
        ):
            self.close()

    def __call__(self) -> bytes | None:
        """The current stamp; None when the database cannot be watched this way (never equal)."""
        return None if self._map is None else self._map[: self.HEADER]

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None


class TaskStore(WaitingStore):
    """Tasks in one SQLite file (the embedded default: one core, or several processes on one
    host). Every database call runs on the store's own thread, but for reading one task by id
    (GET /tasks/{id}, the call polled most): one indexed SELECT on a reading connection of the
    event loop's own, which in WAL mode never waits for a writer. Should it be busy all the same
    (a checkpoint, another process recovering the file), it does not wait: the read goes to the
    thread, whose connection waits its turn.

    The tasks read that way are kept (up to TASKS_KEPT) until the database changes (WalStamp: any
    commit by any connection or process empties the cache), so polling a task that has not changed
    makes no database call at all."""

    TASKS_KEPT = 4096

    def __init__(self, path: str | Path, *, poll_interval: float = 2.0):
        super().__init__(poll_interval)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-tasks")
        self._conn = sqlite3.connect(
            str(self.path), check_same_thread=False, timeout=30, isolation_level=None
        )
        self._conn.row_factory = sqlite3.Row
        self._thread.submit(self._schema).result()
        self._reader = sqlite3.connect(str(self.path), check_same_thread=False, timeout=0, isolation_level=None)
        self._reader.row_factory = sqlite3.Row
        self._reader.execute(f"select 1 from {TABLE} limit 1").fetchall()  # noqa: S608 (maps the -shm file)
        # only a database in WAL mode has a live wal-index (a file system without shared memory
        # leaves the rollback journal, and a -shm file there would be a stale one)
        wal = str(self._reader.execute("pragma journal_mode").fetchone()[0]).lower() == "wal"
        self._stamp = WalStamp(self.path) if wal else WalStamp(None)
        self._kept_at: bytes | None = None
        self._kept: dict[str, Task] = {}

    def _schema(self) -> None:
        c = self._conn
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("PRAGMA synchronous=NORMAL")
        c.execute(
            f"""create table if not exists {TABLE} (
                id text primary key, owner text not null, kind text not null, system text not null,
                state text not null, progress float, metadata text, result text, error text,
                request_id text, create_us integer not null, update_us integer not null,
                end_us integer, version integer not null)"""
        )
        c.execute(f"create unique index if not exists idx_tasks_owner_request_id on {TABLE} (owner, request_id)")
        c.execute(f"create index if not exists idx_tasks_owner_create_us_id on {TABLE} (owner, create_us, id)")
        c.execute(f"create index if not exists idx_tasks_state on {TABLE} (state)")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _rows(self, where: str, args: builtins.list[Any], order: str = "", limit: int = 0) -> builtins.list[Task]:
        sql = f"select * from {TABLE} where {where}"  # noqa: S608 (fixed clauses, values bound)
        if order:
            sql += f" order by {order}"
        if limit:
            sql += f" limit {int(limit)}"
        return [row_to_task(r) for r in self._conn.execute(sql, args).fetchall()]

    async def close(self) -> None:
        self._stamp.close()
        self._kept.clear()
        self._reader.close()
        await self._run(self._conn.close)
        self._thread.shutdown(wait=False)

    # ---- create / read -------------------------------------------------------------------------
    async def create_or_get(
        self,
        owner: str,
        kind: str,
        system: str,
        metadata: Mapping[str, Any],
        request_id: str | None = None,
    ) -> tuple[Task, bool]:
        return await self._run(self._create_or_get, new_task(owner, kind, system, metadata, request_id))

    def _create_or_get(self, task: Task) -> tuple[Task, bool]:
        if task.request_id is not None:
            existing = self._rows("owner = ? and request_id = ?", [task.owner, task.request_id], limit=1)
            if existing:
                return existing[0], False
        row = task_to_row(task)
        try:
            self._conn.execute(
                f"insert into {TABLE} ({', '.join(COLUMNS)}) values ({', '.join('?' * len(COLUMNS))})",  # noqa: S608
                [row[c] for c in COLUMNS],
            )
        except sqlite3.IntegrityError:
            # another process won the race for this (owner, request_id)
            existing = self._rows("owner = ? and request_id = ?", [task.owner, task.request_id or ""], limit=1)
            if not existing:
                raise
            return existing[0], False
        return task, True

    async def get_any(self, task_id: str) -> Task | None:
        if not TASK_ID.match(task_id or ""):
            return None
        stamp = self._stamp()  # taken before the read: a commit after it empties the cache
        if stamp is None or stamp != self._kept_at:
            self._kept.clear()
            self._kept_at = stamp
        else:
            kept = self._kept.get(task_id)
            if kept is not None:
                return kept
        try:
            # fetchall: the statement runs to its end, so no read transaction stays open
            rows = self._reader.execute(f"select * from {TABLE} where id = ?", [task_id]).fetchall()  # noqa: S608
        except sqlite3.OperationalError:  # busy: no waiting on the event loop (see the class's text)
            tasks = await self._run(self._rows, "id = ?", [task_id], "", 1)
            return tasks[0] if tasks else None
        if not rows:
            return None
        task = row_to_task(rows[0])
        if stamp is not None:  # == self._kept_at: nothing since the stamp above awaited
            if len(self._kept) >= self.TASKS_KEPT:
                self._kept.clear()
            self._kept[task_id] = task
        return task

    async def list(
        self,
        owner: str,
        *,
        state: TaskState | None = None,
        kind: str | None = None,
        system: str | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> TaskPage:
        size = _page_size(page_size)
        where, args = owner_filters(owner, state, kind, system, "?")
        sig = filter_signature(state, kind, system)
        if page_token:
            c_us, last_id = decode_page_token(page_token, sig)
            where.append("(create_us < ? or (create_us = ? and id < ?))")
            args += [c_us, c_us, last_id]
        rows = await self._run(self._rows, " and ".join(where), args, "create_us desc, id desc", size + 1)
        token = ""
        if len(rows) > size:
            last = rows[size - 1]
            token = encode_page_token(round(last.create_time * 1e6), last.id, sig)
        return TaskPage(rows[:size], token)

    async def find(self, owner: str, kind: str, key: str, value: str) -> builtins.list[Task]:
        check_metadata_key(key)
        return await self._run(
            self._rows,
            "owner = ? and kind = ? and json_extract(metadata, ?) = ?",
            [owner, kind, f"$.{key}", value],
            "create_us desc, id desc",
        )

    async def active(self, kind: str | None = None, owner: str | None = None) -> builtins.list[Task]:
        where = ["state in (?, ?)"]
        args: builtins.list[Any] = [TaskState.QUEUED.value, TaskState.RUNNING.value]
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if owner:
            where.append("owner = ?")
            args.append(owner)
        return await self._run(self._rows, " and ".join(where), args, "create_us")

    async def ended_before(self, cutoff: float, limit: int = 200) -> builtins.list[Task]:
        """Finished tasks (of every owner) that ended before `cutoff` (epoch seconds), oldest first."""
        return await self._run(self._rows, "end_us is not null and end_us < ?", [int(cutoff * 1e6)], "end_us", limit)

    async def count_by_state(self) -> dict[tuple[str, str], int]:
        def count() -> dict[tuple[str, str], int]:
            rows = self._conn.execute(f"select kind, state, count(*) from {TABLE} group by kind, state")  # noqa: S608
            return {(k, s): n for k, s, n in rows.fetchall()}

        return await self._run(count)

    # ---- changes -------------------------------------------------------------------------------
    async def update(
        self,
        task_id: str,
        *,
        state: TaskState | None = None,
        progress: float | None = None,
        result: Mapping[str, Any] | None = None,
        error: TaskError | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Task:
        changes = {"state": state, "progress": progress, "result": result, "error": error, "metadata": metadata}
        task, changed = await self._run(self._update, task_id, changes)
        if changed:
            self._notifier.notify(task_id)
        return task

    def _update(self, task_id: str, changes: dict[str, Any]) -> tuple[Task, bool]:
        c = self._conn
        c.execute("begin immediate")
        try:
            rows = self._rows("id = ?", [task_id], limit=1)
            if not rows:
                raise NotFound(f"task '{task_id}' not found", metadata={"task_id": task_id})
            after = plan_update(rows[0], _now_us() / 1e6, **changes)
            if after is not None:
                row = task_to_row(after)
                cols = [k for k in COLUMNS if k != "id"]
                c.execute(
                    f"update {TABLE} set {', '.join(f'{k} = ?' for k in cols)} where id = ?",  # noqa: S608
                    [*(row[k] for k in cols), task_id],
                )
            c.execute("commit")
        except BaseException:
            c.execute("rollback")
            raise
        return (after, True) if after is not None else (rows[0], False)

    async def forget(self, task_id: str) -> None:
        await self._run(self._conn.execute, f"delete from {TABLE} where id = ?", [task_id])  # noqa: S608
        self._notifier.notify(task_id)


def _page_size(requested: int) -> int:
    return page_size(requested)
