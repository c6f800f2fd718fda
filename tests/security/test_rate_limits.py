"""Rate limits at the edge, per client address (before the token is looked at) and per user.

Was: a flood of invalid tokens from one client (15,000 requests/s, all 401) cut valid callers from
1,813 to 361 requests/s. The test runs its own Envoy (the stack's edge config with small limits,
in front of the stack's core) so that throttling it disturbs no other test; clients on different
loopback addresses (127.0.0.0/8 is all loopback) stand for different machines."""

from __future__ import annotations

import http.client
import json
import threading
import time

import grpc
import pytest

from core.proto.firecrest.certificate.v1 import certificate_pb2 as pb
from core.proto.firecrest.certificate.v1 import certificate_pb2_grpc
from tests.processes import start_envoy


@pytest.fixture(scope="module")
def limited_edge(stack, tmp_path_factory):
    envoy = start_envoy(stack, tmp_path_factory.mktemp("ratelimit"),
                        rate_limit_per_address=20, rate_limit_address_burst=40,
                        rate_limit_per_user=10, rate_limit_user_burst=15)
    yield envoy
    envoy.stop()


def _calls(port: int, source: str, token: str, n: int, pause: float = 0.0,
           path: str = "/certificate/cluster/ca") -> list[tuple[int, dict]]:
    """n GETs of `path` (by default a cheap one: no SSH behind it) on one keep-alive connection
    from `source`; (status, body) of each."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    out = []
    try:
        for _ in range(n):
            conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            r = conn.getresponse()
            body = r.read()
            out.append((r.status, json.loads(body) if body else {}))
            if pause:
                time.sleep(pause)
    finally:
        conn.close()
    return out


def test_a_flood_of_bad_tokens_from_one_address_does_not_cut_valid_callers(limited_edge, token):
    flood: list[tuple[int, dict]] = []
    t = threading.Thread(target=lambda: flood.extend(_calls(limited_edge.port, "127.0.0.2", "not-a-jwt", 400)))
    t.start()
    valid = _calls(limited_edge.port, "127.0.0.1", token("alice"), 10, pause=0.1, path="/status/cluster/userinfo")
    t.join(120)
    statuses = [s for s, _ in flood]
    assert set(statuses) <= {401, 429}
    assert statuses.count(429) >= 200  # refused before its token is even read
    limited = next(b for s, b in flood if s == 429)
    assert limited["errorType"] == "error" and limited["message"]
    assert [s for s, _ in valid] == [200] * 10, valid
    assert all(b["user"]["name"] == "alice" for _, b in valid)


def test_one_user_is_limited_wherever_they_call_from_and_others_are_not(limited_edge, token):
    burst = _calls(limited_edge.port, "127.0.0.3", token("alice"), 30)
    assert [s for s, _ in burst].count(429) >= 5, burst
    # from another address at once: alice's bucket is still empty there too, bob's is full
    again = _calls(limited_edge.port, "127.0.0.5", token("alice"), 5)
    assert 429 in [s for s, _ in again], again
    bob = _calls(limited_edge.port, "127.0.0.4", token("bob"), 5)
    assert [s for s, _ in bob] == [200] * 5, bob


def test_native_grpc_callers_over_the_limit_get_resource_exhausted(limited_edge, auth):
    ch = grpc.insecure_channel(f"127.0.0.1:{limited_edge.port}", options=[("grpc.enable_http_proxy", 0)])
    stub = certificate_pb2_grpc.CertificateServiceStub(ch)
    codes = []
    try:
        for _ in range(40):
            try:
                stub.GetCertificateAuthority(pb.GetCertificateAuthorityRequest(system_name="cluster"),
                                             metadata=auth("bob"), timeout=30)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as e:
                codes.append(e.code())
    finally:
        ch.close()
    assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes and codes[0] == grpc.StatusCode.OK
