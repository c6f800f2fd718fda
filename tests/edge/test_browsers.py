"""What browsers need from the edge: CORS for the configured origins, gRPC-Web (Envoy's grpc_web
filter) for server-pushed task updates, and the portal's files served without a token."""

from __future__ import annotations

import struct
import time
import uuid

import requests

from core.proto.firecrest.tasks.v1 import tasks_pb2 as pb

GRPC_WEB = "application/grpc-web+proto"


def _origin(stack: dict[str, str]) -> str:
    return stack["F7T_URL"]  # the stack serves its portal from Envoy's own origin


def test_cors_preflight_for_the_configured_origin_only(stack):
    for path, headers in (("/status/systems", "authorization"),
                          ("/firecrest.tasks.v1.TasksService/WatchTask", "authorization,content-type,x-grpc-web")):
        ok = requests.options(stack["F7T_URL"] + path, headers={
            "Origin": _origin(stack), "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers}, timeout=10)
        assert ok.status_code == 200, ok.text
        assert ok.headers["access-control-allow-origin"] == _origin(stack)
        assert "grpc-status" in ok.headers["access-control-expose-headers"]
        evil = requests.options(stack["F7T_URL"] + path, headers={
            "Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": headers}, timeout=10)
        assert "access-control-allow-origin" not in evil.headers


def test_cors_headers_on_an_answer_and_the_token_still_required(stack, token):
    r = requests.get(stack["F7T_URL"] + "/status/systems", headers={"Origin": _origin(stack)}, timeout=10)
    assert r.status_code == 401  # CORS opens no door: the token is still checked
    r = requests.get(stack["F7T_URL"] + "/status/systems", timeout=10,
                     headers={"Origin": _origin(stack), "Authorization": f"Bearer {token('alice')}"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == _origin(stack)


def _grpc_web(stack: dict[str, str], method: str, message: bytes, bearer: str | None) -> tuple[int, list[bytes], str]:
    """A gRPC-Web call: (HTTP status, data frames, grpc-status from the trailers). Asked again while
    the answer is UNAVAILABLE: other tests restart the core (a browser's client retries too)."""
    for _ in range(20):
        answer = _grpc_web_once(stack, method, message, bearer)
        if answer[2] != "14":
            return answer
        time.sleep(1)
    return answer


def _grpc_web_once(stack: dict[str, str], method: str, message: bytes, bearer: str | None) -> tuple[int, list[bytes], str]:
    headers = {"Content-Type": GRPC_WEB, "X-Grpc-Web": "1", "Origin": _origin(stack)}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    body = b"\x00" + struct.pack(">I", len(message)) + message
    r = requests.post(f"{stack['F7T_URL']}/firecrest.tasks.v1.TasksService/{method}", data=body, headers=headers,
                      timeout=60)
    frames, status, raw, i = [], r.headers.get("grpc-status", ""), r.content, 0
    while i + 5 <= len(raw):
        flag, size = raw[i], struct.unpack(">I", raw[i + 1 : i + 5])[0]
        chunk = raw[i + 5 : i + 5 + size]
        i += 5 + size
        if flag & 0x80:  # the trailers frame
            for line in chunk.decode().split("\r\n"):
                if line.lower().startswith("grpc-status:"):
                    status = line.split(":", 1)[1].strip()
        else:
            frames.append(chunk)
    assert r.headers.get("content-type", "").startswith("application/grpc-web"), r.headers
    return r.status_code, frames, status


def test_grpc_web_through_envoy(stack, token, alice, system):
    # without a token: UNAUTHENTICATED, as a gRPC status a browser library can read
    _, _, status = _grpc_web(stack, "GetTask", pb.GetTaskRequest(task_id="0" * 32).SerializeToString(), None)
    assert status == "16"
    # someone else's or a missing task: NOT_FOUND
    _, _, status = _grpc_web(stack, "GetTask", pb.GetTaskRequest(task_id="0" * 32).SerializeToString(),
                             token("alice"))
    assert status == "5"
    # a real job followed by WatchTask over gRPC-Web until it is done
    r = alice.post(f"/compute/{system}/jobs", json={"job": {"name": "grpc-web", "script": "#!/bin/bash\ntrue\n",
                                                            "workingDirectory": "/home/alice"},
                                                    "requestId": uuid.uuid4().hex})
    assert r.status_code == 201, r.text
    job_id = r.json()["jobId"]
    tasks = alice.get("/tasks", params={"kind": "job", "pageSize": 50}).json()["tasks"]
    task = next(t for t in tasks if t["metadata"].get("jobId") == job_id)
    code, frames, status = _grpc_web(stack, "WatchTask", pb.WatchTaskRequest(task_id=task["id"]).SerializeToString(),
                                     token("alice"))
    assert code == 200 and status == "0" and frames
    last = pb.WatchTaskResponse.FromString(frames[-1]).task
    assert last.done and last.id == task["id"] and last.owner == "alice"


def test_portal_files_need_no_token(stack):
    url = stack["F7T_PORTAL_URL"]
    r = requests.get(url, timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/portal/app.js">' in r.text
    csp = r.headers["content-security-policy"]  # scripts only from here; connections only where needed
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    issuer = stack["F7T_ISSUER"].split("/realms/")[0]
    assert f"connect-src 'self' {issuer} {stack['F7T_S3_URL']};" in csp
    js = requests.get(url + "app.js", timeout=10)
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript") and len(js.content) > 1000
    assert requests.get(url + "app.css", timeout=10).headers["content-type"].startswith("text/css")
    cfg = requests.get(url + "config.json", timeout=10).json()
    assert cfg["issuer"] == stack["F7T_ISSUER"] and cfg["clientId"] == "f7t-portal" and cfg["redirectUri"] == url
    bare = requests.get(url.rstrip("/"), allow_redirects=False, timeout=10)
    assert bare.status_code == 301 and bare.headers["location"].endswith("/portal/")
