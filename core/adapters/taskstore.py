"""The task store: every task of the gateway in one SQLite table (WAL mode), through sqlite-utils.

The SQLite row is the truth; an in-process notifier only wakes waiters early (they also re-read
the row every `poll_interval` seconds, so a change made by another process is seen too).

API (all synchronous calls are short and thread-safe; the async ones must run on an event loop):

    store = TaskStore(path)                                       # creates the schema, WAL on
    store.create(owner, kind, system, metadata, request_id=None) -> Task
        A new QUEUED task. Idempotent per (owner, request_id): the same key returns the first
        task (whatever its state) instead of creating a second one.
    store.create_or_get(owner, kind, system, metadata, request_id=None) -> (Task, created: bool)
    store.get(owner, task_id) -> Task            NotFound for unknown ids *and* other owners' tasks
    store.get_any(task_id) -> Task | None        internal: no owner check
    store.list(owner, state=None, kind=None, system=None, page_size=50, page_token="") -> TaskPage
        The owner's tasks, newest first, keyset-paginated (the token encodes the last row seen and
        the filters; reusing it with other filters is InvalidArgument).
    store.update(task_id, state=None, progress=None, result=None, error=None, metadata=None) -> Task
        Changes a task and wakes its waiters (callable from any thread). metadata is merged into the existing dict; result
        replaces it. Entering a final state sets end_time (progress 1.0 on success). A task that
        is already final is never changed: the call returns it as it is.
    store.cancel(owner, task_id, message=...) -> Task
        Marks a not-yet-final task CANCELLED with an error (google.rpc code CANCELLED at the API;
        the fixed ErrorReason set has no CANCELLED, so the reason is FAILED_PRECONDITION); a final
        task is returned unchanged. Stopping the actual work is the caller's business (the Tasks
        API calls the kind's canceller instead when there is one, e.g. scancel for kind "job").
    store.delete(owner, task_id) -> None         only final tasks (else FailedPrecondition)
    store.forget(task_id) -> None                internal: drop a task whatever its state
    store.find(owner, kind, key, value) -> list[Task]   the owner's tasks with metadata[key] == value
    store.active(kind=None, owner=None) -> list[Task]   unfinished tasks of all owners (reconcilers)
    await store.wait(owner, task_id, timeout) -> Task   returns when done or after timeout
    async for t in store.watch(owner, task_id): ...     the task now and after every change,
                                                        ending after the final state
    store.release_waiters()                       shutdown: waits answer now, watches end (503)
    store.close()

Kinds are short dotted names: "job", "transfer.upload", ... A task's `system` is the system name
it acts on. Errors are core.domain.tasks.TaskError(reason, message, metadata).
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import hashlib
import json
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from core.domain.errors import BackendUnavailable, FailedPrecondition, InvalidArgument, NotFound, Reason
from core.domain.tasks import (
    TASK_ID,
    Task,
    TaskError,
    TaskPage,
    TaskState,
    check_kind,
    check_request_id,
)

TABLE = "tasks"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def _now_us() -> int:
    return time.time_ns() // 1000


def _loads(v: Any) -> Any:
    if v is None or v == "":
        return None
    return json.loads(v) if isinstance(v, str) else v


def _row_to_task(row: Mapping[str, Any]) -> Task:
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


class TaskStore:
    """Tasks in SQLite; see the module docstring for the API."""

    def __init__(self, path: str | Path, *, poll_interval: float = 2.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.poll_interval = poll_interval
        self._releasing = False
        conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self.db = sqlite_utils.Database(conn)
        self._lock = threading.RLock()
        self._notifier = _Notifier()
        with self._lock:
            self.db.enable_wal()
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA busy_timeout=30000")
            self._schema()

    def _schema(self) -> None:
        t = self.db.table(TABLE)
        if not t.exists():
            t.create(
                {
                    "id": str,
                    "owner": str,
                    "kind": str,
                    "system": str,
                    "state": str,
                    "progress": float,
                    "metadata": str,
                    "result": str,
                    "error": str,
                    "request_id": str,
                    "create_us": int,
                    "update_us": int,
                    "end_us": int,
                    "version": int,
                },
                pk="id",
                not_null={"owner", "kind", "system", "state", "create_us", "update_us", "version"},
            )
        t.create_index(["owner", "request_id"], unique=True, if_not_exists=True)
        t.create_index(["owner", "create_us", "id"], if_not_exists=True)
        t.create_index(["state"], if_not_exists=True)

    @property
    def _t(self) -> sqlite_utils.db.Table:
        return self.db.table(TABLE)

    def close(self) -> None:
        with self._lock:
            self.db.close()

    # ---- create / read -------------------------------------------------------------------------
    def create(
        self,
        owner: str,
        kind: str,
        system: str,
        metadata: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> Task:
        return self.create_or_get(owner, kind, system, metadata or {}, request_id)[0]

    def create_or_get(
        self,
        owner: str,
        kind: str,
        system: str,
        metadata: Mapping[str, Any],
        request_id: str | None = None,
    ) -> tuple[Task, bool]:
        check_kind(kind)
        request_id = check_request_id(request_id)
        now = _now_us()
        row = {
            "id": uuid.uuid4().hex,
            "owner": owner,
            "kind": kind,
            "system": system,
            "state": TaskState.QUEUED.value,
            "progress": 0.0,
            "metadata": json.dumps(dict(metadata)),
            "result": None,
            "error": None,
            "request_id": request_id,
            "create_us": now,
            "update_us": now,
            "end_us": None,
            "version": 1,
        }
        with self._lock:
            if request_id is not None:
                existing = self._by_request_id(owner, request_id)
                if existing is not None:
                    return existing, False
            try:
                self._t.insert(row)
            except sqlite3.IntegrityError:
                # another process won the race for this (owner, request_id)
                existing = self._by_request_id(owner, request_id or "")
                if existing is None:
                    raise
                return existing, False
            return _row_to_task(row), True

    def _by_request_id(self, owner: str, request_id: str) -> Task | None:
        rows = list(self._t.rows_where("owner = ? and request_id = ?", [owner, request_id], limit=1))
        return _row_to_task(rows[0]) if rows else None

    def get_any(self, task_id: str) -> Task | None:
        if not TASK_ID.match(task_id or ""):
            return None
        with self._lock:
            rows = list(self._t.rows_where("id = ?", [task_id], limit=1))
        return _row_to_task(rows[0]) if rows else None

    def get(self, owner: str, task_id: str) -> Task:
        t = self.get_any(task_id)
        if t is None or t.owner != owner:
            # the same answer for "does not exist" and "not yours": ids do not leak
            raise NotFound(f"task '{task_id}' not found", metadata={"task_id": task_id})
        return t

    def list(
        self,
        owner: str,
        *,
        state: TaskState | None = None,
        kind: str | None = None,
        system: str | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> TaskPage:
        if page_size < 0:
            raise InvalidArgument("page_size must not be negative")
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        where = ["owner = ?"]
        args: list[Any] = [owner]
        if state is not None:
            where.append("state = ?")
            args.append(state.value)
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if system:
            where.append("system = ?")
            args.append(system)
        sig = self._filter_sig(state, kind, system)
        if page_token:
            c_us, last_id = self._decode_token(page_token, sig)
            where.append("(create_us < ? or (create_us = ? and id < ?))")
            args += [c_us, c_us, last_id]
        with self._lock:
            rows = list(
                self._t.rows_where(
                    " and ".join(where), args, order_by="create_us desc, id desc", limit=size + 1
                )
            )
        tasks = [_row_to_task(r) for r in rows[:size]]
        token = ""
        if len(rows) > size:
            last = rows[size - 1]
            token = self._encode_token(last["create_us"], last["id"], sig)
        return TaskPage(tasks, token)

    def find(self, owner: str, kind: str, key: str, value: str) -> builtins.list[Task]:
        """The owner's tasks of a kind whose metadata[key] == value (e.g. a job's task by its
        jobId), newest first."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise InvalidArgument(f"invalid metadata key {key!r}")
        with self._lock:
            rows = list(
                self._t.rows_where(
                    "owner = ? and kind = ? and json_extract(metadata, ?) = ?",
                    [owner, kind, f"$.{key}", value],
                    order_by="create_us desc, id desc",
                )
            )
        return [_row_to_task(r) for r in rows]

    def count_by_state(self) -> dict[tuple[str, str], int]:
        """{(kind, state): number of tasks} over all owners (for the operator's metrics)."""
        with self._lock:
            rows = self.db.execute("select kind, state, count(*) from tasks group by kind, state").fetchall()
        return {(k, s): n for k, s, n in rows}

    def active(self, kind: str | None = None, owner: str | None = None) -> builtins.list[Task]:
        where = ["state in (?, ?)"]
        args: list[Any] = [TaskState.QUEUED.value, TaskState.RUNNING.value]
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if owner:
            where.append("owner = ?")
            args.append(owner)
        with self._lock:
            rows = list(self._t.rows_where(" and ".join(where), args, order_by="create_us"))
        return [_row_to_task(r) for r in rows]

    def ended_before(self, cutoff: float, limit: int = 200) -> builtins.list[Task]:
        """Finished tasks (of every owner) that ended before `cutoff` (epoch seconds), oldest first."""
        with self._lock:
            rows = list(
                self._t.rows_where(
                    "end_us is not null and end_us < ?", [int(cutoff * 1e6)], order_by="end_us", limit=limit
                )
            )
        return [_row_to_task(r) for r in rows]

    # ---- pagination tokens ---------------------------------------------------------------------
    @staticmethod
    def _filter_sig(state: TaskState | None, kind: str | None, system: str | None) -> str:
        raw = f"{state.value if state else ''}\0{kind or ''}\0{system or ''}"
        return hashlib.sha256(raw.encode()).hexdigest()[:12]

    @staticmethod
    def _encode_token(create_us: int, task_id: str, sig: str) -> str:
        raw = json.dumps({"c": create_us, "i": task_id, "f": sig}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @staticmethod
    def _decode_token(token: str, sig: str) -> tuple[int, str]:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            d = json.loads(raw)
            c_us, task_id, f = int(d["c"]), str(d["i"]), str(d["f"])
        except (ValueError, KeyError, TypeError) as e:
            raise InvalidArgument("invalid page_token") from e
        if f != sig:
            raise InvalidArgument("page_token was issued for other filters (state, kind, system)")
        if not TASK_ID.match(task_id):
            raise InvalidArgument("invalid page_token")
        return c_us, task_id

    # ---- changes -------------------------------------------------------------------------------
    def update(
        self,
        task_id: str,
        *,
        state: TaskState | None = None,
        progress: float | None = None,
        result: Mapping[str, Any] | None = None,
        error: TaskError | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Task:
        with self._lock:
            rows = list(self._t.rows_where("id = ?", [task_id], limit=1))
            if not rows:
                raise NotFound(f"task '{task_id}' not found", metadata={"task_id": task_id})
            row = rows[0]
            current = _row_to_task(row)
            if current.done:
                return current
            now = _now_us()
            changes: dict[str, Any] = {}
            if metadata is not None:
                changes["metadata"] = json.dumps({**current.metadata, **dict(metadata)})
            if result is not None:
                changes["result"] = json.dumps(dict(result))
            if error is not None:
                changes["error"] = json.dumps(error.to_dict())
            if progress is not None:
                changes["progress"] = max(0.0, min(1.0, float(progress)))
            if state is not None and state != current.state:
                changes["state"] = state.value
                if state.done:
                    changes["end_us"] = now
                    if state is TaskState.SUCCEEDED:
                        changes["progress"] = 1.0
            if not changes:
                return current
            changes["update_us"] = now
            changes["version"] = current.version + 1
            self._t.update(task_id, changes)
            row = {**row, **changes}
        self._notifier.notify(task_id)
        return _row_to_task(row)

    def cancel(self, owner: str, task_id: str, message: str = "cancelled by its owner") -> Task:
        t = self.get(owner, task_id)
        if t.done:
            return t
        return self.update(
            task_id, state=TaskState.CANCELLED, error=TaskError(Reason.FAILED_PRECONDITION, message)
        )

    def delete(self, owner: str, task_id: str) -> None:
        t = self.get(owner, task_id)
        if not t.done:
            raise FailedPrecondition(
                f"task '{task_id}' is {t.state.value}: cancel it or wait until it is done before deleting it",
                metadata={"task_id": task_id, "state": t.state.value},
            )
        self.forget(task_id)

    def forget(self, task_id: str) -> None:
        with self._lock:
            self._t.delete_where("id = ?", [task_id])
        self._notifier.notify(task_id)

    # ---- waiting -------------------------------------------------------------------------------
    async def wait(self, owner: str, task_id: str, timeout: float) -> Task:
        """The task once it is done, or as it is when `timeout` seconds have passed."""
        deadline = time.monotonic() + max(0.0, timeout)
        entry = self._notifier.register(task_id)
        try:
            while True:
                entry[1].clear()
                t = self.get(owner, task_id)
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
                t = self.get(owner, task_id)
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
