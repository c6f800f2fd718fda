"""The core's REST JSON (core/api/restjson.py): proto3's JSON mapping as Envoy's transcoder prints it,
plus FirecREST v2's nulls in FirecREST's packages, and the HttpBody that carries it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.api import httpbody_pb2
from google.protobuf import json_format, struct_pb2
from google.rpc import error_details_pb2, status_pb2

from core.api.restjson import JSON_TYPE, http_body, json_body, rendered_by_core, to_json
from core.proto.firecrest.compute.v1 import compute_pb2
from core.proto.firecrest.status.v1 import status_pb2 as fstatus_pb2
from core.proto.firecrest.storage.v1 import storage_pb2
from core.proto.firecrest.tasks.v1 import tasks_pb2


def rendered(m: Any) -> Any:
    return json.loads(to_json(m))


def proto3(m: Any) -> Any:
    """protobuf's own JSON printer with the transcoder's options."""
    return json_format.MessageToDict(m, always_print_fields_with_no_presence=True)


def without_nulls(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: without_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [without_nulls(x) for x in v]
    return v


def test_a_listing_has_firecrests_nulls_and_otherwise_proto3s_json() -> None:
    resp = storage_pb2.ListDirectoryResponse(output=[
        storage_pb2.File(name="a b", type="-", user="alice", group="alice", permissions="rw-r--r--",
                         last_modified="2026-12-02T10:00:00", size="12"),
        storage_pb2.File(name="ln", type="l", link_target="/etc/hosts", user="alice", group="alice",
                         permissions="rwxrwxrwx", last_modified="2026-12-02T10:00:00", size="10"),
        storage_pb2.File(name="é\"\n", type="-"),
    ])
    out = rendered(resp)
    assert out["output"][0]["linkTarget"] is None  # FirecREST's null, not left out
    assert out["output"][1]["linkTarget"] == "/etc/hosts"
    assert out["output"][2]["name"] == "é\"\n" and out["output"][2]["user"] == ""
    assert without_nulls(out) == proto3(resp)
    assert list(out["output"][0]) == ["name", "type", "linkTarget", "user", "group", "permissions",
                                      "lastModified", "size"]


def test_an_unset_message_is_null_and_our_paging_token_is_absent() -> None:
    out = rendered(storage_pb2.ChmodResponse())
    assert out == {"output": None}
    jobs = rendered(compute_pb2.ListJobsResponse())
    assert jobs == {"jobs": []}  # next_page_token (native callers' paging) stays out when unset
    page = rendered(compute_pb2.ListJobsResponse(next_page_token="t1"))
    assert page["nextPageToken"] == "t1"


def test_doubles_enums_maps_and_well_known_types_print_as_the_transcoder_prints_them() -> None:
    systems = fstatus_pb2.ListSystemsResponse(systems=[fstatus_pb2.HPCCluster(name="c")])
    systems.systems[0].probing.services["ssh"].CopyFrom(fstatus_pb2.ProbingService())
    out = rendered(systems)
    assert without_nulls(out) == proto3(systems)
    assert out["systems"][0]["ssh"] is None and out["systems"][0]["probing"]["services"] == {"ssh": {"timeout": None}}
    task = tasks_pb2.Task(id="t", state=tasks_pb2.TASK_STATE_RUNNING, progress=1.0,
                          metadata=struct_pb2.Struct(fields={"n": struct_pb2.Value(number_value=3)}))
    task.create_time.FromSeconds(1_764_672_000)
    info = error_details_pb2.ErrorInfo(reason="NOT_FOUND", domain="d", metadata={"path": "/x"})
    st = status_pb2.Status(code=5, message="gone")
    st.details.add().Pack(info)
    task.error.CopyFrom(st)
    out = rendered(tasks_pb2.GetTaskResponse(task=task))
    assert out == proto3(tasks_pb2.GetTaskResponse(task=task))  # ours: no nulls, proto3 as is
    assert out["task"]["progress"] == 1 and isinstance(out["task"]["progress"], int)
    assert out["task"]["metadata"] == {"n": 3} and isinstance(out["task"]["metadata"]["n"], int)
    assert out["task"]["createTime"] == "2025-12-02T10:40:00Z"
    assert out["task"]["error"]["details"][0]["reason"] == "NOT_FOUND"
    assert "endTime" not in out["task"] and "result" not in out["task"]


def test_the_body_is_an_httpbody_and_the_rule_spares_streams_and_raw_bodies() -> None:
    body = httpbody_pb2.HttpBody.FromString(http_body(storage_pb2.ChmodResponse()))
    assert body.content_type == "application/json" and json.loads(body.data) == {"output": None}
    methods = {m.name: m for m in storage_pb2.DESCRIPTOR.services_by_name["StorageService"].methods}
    def by_core(m: Any) -> bool:
        return rendered_by_core(m.server_streaming, m.output_type.full_name)

    assert by_core(methods["ListDirectory"])
    assert not by_core(methods["Download"])  # already raw bytes
    watch = tasks_pb2.DESCRIPTOR.services_by_name["TasksService"].methods_by_name["WatchTask"]
    assert not by_core(watch)  # a stream: the transcoder prints each message


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16383, 16384, 2**21 + 5])
def test_a_json_body_is_the_serialised_http_body(size: int) -> None:
    data = (bytes(range(256)) * (size // 256 + 1))[:size]
    assert json_body(data) == httpbody_pb2.HttpBody(content_type=JSON_TYPE, data=data).SerializeToString()
