"""TasksService: the caller's own tasks (get, list, cancel, wait, delete, watch)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
from google.protobuf import any_pb2, struct_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

from core.api.context import ERROR_DOMAIN, GRPC_CODE, caller
from core.domain.errors import InvalidArgument, NotFound
from core.domain.tasks import TASK_ID, Task, TaskState, check_kind
from core.proto.firecrest.tasks.v1 import tasks_pb2 as pb
from core.proto.firecrest.tasks.v1 import tasks_pb2_grpc
from core.wiring import Gateway

DEFAULT_WAIT = 30.0
MAX_WAIT = 120.0

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


def _task_id(task_id: str) -> str:
    # a malformed id is answered like an unknown one
    if not TASK_ID.match(task_id or ""):
        raise NotFound(f"task '{task_id}' not found", metadata={"task_id": task_id})
    return task_id


class TasksServicer(tasks_pb2_grpc.TasksServiceServicer):
    def __init__(self, gw: Gateway):
        self.gw = gw
        self.store = gw.tasks

    async def GetTask(
        self, request: pb.GetTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetTaskResponse:
        task = await self.store.get(caller(), _task_id(request.task_id))
        return pb.GetTaskResponse(task=task_to_pb(task))

    async def ListTasks(
        self, request: pb.ListTasksRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListTasksResponse:
        state = None
        if request.state != pb.TASK_STATE_UNSPECIFIED:
            state = _PB_TO_STATE.get(request.state)
            if state is None:
                raise InvalidArgument(f"unknown task state {request.state}")
        kind = check_kind(request.kind) if request.kind else None
        page = await self.store.list(
            caller(),
            state=state,
            kind=kind,
            system=request.system or None,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListTasksResponse(
            tasks=[task_to_pb(t) for t in page.tasks], next_page_token=page.next_page_token
        )

    async def CancelTask(
        self, request: pb.CancelTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelTaskResponse:
        user = caller()
        task = await self.store.get(user, _task_id(request.task_id))
        if not task.done:
            canceller = self.gw.task_cancellers.get(task.kind)
            if canceller is not None:
                await canceller(task)
            else:
                await self.store.cancel(user, task.id)
        return pb.CancelTaskResponse(task=task_to_pb(await self.store.get(user, task.id)))

    async def WaitTask(
        self, request: pb.WaitTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.WaitTaskResponse:
        timeout = DEFAULT_WAIT
        if request.HasField("timeout"):
            timeout = request.timeout.ToTimedelta().total_seconds()
            if timeout < 0:
                raise InvalidArgument("timeout must not be negative")
        task = await self.store.wait(caller(), _task_id(request.task_id), min(timeout, MAX_WAIT))
        return pb.WaitTaskResponse(task=task_to_pb(task))

    async def DeleteTask(
        self, request: pb.DeleteTaskRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteTaskResponse:
        await self.store.delete(caller(), _task_id(request.task_id))
        return pb.DeleteTaskResponse()

    async def WatchTask(
        self, request: pb.WatchTaskRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchTaskResponse]:
        async for task in self.store.watch(caller(), _task_id(request.task_id)):
            yield pb.WatchTaskResponse(task=task_to_pb(task))
