"""Two core replicas behind one Envoy, sharing their tasks in PostgreSQL (the `ha` profile: its
own Envoy, cores and database on the shared sshd, Slurm and S3, so killing a core here disturbs
no other test).

What a user must not notice when a replica dies with kill -9: requests go on through the other
one, a job or a transfer in flight still reaches its real final state, an idempotent retry still
gives the one job, and nothing is lost.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, profile_up
from tests.integration.test_compute import make_workdir
from tests.integration.test_tasks import wait_task
from tests.integration.test_transfers import (
    complete,
    put_parts,
    random_file,
    sha256_of,
    task_id_of,
    upload_body,
)
from tests.processes import unix_http

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the tests create directories in the users' homes")

DEADLINE = 600.0


@pytest.fixture
def ha(stack: dict[str, str]) -> Iterator[dict[str, str]]:
    """The ha profile with both cores up and healthy in Envoy (a test that killed one gets it
    back afterwards)."""
    env = profile_up("ha")
    wait_for(lambda: all(h == "healthy" for h in health(env).values()), "both cores healthy in Envoy", 60)
    yield env
    profile_up("ha")


@pytest.fixture
def client(ha: dict[str, str], token: Callable[[str], str]) -> Callable[[str], Api]:
    return lambda user: Api(ha["F7T_URL"], user, ha["F7T_SYSTEM"], token)


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = make_workdir("alice", "f7t-ha")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- helpers
def cores(env: dict[str, str]) -> dict[str, str]:
    """service name -> host:port of each core replica."""
    return dict(item.split("=", 1) for item in env["F7T_CORES"].split(","))


def admin_stats(env: dict[str, str]) -> dict[str, dict[str, str]]:
    """Envoy's view of each core (from its admin /clusters): host:port -> {stat: value}."""
    status, text = unix_http(Path(env["F7T_ENVOY_ADMIN_SOCKET"]), "/clusters", timeout=10)
    assert status == 200, text
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        m = re.fullmatch(r"core::([\d.]+:\d+)::(\w+)::(.*)", line)
        if m:
            out.setdefault(m[1], {})[m[2]] = m[3]
    return out


def health(env: dict[str, str]) -> dict[str, str]:
    stats = admin_stats(env)
    return {addr: stats.get(addr, {}).get("health_flags", "absent") for addr in cores(env).values()}


def requests_served(env: dict[str, str]) -> dict[str, int]:
    stats = admin_stats(env)
    return {addr: int(stats.get(addr, {}).get("rq_total", 0)) for addr in cores(env).values()}


def wait_for(check: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.5)


def kill_9(env: dict[str, str], name: str) -> float:
    """SIGKILL one core replica (no graceful anything); the time it died."""
    pid = int((Path(env["F7T_STACK_DIR"]) / "run" / f"{name}.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    died = time.time()

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, f"{name} to die", 30)
    return died


def submit(alice: Api, job: dict[str, Any], key: str) -> str:
    r = alice.post("/compute/{system}/jobs", json={"job": job}, headers={"Idempotency-Key": key})
    assert r.status_code == 201, r.text
    return str(r.json()["jobId"])


def task_of_job(alice: Api, job_id: str) -> dict[str, Any]:
    r = alice.get("/tasks", params={"kind": "job", "pageSize": 50})
    assert r.status_code == 200, r.text
    (task,) = [t for t in r.json()["tasks"] if t["metadata"].get("jobId") == job_id]
    return dict(task)


def epoch(ts: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------- tests
def test_requests_spread_over_both_replicas(ha, client):
    alice = client("alice")
    before = requests_served(ha)
    for _ in range(20):
        r = alice.get("/status/systems")
        assert r.status_code == 200, r.text
    after = requests_served(ha)
    served = {addr: after[addr] - before[addr] for addr in after}
    assert len(served) == 2 and sum(served.values()) >= 20, served
    assert all(n >= 5 for n in served.values()), f"round robin expected, got {served}"


def test_a_job_reaches_its_final_state_when_a_replica_is_killed(ha, client, workdir):
    alice = client("alice")
    key = f"ha-{uuid.uuid4().hex}"
    name = f"f7t-ha-{uuid.uuid4().hex[:8]}"
    job = {"name": name, "working_directory": str(workdir), "script": "#!/bin/bash\nsleep 15\nexit 3\n"}
    job_id = submit(alice, job, key)
    tid = task_of_job(alice, job_id)["id"]
    wait_for(lambda: task_of_job(alice, job_id)["state"] == "TASK_STATE_RUNNING", "the job to run")

    died = kill_9(ha, "ha-core")

    # the same submission again (a client retrying after an error): still the one job
    assert submit(alice, job, key) == job_id
    task = wait_task(alice, tid, DEADLINE)
    assert task["state"] == "TASK_STATE_FAILED", task
    info = task["error"]["details"][0]["metadata"]
    assert info["exitCode"] == "3" and info["state"] == "FAILED" and info["jobId"] == job_id
    assert epoch(task["endTime"]) >= died  # recorded by the surviving replica
    r = alice.get("/compute/{system}/jobs")
    assert r.status_code == 200, r.text
    assert [j["jobId"] for j in r.json()["jobs"] if j["name"] == name] == [job_id]
    r = alice.get("/tasks", params={"kind": "job", "pageSize": 50})
    assert [t["id"] for t in r.json()["tasks"] if t["metadata"].get("jobId") == job_id] == [tid]


def test_a_transfer_completes_when_a_replica_is_killed_mid_transfer(ha, client, workdir):
    alice = client("alice")
    src = workdir / "src.bin"
    digest = random_file(src, 3 * 1024 * 1024)
    data = src.read_bytes()
    target = workdir / "uploaded.bin"
    r = alice.post("/filesystem/{system}/transfer/upload", json=upload_body(str(target), len(data)))
    assert r.status_code == 201, r.text
    body = r.json()
    tid = task_id_of(body)
    try:
        died = kill_9(ha, "ha-core-2")
        # the data goes to S3 while one core is dead; the job moves it into place
        r = complete(body, put_parts(body, data))
        assert r.status_code == 200, r.text
        task = wait_task(alice, tid, DEADLINE)
        assert task["state"] == "TASK_STATE_SUCCEEDED", task
        assert epoch(task["endTime"]) >= died
        assert sha256_of(target) == digest
    finally:
        t = alice.get(f"/tasks/{tid}")
        if t.status_code == 200 and not t.json()["task"]["done"]:
            alice.post(f"/tasks/{tid}:cancel", json={})
        shutil.rmtree(Path("/home/alice/.firecrest/transfers") / tid, ignore_errors=True)

