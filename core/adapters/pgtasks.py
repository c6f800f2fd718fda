"""The PostgreSQL task store: one database shared by N core replicas (psycopg 3, async).

Same API as the SQLite store (core.domain.tasks.TaskRepository). What changes with replicas:
- every update runs in a transaction that locks the row (SELECT ... FOR UPDATE), so two replicas
  following the same job cannot overwrite each other's final state (the first one wins);
- every change is announced with NOTIFY on one channel (payload: the task id); each replica
  LISTENs and wakes its own waiters and watchers, so a watch on replica A sees at once what
  replica B's tracker recorded (a lost notification only costs one poll interval);
- (owner, request_id) is unique in the database: an idempotent retry landing on another
  replica finds the first task.

Configuration: `task_store: {type: postgres, dsn: "host=... dbname=... user=... password=..."}`
(or `dsn_file`, a file holding the DSN, so the password stays out of the YAML).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from core.adapters.taskstore import (
    COLUMNS,
    TABLE,
    WaitingStore,
    _now_us,
    check_metadata_key,
    new_task,
    row_to_task,
    task_to_row,
)
from core.domain.errors import BackendUnavailable, NotFound
from core.domain.tasks import (
    TASK_ID,
    Task,
    TaskError,
    TaskPage,
    TaskState,
    decode_page_token,
    encode_page_token,
    filter_signature,
    plan_update,
)
from core.domain.tasks import page_size as _page_size

log = logging.getLogger(__name__)

CHANNEL = "firecrest_tasks"
_JSON = frozenset({"metadata", "result", "error"})
_SCHEMA = f"""
create table if not exists {TABLE} (
    id text primary key,
    owner text not null,
    kind text not null,
    system text not null,
    state text not null,
    progress double precision not null default 0,
    metadata jsonb not null default '{{}}',
    result jsonb,
    error jsonb,
    request_id text,
    create_us bigint not null,
    update_us bigint not null,
    end_us bigint,
    version integer not null
);
create unique index if not exists tasks_owner_request_id on {TABLE} (owner, request_id);
create index if not exists tasks_owner_create on {TABLE} (owner, create_us desc, id desc);
create index if not exists tasks_active on {TABLE} (state) where state in ('queued', 'running');
create index if not exists tasks_end on {TABLE} (end_us) where end_us is not null;
"""
_INSERT = (
    f"insert into {TABLE} ({', '.join(COLUMNS)}) values "  # noqa: S608 (fixed names, values bound)
    f"({', '.join('%s::jsonb' if c in _JSON else '%s' for c in COLUMNS)})"
)


class PostgresTaskStore(WaitingStore):
    """Tasks in PostgreSQL. The pool opens on first use (inside the event loop)."""

    def __init__(self, dsn: str, *, poll_interval: float = 2.0, pool_size: int = 8):
        super().__init__(poll_interval)
        self.dsn = dsn
        self._pool = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            open=False,
            kwargs={"autocommit": True},
        )
        self._opened = False
        self._open_lock: asyncio.Lock | None = None
        self._listener: asyncio.Task[None] | None = None

    async def _ready(self) -> AsyncConnectionPool:
        if self._opened:
            return self._pool
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._opened:
                try:
                    await self._pool.open(wait=True, timeout=30)
                except psycopg.Error as e:
                    raise BackendUnavailable(f"the task database is unreachable: {e}") from e
                async with self._pool.connection() as conn, conn.transaction():
                    # replicas starting together must not race on CREATE TABLE
                    await conn.execute("select pg_advisory_xact_lock(hashtext('firecrest_tasks_schema'))")
                    await conn.execute(_SCHEMA)
                self._listener = asyncio.get_running_loop().create_task(self._listen(), name="task-listener")
                self._opened = True
        return self._pool

    async def _listen(self) -> None:
        """LISTEN for changes made by any replica and wake the local waiters; reconnects."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
                async with conn:
                    await conn.execute(f"listen {CHANNEL}")
                    # a change made while (re)connecting: wake everyone, they re-read their rows
                    self._notifier.notify_all()
                    async for n in conn.notifies():
                        self._notifier.notify(n.payload)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("task change listener lost its connection (%s); reconnecting", e)
                await asyncio.sleep(1.0)

    async def _fetch(self, sql: str, args: builtins.list[Any]) -> builtins.list[Task]:
        pool = await self._ready()
        try:
            async with pool.connection() as conn:
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(sql, args)
                return [row_to_task(r) for r in await cur.fetchall()]
        except psycopg.OperationalError as e:
            raise BackendUnavailable(f"the task database is unreachable: {e}") from e

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._pool.close()

    # ---- create / read -------------------------------------------------------------------------
    async def create_or_get(
        self,
        owner: str,
        kind: str,
        system: str,
        metadata: Mapping[str, Any],
        request_id: str | None = None,
    ) -> tuple[Task, bool]:
        task = new_task(owner, kind, system, metadata, request_id)
        row = task_to_row(task)
        rows = await self._fetch(
            _INSERT + " on conflict (owner, request_id) do nothing returning *", [row[c] for c in COLUMNS]
        )
        if rows:
            return rows[0], True
        existing = await self._fetch(
            f"select * from {TABLE} where owner = %s and request_id = %s",  # noqa: S608
            [owner, task.request_id],
        )
        if not existing:  # the first one was forgotten in between: try again
            return await self.create_or_get(owner, kind, system, metadata, request_id)
        return existing[0], False

    async def get_any(self, task_id: str) -> Task | None:
        if not TASK_ID.match(task_id or ""):
            return None
        rows = await self._fetch(f"select * from {TABLE} where id = %s", [task_id])  # noqa: S608
        return rows[0] if rows else None

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
        where = ["owner = %s"]
        args: builtins.list[Any] = [owner]
        if state is not None:
            where.append("state = %s")
            args.append(state.value)
        if kind:
            where.append("kind = %s")
            args.append(kind)
        if system:
            where.append("system = %s")
            args.append(system)
        sig = filter_signature(state, kind, system)
        if page_token:
            c_us, last_id = decode_page_token(page_token, sig)
            where.append("(create_us, id) < (%s, %s)")
            args += [c_us, last_id]
        rows = await self._fetch(
            f"select * from {TABLE} where {' and '.join(where)} "  # noqa: S608
            f"order by create_us desc, id desc limit {size + 1}",
            args,
        )
        token = ""
        if len(rows) > size:
            last = rows[size - 1]
            token = encode_page_token(round(last.create_time * 1e6), last.id, sig)
        return TaskPage(rows[:size], token)

    async def find(self, owner: str, kind: str, key: str, value: str) -> builtins.list[Task]:
        check_metadata_key(key)
        return await self._fetch(
            f"select * from {TABLE} where owner = %s and kind = %s and metadata->>%s = %s "  # noqa: S608
            "order by create_us desc, id desc",
            [owner, kind, key, value],
        )

    async def active(self, kind: str | None = None, owner: str | None = None) -> builtins.list[Task]:
        where = ["state in ('queued', 'running')"]
        args: builtins.list[Any] = []
        if kind:
            where.append("kind = %s")
            args.append(kind)
        if owner:
            where.append("owner = %s")
            args.append(owner)
        return await self._fetch(
            f"select * from {TABLE} where {' and '.join(where)} order by create_us",  # noqa: S608
            args,
        )

    async def ended_before(self, cutoff: float, limit: int = 200) -> builtins.list[Task]:
        return await self._fetch(
            f"select * from {TABLE} where end_us is not null and end_us < %s "  # noqa: S608
            f"order by end_us limit {int(limit)}",
            [int(cutoff * 1e6)],
        )

    async def count_by_state(self) -> dict[tuple[str, str], int]:
        pool = await self._ready()
        async with pool.connection() as conn:
            cur = await conn.execute(f"select kind, state, count(*) from {TABLE} group by kind, state")  # noqa: S608
            return {(k, s): int(n) for k, s, n in await cur.fetchall()}

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
        pool = await self._ready()
        try:
            async with pool.connection() as conn, conn.transaction():
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(f"select * from {TABLE} where id = %s for update", [task_id])  # noqa: S608
                row = await cur.fetchone()
                if row is None:
                    raise NotFound(f"task '{task_id}' not found", metadata={"task_id": task_id})
                current = row_to_task(row)
                after = plan_update(
                    current,
                    _now_us() / 1e6,
                    state=state,
                    progress=progress,
                    result=result,
                    error=error,
                    metadata=metadata,
                )
                if after is None:
                    return current
                new = task_to_row(after)
                cols = [c for c in COLUMNS if c != "id"]
                sets = ", ".join(f"{c} = %s::jsonb" if c in _JSON else f"{c} = %s" for c in cols)
                await conn.execute(
                    f"update {TABLE} set {sets} where id = %s",  # noqa: S608
                    [*(new[c] for c in cols), task_id],
                )
                await conn.execute("select pg_notify(%s, %s)", [CHANNEL, task_id])
        except psycopg.OperationalError as e:
            raise BackendUnavailable(f"the task database is unreachable: {e}") from e
        self._notifier.notify(task_id)
        return after

    async def forget(self, task_id: str) -> None:
        pool = await self._ready()
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(f"delete from {TABLE} where id = %s", [task_id])  # noqa: S608
            await conn.execute("select pg_notify(%s, %s)", [CHANNEL, task_id])
        self._notifier.notify(task_id)
