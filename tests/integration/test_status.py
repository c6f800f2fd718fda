"""Status through the real edge: REST (as pyfirecrest would see it), native gRPC, and pyfirecrest."""

from __future__ import annotations

import pwd

import grpc
import pytest

from core.proto.firecrest.status.v1 import status_pb2 as pb
from core.proto.firecrest.status.v1 import status_pb2_grpc
from tests.helpers import assert_firecrest_error, error_reason


def _unix(user: str) -> tuple[str, str]:
    pw = pwd.getpwnam(user)
    return str(pw.pw_uid), str(pw.pw_gid)


def test_systems_lists_the_configured_system_and_its_health(alice, system):
    r = alice.get("/status/systems")
    assert r.status_code == 200, r.text
    systems = r.json()["systems"]
    assert [s["name"] for s in systems] == [system]
    s = systems[0]
    assert s["scheduler"]["type"] == "slurm"
    health = {h["serviceType"]: h["healthy"] for h in s["servicesHealth"]}
    assert health == {"ssh": True, "scheduler": True}
    assert any(fs["defaultWorkDir"] for fs in s["fileSystems"])
    assert s["dataOperation"]["max_ops_file_size"] == 5 * 1024 * 1024


def test_liveness_needs_no_token(api):
    r = api(None).get("/status/liveness/")
    assert r.status_code == 200
    assert isinstance(r.json()["lastUpdate"], int)


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_userinfo_is_the_callers_unix_identity(api, user):
    r = api(user).get("/status/{system}/userinfo")
    assert r.status_code == 200, r.text
    body = r.json()
    uid, gid = _unix(user)
    assert body["user"] == {"id": uid, "name": user}
    assert body["group"]["id"] == gid
    assert uid != "0"
    assert {"name": "f7t", "default": True} in body["accounts"]


def test_nodes_partitions_reservations(alice):
    nodes = alice.get("/status/{system}/nodes")
    assert nodes.status_code == 200, nodes.text
    [node] = nodes.json()["nodes"]
    assert node["name"] == "localhost" and node["cpus"] >= 1
    assert set(node["state"]) & {"IDLE", "MIXED", "ALLOCATED"}
    assert "debug" in node["partitions"]

    parts = alice.get("/status/{system}/partitions")
    assert parts.status_code == 200, parts.text
    names = {p["name"]: p for p in parts.json()["partitions"]}
    assert "debug" in names and names["debug"]["partition"] == "UP"
    assert names["debug"]["totalNodes"] == 1

    res = alice.get("/status/{system}/reservations")
    assert res.status_code == 200, res.text
    assert isinstance(res.json()["reservations"], list)


def test_unknown_system_is_404_with_firecrest_error(alice):
    for path in ("nodes", "partitions", "reservations", "userinfo"):
        r = alice.get(f"/status/no-such-system/{path}")
        body = assert_firecrest_error(r, 404)
        assert body["message"] == "System not found"  # FirecREST v2's words
        assert body["data"] is None and r.headers["f7t-error-reason"] == "SYSTEM_NOT_FOUND"


def test_unknown_path_is_404_with_firecrest_error(alice):
    assert_firecrest_error(alice.get("/status/{system}/nonsense/deeper"), 404)


# ---------------------------------------------------------------- native gRPC through Envoy
@pytest.mark.parametrize("user", ["alice", "bob"])
def test_grpc_userinfo(channel, auth, system, user):
    stub = status_pb2_grpc.StatusServiceStub(channel)
    resp = stub.GetUserInfo(pb.GetUserInfoRequest(system_name=system), metadata=auth(user), timeout=60)
    assert resp.user.name == user
    assert resp.user.id == _unix(user)[0]


def test_grpc_systems_nodes_partitions_reservations(channel, auth, system):
    stub = status_pb2_grpc.StatusServiceStub(channel)
    md = auth("alice")
    assert [s.name for s in stub.ListSystems(pb.ListSystemsRequest(), metadata=md, timeout=60).systems] == [system]
    assert stub.ListNodes(pb.ListNodesRequest(system_name=system), metadata=md, timeout=60).nodes[0].name == "localhost"
    parts = stub.ListPartitions(pb.ListPartitionsRequest(system_name=system), metadata=md, timeout=60).partitions
    assert "debug" in [p.name for p in parts]
    stub.ListReservations(pb.ListReservationsRequest(system_name=system), metadata=md, timeout=60)


def test_grpc_unknown_system_has_reason(channel, auth):
    stub = status_pb2_grpc.StatusServiceStub(channel)
    with pytest.raises(grpc.RpcError) as e:
        stub.ListNodes(pb.ListNodesRequest(system_name="nope"), metadata=auth("alice"), timeout=60)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(e.value) == "SYSTEM_NOT_FOUND"


# ---------------------------------------------------------------- pyfirecrest, unmodified
def test_pyfirecrest_status_calls(pyfirecrest, system):
    client = pyfirecrest("alice")
    systems = client.systems()
    assert [s["name"] for s in systems] == [system]
    assert client.nodes(system)[0]["name"] == "localhost"
    assert "debug" in [p["name"] for p in client.partitions(system)]
    assert isinstance(client.reservations(system), list)
    info = client.userinfo(system)
    assert info["user"]["name"] == "alice"
    assert info["user"]["id"] == _unix("alice")[0]
