"""The gateway's work around every call (core.api.context), through a real grpc.aio server: the
identity each call carries, never another call's; the handler lookup of the generated code's
methods; and the RPC metrics as Prometheus reads them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from core.api.context import GatewayInterceptor, WrappingServer, caller
from core.observability import Metrics
from core.proto.firecrest.tasks.v1 import tasks_pb2, tasks_pb2_grpc

GET_TASK = "/firecrest.tasks.v1.TasksService/GetTask"


class _Echo(tasks_pb2_grpc.TasksServiceServicer):
    """GetTask answers with the caller as owner, after a pause that lets other calls interleave."""

    async def GetTask(self, request: tasks_pb2.GetTaskRequest, context: grpc.aio.ServicerContext) -> tasks_pb2.GetTaskResponse:
        user = caller()
        await asyncio.sleep(0.01 if request.task_id == "slow" else 0)
        assert caller() == user  # the same call's identity after the pause
        return tasks_pb2.GetTaskResponse(task=tasks_pb2.Task(id=request.task_id, owner=caller()))


@pytest.fixture
async def served() -> AsyncIterator[tuple[tasks_pb2_grpc.TasksServiceStub, Metrics]]:
    metrics = Metrics()
    interceptor = GatewayInterceptor("x-f7t-user", {}, frozenset(), metrics=metrics)
    server = grpc.aio.server()
    tasks_pb2_grpc.add_TasksServiceServicer_to_server(_Echo(), WrappingServer(server, interceptor))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield tasks_pb2_grpc.TasksServiceStub(channel), metrics
    finally:
        await channel.close()
        await server.stop(None)


async def _owner(stub: tasks_pb2_grpc.TasksServiceStub, user: str, task_id: str = "t") -> str:
    resp = await stub.GetTask(tasks_pb2.GetTaskRequest(task_id=task_id), metadata=(("x-f7t-user", user),))
    return str(resp.task.owner)


async def test_each_call_sees_its_own_user_while_others_run(
    served: tuple[tasks_pb2_grpc.TasksServiceStub, Metrics],
) -> None:
    stub, _ = served
    users = ["alice", "bob"] * 20
    owners = await asyncio.gather(*(_owner(stub, u, "slow" if i % 3 == 0 else "t") for i, u in enumerate(users)))
    assert owners == users


async def test_a_call_without_a_user_is_unauthenticated_even_after_calls_with_one(
    served: tuple[tasks_pb2_grpc.TasksServiceStub, Metrics],
) -> None:
    stub, _ = served
    assert await _owner(stub, "alice") == "alice"
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub.GetTask(tasks_pb2.GetTaskRequest(task_id="t"))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub.GetTask(tasks_pb2.GetTaskRequest(task_id="t"), metadata=(("x-f7t-user", "root"),))
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_method_the_servicer_lacks_is_unimplemented(
    served: tuple[tasks_pb2_grpc.TasksServiceStub, Metrics],
) -> None:
    stub, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await stub.CancelTask(tasks_pb2.CancelTaskRequest(task_id="t"), metadata=(("x-f7t-user", "alice"),))
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "CancelTask is not implemented yet" in (e.value.details() or "")


def _samples(metrics: Metrics) -> dict[tuple[str, str, str, str], float]:
    """(sample name, method, code, le) -> value, from the text Prometheus scrapes."""
    out = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for s in family.samples:
            if s.labels.get("method") == GET_TASK:
                out[(s.name, s.labels["method"], s.labels["code"], s.labels.get("le", ""))] = s.value
    return out


async def test_calls_are_counted_and_timed_by_method_and_code(
    served: tuple[tasks_pb2_grpc.TasksServiceStub, Metrics],
) -> None:
    stub, metrics = served
    for _ in range(3):
        await _owner(stub, "alice")
    await _owner(stub, "bob", "slow")
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetTask(tasks_pb2.GetTaskRequest(task_id="t"))
    s = _samples(metrics)
    assert s[("f7t_rpc_requests_total", GET_TASK, "OK", "")] == 4
    assert s[("f7t_rpc_requests_total", GET_TASK, "UNAUTHENTICATED", "")] == 1
    assert s[("f7t_rpc_duration_seconds_count", GET_TASK, "OK", "")] == 4
    assert s[("f7t_rpc_duration_seconds_bucket", GET_TASK, "OK", "+Inf")] == 4
    # the slow call (10 ms or more) is above the 5 ms bucket, and buckets are cumulative
    assert s[("f7t_rpc_duration_seconds_bucket", GET_TASK, "OK", "0.005")] <= 3
    assert s[("f7t_rpc_duration_seconds_bucket", GET_TASK, "OK", "0.01")] <= 3
    les = [le for (name, _, code, le) in s if name.endswith("_bucket") and code == "OK"]
    counts = [s[("f7t_rpc_duration_seconds_bucket", GET_TASK, "OK", le)] for le in les]
    assert counts == sorted(counts) and len(les) == 15
    assert 0.01 <= s[("f7t_rpc_duration_seconds_sum", GET_TASK, "OK", "")] < 5


def test_a_duration_on_a_bucket_bound_counts_in_that_bucket() -> None:
    metrics = Metrics()
    observe = metrics.rpc_observer(GET_TASK)
    observe("OK", 0.005)
    observe("OK", 0.0051)
    s = _samples(metrics)
    assert s[("f7t_rpc_duration_seconds_bucket", GET_TASK, "OK", "0.005")] == 1
    assert s[("f7t_rpc_duration_seconds_bucket", GET_TASK, "OK", "0.01")] == 2
    assert s[("f7t_rpc_duration_seconds_sum", GET_TASK, "OK", "")] == pytest.approx(0.0101)


async def test_the_handler_lookup_runs_in_the_calls_own_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wrapper takes the identity from the metadata the lookup (_Methods.service) kept in a
    context variable: that is the call's own only if grpc.aio looks the handler up inside the
    asyncio task that then runs it (so it is, in grpcio 1.85). A grpcio that moved the lookup to its
    accept loop would hand one call's identity to another: this fails first."""
    from core.api import context

    lookups: list[tuple[str, int]] = []
    handlers: list[tuple[str, int]] = []
    service = context._Methods.service

    def recording(self: context._Methods, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        lookups.append((dict(details.invocation_metadata)["x-call"], id(asyncio.current_task())))
        return service(self, details)

    class Recorder(tasks_pb2_grpc.TasksServiceServicer):
        async def GetTask(self, request: tasks_pb2.GetTaskRequest, context: grpc.aio.ServicerContext) -> tasks_pb2.GetTaskResponse:
            handlers.append((request.task_id, id(asyncio.current_task())))
            await asyncio.sleep(0)
            return tasks_pb2.GetTaskResponse()

    monkeypatch.setattr(context._Methods, "service", recording)
    server = grpc.aio.server()
    tasks_pb2_grpc.add_TasksServiceServicer_to_server(
        Recorder(), WrappingServer(server, GatewayInterceptor("x-f7t-user", {}, frozenset()))
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = tasks_pb2_grpc.TasksServiceStub(channel)
        await asyncio.gather(*(
            stub.GetTask(tasks_pb2.GetTaskRequest(task_id=str(i)), metadata=(("x-f7t-user", "alice"), ("x-call", str(i))))
            for i in range(20)
        ))
    await server.stop(None)
    assert len(lookups) == len(handlers) == 20
    assert sorted(lookups) == sorted(handlers)
