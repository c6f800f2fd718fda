"""Tasks: long work of the gateway (a submitted job, a staged transfer, ...), shaped like a
google.longrunning Operation. Pure data and rules; the store lives in core.adapters.taskstore.

Lifecycle: queued -> running -> succeeded | failed | cancelled. The three last states are final:
a finished task never changes again (a later update is ignored), so the first final outcome wins
when, say, a cancel and the scheduler's answer race.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
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


class TaskRepository(Protocol):
    """What the domain needs of a task store (core.adapters.taskstore.TaskStore implements it)."""

    def create_or_get(
        self,
        owner: str,
        kind: str,
        system: str,
        metadata: Mapping[str, Any],
        request_id: str | None = None,
    ) -> tuple[Task, bool]: ...

    def get(self, owner: str, task_id: str) -> Task: ...

    def get_any(self, task_id: str) -> Task | None: ...

    def update(
        self,
        task_id: str,
        *,
        state: TaskState | None = None,
        progress: float | None = None,
        result: Mapping[str, Any] | None = None,
        error: TaskError | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Task: ...

    def forget(self, task_id: str) -> None: ...

    def ended_before(self, cutoff: float, limit: int = 200) -> list[Task]: ...

    def find(self, owner: str, kind: str, key: str, value: str) -> list[Task]: ...

    def active(self, kind: str | None = None, owner: str | None = None) -> list[Task]: ...

    async def wait(self, owner: str, task_id: str, timeout: float) -> Task: ...

    def watch(self, owner: str, task_id: str) -> AsyncIterator[Task]: ...
