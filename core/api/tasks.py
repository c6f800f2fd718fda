"""TasksService: the caller's own tasks (get, list, cancel, wait, delete, watch)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.protobuf import any_pb2, struct_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

from core.api.context import ERROR_DOMAIN, GRPC_CODE, caller
from core.api.restjson import TwoForms, http_body, to_json
from core.domain.errors import InvalidArgument
from core.domain.tasks import Task, TaskState
from core.proto.firecrest.tasks.v1 import tasks_pb2 as pb
from core.proto.firecrest.tasks.v1 import tasks_pb2_grpc
from core.services.tasks import TaskService

DEFAULT_WAIT = 30.0
MAX_WAIT = 120.0
# GetTask's answers kept, one per task (the latest version asked for), for the tasks polled most
ANSWERS_KEPT = 2048

_STATE_TO_PB = {
    TaskState.QUEUED: pb.TASK_STATE_QUEUED,
    TaskState.RUNNING: pb.TASK_STATE_RUNNING,
    TaskState.SUCCEEDED: pb.TASK_STATE_SUCCEEDED,
    TaskState.FAILED: pb.TASK_STATE_FAILED,
    TaskState.CANCELLED: pb.TASK_STATE_CANCELLED,
}
_PB_TO_STATE = {v: k for k, v in _STATE_TO_PB.items()}


def _ts(t: float | None) -> timestamp_pb2.Timestamp | None:
    if t is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromMicroseconds(round(t * 1e6))
    return ts


def _struct(d: object) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    if isinstance(d, dict):
        s.update(d)
    return s


def task_to_pb(t: Task) -> pb.Task:
    """The task as a message. A failed or cancelled task's error is a google.rpc.Status whose
    details carry a google.rpc.ErrorInfo (REST callers see it as JSON with its @type)."""
    msg = pb.Task(
        name=t.name,
        id=t.id,
        owner=t.owner,
        kind=t.kind,
        state=_STATE_TO_PB[t.state],
        done=t.done,
        progress=t.progress,
        system=t.system,
        metadata=_struct(dict(t.metadata)),
        create_time=_ts(t.create_time),
        update_time=_ts(t.update_time),
        end_time=_ts(t.end_time),
    )
    if t.state is TaskState.SUCCEEDED:
        msg.result.CopyFrom(_struct(dict(t.result or {})))
    elif t.done and t.error is not None:
        code = (
            grpc.StatusCode.CANCELLED
            if t.state is TaskState.CANCELLED
            else GRPC_CODE.get(t.error.reason, grpc.StatusCode.INTERNAL)
        )
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.ErrorInfo(
                reason=t.error.reason.value, domain=ERROR_DOMAIN, metadata=dict(t.error.metadata)
            )
        )
        msg.error.CopyFrom(status_pb2.Status(code=code.value[0], message=t.error.message, details=[detail]))
    return msg


class _Answer:
    """One version of a task as GetTask answers it: the message, and its REST body once asked for."""

    __slots__ = ("body", "message", "version")

    def __init__(self, task: Task):
        self.version = task.version
        self.message = pb.GetTaskResponse(task=task_to_pb(task))
        self.body: bytes | None = None

    def http_body(self) -> bytes:
        if self.body is None:
            self.body = http_body(self.message)
        return self.body


class TasksServicer(tasks_pb2_grpc.TasksServiceServicer):
    def __init__(self, tasks: TaskService):
        self.tasks = tasks
        # GetTask is what clients poll: a task read again unchanged (the same version, which every
        # change increments) is not converted and rendered again. The task is still read from the
        # store, with its owner check, on every call.
        self._answers: dict[str, _Answer] = {}

    async def GetTask(self, request: pb.GetTaskRequest, context: grpc.aio.ServicerContext) -> TwoForms:
        task = await self.tasks.get(caller(), request.task_id)
        answer = self._answers.get(task.id)
        if answer is None or answer.version != task.version:
            answer = _Answer(task)
            self._answers.pop(task.id, None)
            if len(self._answers) >= ANSWERS_KEPT:  # the one kept longest goes
                del self._answers[next(iter(self._answers))]
            self._answers[task.id] = answer
        return TwoForms(lambda: answer.message, lambda: to_json(answer.message), answer.http_body)

    async def ListTasks(
        self, request: pb.ListTasksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTasksResponse:
        state = None
        if request.state != pb.TASK_STATE_UNSPECIFIED:
            state = _PB_TO_STATE.get(request.state)
            if state is None:
                raise InvalidArgument(f"unknown task state {request.state}")
        page = await self.tasks.list(
            caller(),
            state=state,
            kind=request.kind,
            system=request.system,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListTasksResponse(
            tasks=[task_to_pb(t) for t in page.tasks], next_page_token=page.next_page_token
        )

    async def CancelTask(
        self, request: pb.CancelTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelTaskResponse:
        return pb.CancelTaskResponse(task=task_to_pb(await self.tasks.cancel(caller(), request.task_id)))

    async def WaitTask(
        self, request: pb.WaitTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.WaitTaskResponse:
        timeout = DEFAULT_WAIT
        if request.HasField("timeout"):
            timeout = request.timeout.ToTimedelta().total_seconds()
            if timeout < 0:
                raise InvalidArgument("timeout must not be negative")
        task = await self.tasks.wait(caller(), request.task_id, min(timeout, MAX_WAIT))
        return pb.WaitTaskResponse(task=task_to_pb(task))

    async def DeleteTask(
        self, request: pb.DeleteTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteTaskResponse:
        await self.tasks.delete(caller(), request.task_id)
        return pb.DeleteTaskResponse()

    async def WatchTask(
        self, request: pb.WatchTaskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchTaskResponse]:
        async for task in self.tasks.watch(caller(), request.task_id):
            yield pb.WatchTaskResponse(task=task_to_pb(task))
