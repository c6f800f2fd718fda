"""What people and operators see besides the API itself, through the real stack: the OpenAPI
document and the docs page (no token), a task pushed as Server-Sent Events while its job runs, and
one REST request followed into the core's metrics, Prometheus, Envoy's access log and the audit
line of the SSH command it ran."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.layout import load_layout
from tests.conftest import REPO
from tests.integration.test_compute import Rest, job_task, make_workdir, submit

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the tests create directories in the users' homes")


@pytest.fixture
def rest(api: Any) -> Any:
    return lambda user: Rest(api, user)


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = make_workdir("alice", "f7t-operator-view")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- the API described
def test_openapi_document_is_served_without_a_token(stack):
    r = requests.get(f"{stack['F7T_URL']}/openapi.json", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc == json.loads((REPO / "edge" / "openapi.json").read_text())
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    submit_op = doc["paths"]["/compute/{system_name}/jobs"]["post"]
    assert submit_op["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ApiResponseError"
    }
    assert doc["components"]["schemas"]["firecrest.compute.v1.JobDescription"]["required"] == ["workingDirectory"]
    ls = doc["paths"]["/filesystem/{system_name}/ops/ls"]["get"]["parameters"]
    assert next(p for p in ls if p["name"] == "path")["required"] is True
    events = doc["paths"]["/tasks/{task_id}:events"]["get"]["responses"]["200"]["content"]
    assert list(events) == ["text/event-stream"]
    assert doc["paths"]["/status/liveness"]["get"]["security"] == []


def test_docs_page_renders_from_local_files(stack):
    base = stack["F7T_URL"]
    r = requests.get(f"{base}/docs", timeout=10)  # redirected to /docs/
    assert r.status_code == 200 and r.url.endswith("/docs/")
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "swagger-ui-bundle.js" in page and "openapi.json" in page
    assert "http://" not in page.split("-->", 1)[1] and "https://" not in page.split("-->", 1)[1]  # no CDN
    js = requests.get(f"{base}/docs/swagger-ui-bundle.js", timeout=30)
    assert js.status_code == 200 and js.headers["content-type"] == "application/javascript"
    assert "SwaggerUIBundle" in js.text
    assert requests.get(f"{base}/docs/swagger-ui.css", timeout=10).status_code == 200


# ---------------------------------------------------------------- push: Server-Sent Events
def test_task_events_push_each_change_while_the_job_runs(rest, workdir, stack, token):
    alice = rest("alice")
    job_id = submit(alice, {"working_directory": str(workdir), "script": "#!/bin/bash\nsleep 8\necho done\n"})
    tid = job_task(alice, job_id)["id"]
    events: list[tuple[float, dict[str, Any]]] = []
    with requests.get(
        f"{stack['F7T_URL']}/tasks/{tid}:events",
        headers={"Authorization": f"Bearer {token('alice')}", "Accept": "text/event-stream"},
        stream=True,
        timeout=300,
    ) as r:
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("data: "):
                events.append((time.monotonic(), json.loads(line[len("data: ") :])))
    tasks = [e["task"] for _, e in events]
    assert tasks[-1]["state"] == "TASK_STATE_SUCCEEDED" and tasks[-1]["done"] is True
    assert tasks[-1]["result"]["jobId"] == job_id
    assert all(not t["done"] for t in tasks[:-1])
    # pushed, not buffered: the first event (the job not done yet) came seconds before the last
    assert len(tasks) >= 2 and not tasks[0]["done"]
    assert events[-1][0] - events[0][0] > 3


def test_task_events_of_an_unknown_or_foreign_task_are_404(rest, workdir, api):
    alice, bob = rest("alice"), api("bob")
    job_id = submit(alice, {"working_directory": str(workdir), "script": "#!/bin/bash\necho x\n"})
    tid = job_task(alice, job_id)["id"]
    for path in ("/tasks/no-such-task:events", f"/tasks/{tid}:events"):
        r = bob.get(path)
        assert r.status_code == 404, r.text
        assert r.json()["errorType"] == "error"
    assert api(None).get(f"/tasks/{tid}:events").status_code == 401


# ---------------------------------------------------------------- metrics and audit
def _scrape_core(layout: Any, cert: bool = True) -> str:
    tls = layout.gateway_dir / "tls"
    s = requests.Session()
    # the metrics port presents the core's certificate (its name, not 127.0.0.1)
    from requests.adapters import HTTPAdapter

    class _SNI(HTTPAdapter):
        def init_poolmanager(self, *a: Any, **kw: Any) -> None:
            kw["assert_hostname"] = "core.firecrest.internal"
            kw["server_hostname"] = "core.firecrest.internal"
            super().init_poolmanager(*a, **kw)

    s.mount("https://", _SNI())
    r = s.get(
        f"https://127.0.0.1:{layout.ports.core_metrics}/metrics",
        verify=str(tls / "ca.crt"),
        cert=(str(tls / "prometheus.crt"), str(tls / "prometheus.key")) if cert else None,
        timeout=10,
    )
    r.raise_for_status()
    return r.text


def _sample(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            got = ",".join(sorted(line[len(name) + 1 : line.rindex("}")].split(",")))
            if got == want:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def _wait_for(fn: Any, what: str, deadline: float = 60) -> Any:
    end = time.monotonic() + deadline
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_one_rest_request_in_metrics_prometheus_and_audit(stack, api, workdir):
    layout = load_layout()
    method = "/firecrest.storage.v1.StorageService/ListDirectory"
    before = _scrape_core(layout)
    ok_before = _sample(before, "f7t_rpc_requests_total", method=method, code="OK")
    nf_before = _sample(before, "f7t_rpc_requests_total", method=method, code="NOT_FOUND")

    alice = api("alice")
    r = alice.get(f"/filesystem/cluster/ops/ls?path={workdir}")
    assert r.status_code == 200, r.text
    rid = r.headers["x-request-id"]
    missing = alice.get(f"/filesystem/cluster/ops/ls?path={workdir}/missing")
    assert missing.status_code == 404

    # the core's own metrics: the call counted by method and code, with its latency; the pool
    after = _scrape_core(layout)
    assert _sample(after, "f7t_rpc_requests_total", method=method, code="OK") >= ok_before + 1
    assert _sample(after, "f7t_rpc_requests_total", method=method, code="NOT_FOUND") >= nf_before + 1
    assert _sample(after, "f7t_rpc_duration_seconds_count", method=method, code="OK") >= ok_before + 1
    assert _sample(after, "f7t_ssh_commands_total", system="cluster", outcome="ok") >= 1
    assert "f7t_ssh_pool_wait_seconds_count" in after and "f7t_ssh_pool_connections" in after
    assert "f7t_tasks{" in after and 'f7t_tracker_lag_seconds{tracker="jobs"}' in after
    # ... which only the scraper's certificate opens
    with pytest.raises(requests.exceptions.RequestException):
        _scrape_core(layout, cert=False)

    # Prometheus scraped it, and Envoy's own stats next to it
    prom = stack["F7T_PROMETHEUS_URL"]

    def query(q: str) -> list[Any]:
        res = requests.get(f"{prom}/api/v1/query", params={"query": q}, timeout=10).json()
        return list(res["data"]["result"])

    got = _wait_for(
        lambda: [
            s for s in query(f'f7t_rpc_requests_total{{method="{method}",code="OK"}}')
            if float(s["value"][1]) >= ok_before + 1
        ],
        "Prometheus to scrape the core",
    )
    assert got[0]["metric"]["job"] == "core"
    assert _wait_for(lambda: query("envoy_http_downstream_rq_total"), "Prometheus to scrape Envoy")

    # the request id Envoy gave the request: in its access log, and in the audit line of the
    # SSH command the request ran (user, system, command, exit status, duration)
    access = _wait_for(
        lambda: [ln for ln in layout.log("envoy-access").read_text().splitlines() if rid in ln],
        "the access log line",
    )
    assert "/filesystem/cluster/ops/ls" in access[0]
    audit = _wait_for(
        lambda: [
            json.loads(ln)
            for ln in layout.log("core").read_text().splitlines()
            if ln.startswith("{") and rid in ln and '"ssh_command"' in ln
        ],
        "the audit line",
    )
    assert len(audit) == 1
    line = audit[0]
    assert line["request_id"] == rid and line["user"] == "alice" and line["system"] == "cluster"
    assert line["exit_status"] == 0 and line["duration_ms"] > 0
    assert str(workdir) in line["command"]


def test_a_method_a_path_does_not_have_is_405(stack, api):
    base = stack["F7T_URL"]
    r = requests.request("TRACE", f"{base}/compute/cluster/jobs", timeout=10)
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, POST"
    assert r.json()["errorType"] == "error" and r.json()["message"] == "Method not allowed"
    r = api("alice").put("/tasks/some-task:wait", json={})
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    # an unknown path stays a 404
    assert api("alice").get("/no/such/thing").status_code == 404
