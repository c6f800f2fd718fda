"""Tasks: long work of the gateway (a submitted job, a staged transfer, ...), shaped like a
google.longrunning Operation. Pure data and rules, and the TaskRepository port that every task store implements.

Lifecycle: queued -> running -> succeeded | failed | cancelled. The three last states are final:
a finished task never changes again (a later update is ignored), so the first final outcome wins
when, say, a cancel and the scheduler's answer race.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from core.domain.errors import InvalidArgument, Reason


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        return self in FINAL_TASK_STATES


FINAL_TASK_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})

# kinds must be short dotted names ("job", "transfer.upload"); ids are 32 hex digits
_KIND = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
TASK_ID = re.compile(r"^[0-9a-f]{32}$")
# an idempotency key: printable ASCII without spaces, as AIP-155 suggests a UUID
REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,128}$")


@dataclass(frozen=True)
class TaskError:
    """Why a task failed or was cancelled: a reason from the fixed set and a message a person can
    act on; metadata carries machine-readable details (e.g. jobId, state, exitCode)."""

    reason: Reason
    message: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason.value, "message": self.message, "metadata": dict(self.metadata)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskError:
        try:
            reason = Reason(d.get("reason", "INTERNAL"))
        except ValueError:
            reason = Reason.INTERNAL
        return cls(
            reason, str(d.get("message", "")), {str(k): str(v) for k, v in (d.get("metadata") or {}).items()}
        )


@dataclass(frozen=True)
class Task:
    id: str
    owner: str
    kind: str
    system: str
    state: TaskState
    progress: float
    metadata: Mapping[str, Any]
    result: Mapping[str, Any] | None
    error: TaskError | None
    request_id: str | None
    create_time: float
    update_time: float
    end_time: float | None
    # incremented on every change: a watcher compares versions, not timestamps
    version: int = 0

    @property
    def done(self) -> bool:
        return self.state.done

    @property
    def name(self) -> str:
        return f"tasks/{self.id}"


@dataclass(frozen=True)
class TaskPage:
    tasks: list[Task]
    next_page_token: str


def check_kind(kind: str) -> str:
    if not _KIND.match(kind):
        raise InvalidArgument(f"invalid task kind {kind!r}")
    return kind


def check_request_id(request_id: str | None) -> str | None:
    if not request_id:
        return None
    if not REQUEST_ID.match(request_id):
        raise InvalidArgument("request_id must be 1-128 printable ASCII characters without spaces")
    return request_id


def parse_state(value: str) -> TaskState:
    try:
        return TaskState(value.lower())
    except ValueError:
        raise InvalidArgument(
            f"unknown task state {value!r} (one of: {', '.join(s.value for s in TaskState)})"
        ) from None


DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument("page_size must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def filter_signature(state: TaskState | None, kind: str | None, system: str | None) -> str:
    """What a page token remembers of the filters it was issued for."""
    raw = f"{state.value if state else ''}\0{kind or ''}\0{system or ''}"
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def encode_page_token(create_us: int, task_id: str, signature: str) -> str:
    """Keyset pagination (newest first): the last task of a page and the filters' signature."""
    raw = json.dumps({"c": create_us, "i": task_id, "f": signature}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(token: str, signature: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        d = json.loads(raw)
        c_us, task_id, f = int(d["c"]), str(d["i"]), str(d["f"])
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidArgument("invalid page_token") from e
    if f != signature:
        raise InvalidArgument("page_token was issued for other filters (state, kind, system)")
    if not TASK_ID.match(task_id):
        raise InvalidArgument("invalid page_token")
    return c_us, task_id


def plan_update(
    current: Task,
    now: float,
    *,
    state: TaskState | None = None,
    progress: float | None = None,
    result: Mapping[str, Any] | None = None,
    error: TaskError | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Task | None:
    """The task after an update, or None when nothing changes. A final task never changes;
    metadata is merged, result replaced; entering a final state sets end_time (progress 1.0 on
    success). Every store applies this inside one transaction, so concurrent updates (two
    replicas following the same job) cannot overwrite a final state."""
    if current.done:
        return None
    changes: dict[str, Any] = {}
    if metadata is not None:
        merged = {**current.metadata, **dict(metadata)}
        if merged != current.metadata:
            changes["metadata"] = merged
    if result is not None:
        changes["result"] = dict(result)
    if error is not None:
        changes["error"] = error
    if progress is not None:
        p = max(0.0, min(1.0, float(progress)))
        if p != current.progress:
            changes["progress"] = p
    if state is not None and state != current.state:
        changes["state"] = state
        if state.done:
            changes["end_time"] = now
            if state is TaskState.SUCCEEDED:
                changes["progress"] = 1.0
    if not changes:
        return None
    return replace(current, **changes, update_time=now, version=current.version + 1)


class TaskRepository(Protocol):
    """The task store port: every long operation of the gateway is a task in it. One
    implementation per store (core.adapters.taskstore: SQLite, embedded, one core;
    core.adapters.pgtasks: PostgreSQL, shared by N cores); core.wiring picks one from
    `task_store.type`. Every call is a coroutine: a store never blocks the event loop.

    Tasks are per owner: get/list/cancel/delete/wait/watch answer NotFound for another owner's
    task exactly as for an unknown id. The *_any/active/ended_before calls are for the core's own
    trackers and janitors (no owner check)."""

    async def create_or_get(
        self,
        owner: str,
        kind: str,
        system: str,
        metadata: Mapping[str, Any],
        request_id: str | None = None,
    ) -> tuple[Task, bool]:
        """A new QUEUED task, or (idempotency) the owner's task with this request_id and False."""
        ...

    async def get(self, owner: str, task_id: str) -> Task: ...

    async def get_any(self, task_id: str) -> Task | None: ...

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
        """The owner's tasks, newest first, keyset-paginated (see encode_page_token)."""
        ...

    async def find(self, owner: str, kind: str, key: str, value: str) -> builtins.list[Task]:
        """The owner's tasks of a kind whose metadata[key] == value, newest first."""
        ...

    async def active(self, kind: str | None = None, owner: str | None = None) -> builtins.list[Task]:
        """Unfinished tasks (of every owner unless given), oldest first."""
        ...

    async def ended_before(self, cutoff: float, limit: int = 200) -> builtins.list[Task]: ...

    async def count_by_state(self) -> dict[tuple[str, str], int]:
        """{(kind, state): number of tasks} over all owners (the operator's metrics)."""
        ...

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
        """plan_update applied atomically; wakes the task's waiters (on every replica)."""
        ...

    async def cancel(self, owner: str, task_id: str, message: str = "cancelled by its owner") -> Task:
        """Marks a not-yet-final task CANCELLED (stopping its work is the kind's canceller's job)."""
        ...

    async def delete(self, owner: str, task_id: str) -> None:
        """Only final tasks (else FailedPrecondition)."""
        ...

    async def forget(self, task_id: str) -> None:
        """Drops a task whatever its state (a failed submission, the retention purge)."""
        ...

    async def wait(self, owner: str, task_id: str, timeout: float) -> Task:
        """The task once it is done, or as it is after `timeout` seconds."""
        ...

    def watch(self, owner: str, task_id: str) -> AsyncIterator[Task]:
        """The task now and after every change, until (and including) its final state."""
        ...

    def release_waiters(self) -> None:
        """Shutdown: every wait answers now, every watch ends with BackendUnavailable."""
        ...

    async def close(self) -> None: ...
