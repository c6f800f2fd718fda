"""Tasks through the real edge: every job submission is a task that follows the job; get, list
(filters, keyset pagination), wait, cancel, delete, the native gRPC watch stream, isolation
between users, and a task that outlives a core restart."""

from __future__ import annotations

import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from core.proto.firecrest.tasks.v1 import tasks_pb2 as pb
from core.proto.firecrest.tasks.v1 import tasks_pb2_grpc
from tests.conftest import Api, profile_up
from tests.helpers import assert_firecrest_error, error_reason
from tests.integration.test_compute import (
    Rest,
    get_job,
    grpc_call,
    job_task,
    make_workdir,
    submit,
    wait_for,
    wait_job,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the tests create directories in the users' homes")

QUICK = "#!/bin/bash\necho quick\n"
FAILING = "#!/bin/bash\nexit 1\n"
LONG = "#!/bin/bash\nsleep 300\n"


@pytest.fixture
def rest(api: Any) -> Any:
    return lambda user: Rest(api, user)


@pytest.fixture
def tasks(channel: grpc.Channel) -> tasks_pb2_grpc.TasksServiceStub:
    return tasks_pb2_grpc.TasksServiceStub(channel)


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = make_workdir("alice", "f7t-tasks")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def get_task(client: Rest, task_id: str) -> dict[str, Any]:
    r = client.get(f"/tasks/{task_id}")
    assert r.status_code == 200, r.text
    return dict(r.json()["task"])


def wait_task(client: Rest, task_id: str, deadline: float = 600) -> dict[str, Any]:
    """POST :wait until the task is done (each wait is bounded by the server)."""
    end = time.monotonic() + deadline
    while True:
        r = client.post(f"/tasks/{task_id}:wait", json={"timeout": "30s"})
        assert r.status_code == 200, r.text
        task = dict(r.json()["task"])
        if task["done"]:
            return task
        assert time.monotonic() < end, f"task {task_id} not done: {task}"


def list_all(client: Rest, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token = ""
    while True:
        r = client.get("/tasks", params={**params, "page_token": token})
        assert r.status_code == 200, r.text
        body = r.json()
        out += body["tasks"]
        token = body["nextPageToken"]
        if not token:
            return out


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# ---------------------------------------------------------------- list, filters, pagination
def test_list_filters_and_pagination(rest, workdir):
    alice, bob = rest("alice"), rest("bob")
    wd = str(workdir)
    jobs = [
        submit(alice, {"working_directory": wd, "script": QUICK}),
        submit(alice, {"working_directory": wd, "script": FAILING}),
        submit(alice, {"working_directory": wd, "script": QUICK}),
    ]
    ids = [job_task(alice, j)["id"] for j in jobs]
    done = [wait_task(alice, t) for t in ids]
    assert [t["state"] for t in done] == ["TASK_STATE_SUCCEEDED", "TASK_STATE_FAILED", "TASK_STATE_SUCCEEDED"]

    # keyset pagination: small pages, each task once, newest first
    pages: list[list[dict[str, Any]]] = []
    token = ""
    while True:
        r = alice.get("/tasks", params={"page_size": 2, "page_token": token})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["tasks"]) <= 2
        pages.append(body["tasks"])
        token = body["nextPageToken"]
        if not token:
            break
    seen = [t["id"] for page in pages for t in page]
    assert len(seen) == len(set(seen))
    assert set(ids) <= set(seen)
    created = [ts(t["createTime"]) for page in pages for t in page]
    assert created == sorted(created, reverse=True)
    assert all(t["owner"] == "alice" for page in pages for t in page)
    # my three, newest first
    assert [i for i in seen if i in ids] == list(reversed(ids))

    failed = list_all(alice, state="TASK_STATE_FAILED", kind="job", page_size=50)
    assert all(t["state"] == "TASK_STATE_FAILED" and t["kind"] == "job" for t in failed)
    assert ids[1] in {t["id"] for t in failed} and not {ids[0], ids[2]} & {t["id"] for t in failed}
    assert set(ids) <= {t["id"] for t in list_all(alice, system="cluster", kind="job")}
    assert not set(ids) & {t["id"] for t in list_all(alice, system="elsewhere")}
    assert not set(ids) & {t["id"] for t in list_all(bob)}

    # bad paging input
    first = alice.get("/tasks", params={"page_size": 1, "kind": "job"}).json()
    assert first["nextPageToken"]
    r = alice.get(
        "/tasks", params={"page_size": 1, "kind": "transfer.upload", "page_token": first["nextPageToken"]}
    )
    assert_firecrest_error(r, 400)
    assert_firecrest_error(alice.get("/tasks", params={"page_token": "not-a-token"}), 400)
    assert_firecrest_error(alice.get("/tasks", params={"page_size": -1}), 400)
    assert_firecrest_error(alice.get("/tasks", params={"kind": "Bad Kind"}), 400)


# ---------------------------------------------------------------- wait, cancel, delete
def test_wait_cancel_delete(rest, tasks, auth, workdir):
    alice = rest("alice")
    job_id = submit(alice, {"working_directory": str(workdir), "script": LONG})
    task = job_task(alice, job_id)
    assert task["kind"] == "job" and task["system"] == "cluster" and task["metadata"]["jobId"] == job_id
    tid = task["id"]
    # a GET answered again and again (the core keeps the answer while the task is unchanged)
    running = [get_task(alice, tid) for _ in range(3)]
    assert not any(t["done"] for t in running)
    native = tasks.GetTask(pb.GetTaskRequest(task_id=tid), metadata=auth("alice")).task
    assert native.id == tid and not native.done

    # wait with a short timeout answers the unfinished task
    r = alice.post(f"/tasks/{tid}:wait", json={"timeout": "1s"})
    assert r.status_code == 200, r.text
    assert r.json()["task"]["done"] is False

    # a running task cannot be deleted
    assert_firecrest_error(alice.delete(f"/tasks/{tid}"), 400)

    # cancelling the task cancels the job
    r = alice.post(f"/tasks/{tid}:cancel", json={})
    assert r.status_code == 200, r.text
    assert r.json()["task"]["id"] == tid
    task = wait_task(alice, tid)
    assert task["state"] == "TASK_STATE_CANCELLED" and task["done"] is True
    # GET, REST and native, answers the task as it is now, not as it was last asked for
    assert get_task(alice, tid) == task
    native = tasks.GetTask(pb.GetTaskRequest(task_id=tid), metadata=auth("alice")).task
    assert (native.state, native.done) == (pb.TASK_STATE_CANCELLED, True)
    assert_firecrest_error(rest("bob").get(f"/tasks/{tid}"), 404)  # kept answers are still the owner's only
    assert task["error"]["code"] == grpc.StatusCode.CANCELLED.value[0]
    assert task["error"]["details"][0]["metadata"]["state"] == "CANCELLED"
    assert wait_job(alice, job_id)["status"]["state"] == "CANCELLED"
    # cancelling again answers the finished task unchanged
    again = alice.post(f"/tasks/{tid}:cancel", json={})
    assert again.status_code == 200 and again.json()["task"]["updateTime"] == task["updateTime"]

    # a finished task can be deleted, once
    r = alice.delete(f"/tasks/{tid}")
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert_firecrest_error(alice.get(f"/tasks/{tid}"), 404)
    assert_firecrest_error(alice.delete(f"/tasks/{tid}"), 404)


# ---------------------------------------------------------------- watch
def watch(
    tasks: tasks_pb2_grpc.TasksServiceStub, auth: Any, task_id: str, deadline: float = 600
) -> list[pb.Task]:
    """Every message of the watch stream until the task is done."""
    return [
        msg.task
        for msg in tasks.WatchTask(pb.WatchTaskRequest(task_id=task_id), metadata=auth("alice"), timeout=deadline)
    ]


def test_watch_streams_state_changes_over_native_grpc(rest, tasks, auth, workdir):
    alice = rest("alice")
    job_id = submit(alice, {"working_directory": str(workdir), "script": "#!/bin/bash\nsleep 5\necho done\n"})
    tid = job_task(alice, job_id)["id"]
    seen = watch(tasks, auth, tid)
    assert seen, "the stream sent nothing"
    last = seen[-1]
    assert last.done and last.state == pb.TASK_STATE_SUCCEEDED
    assert last.result["jobId"] == job_id and last.result["state"] == "COMPLETED"
    assert all(not t.done for t in seen[:-1])
    updates = [t.update_time.ToNanoseconds() for t in seen]
    assert updates == sorted(updates)
    # a watch of a finished task answers it once and ends; over REST it is a JSON array
    again = watch(tasks, auth, tid)
    assert len(again) == 1 and again[0].state == pb.TASK_STATE_SUCCEEDED
    r = alice.get(f"/tasks/{tid}:watch")
    assert r.status_code == 200, r.text
    assert [m["task"]["state"] for m in r.json()] == ["TASK_STATE_SUCCEEDED"]


def test_failed_task_error_carries_error_info_over_native_grpc(rest, tasks, auth, workdir):
    alice = rest("alice")
    job_id = submit(alice, {"working_directory": str(workdir), "script": "#!/bin/bash\nexit 7\n"})
    tid = job_task(alice, job_id)["id"]
    wait_task(alice, tid)
    t = grpc_call(tasks.GetTask, pb.GetTaskRequest(task_id=tid), auth("alice")).task
    assert t.state == pb.TASK_STATE_FAILED
    info = error_details_pb2.ErrorInfo()
    assert t.error.details[0].Unpack(info)
    assert info.reason == "SCHEDULER_ERROR" and info.metadata["exitCode"] == "7"
    assert info.metadata["state"] == "FAILED" and info.metadata["jobId"] == job_id


# ---------------------------------------------------------------- isolation
def test_other_users_cannot_touch_a_task(rest, tasks, auth, workdir):
    alice, bob = rest("alice"), rest("bob")
    job_id = submit(alice, {"working_directory": str(workdir), "script": LONG})
    tid = job_task(alice, job_id)["id"]
    try:
        for method, path, kw in (
            ("GET", f"/tasks/{tid}", {}),
            ("POST", f"/tasks/{tid}:cancel", {"json": {}}),
            ("POST", f"/tasks/{tid}:wait", {"json": {"timeout": "1s"}}),
            ("DELETE", f"/tasks/{tid}", {}),
        ):
            assert_firecrest_error(bob.call(method, path, **kw), 404)
        for call, req in (
            (tasks.GetTask, pb.GetTaskRequest(task_id=tid)),
            (tasks.CancelTask, pb.CancelTaskRequest(task_id=tid)),
            (tasks.DeleteTask, pb.DeleteTaskRequest(task_id=tid)),
        ):
            with pytest.raises(grpc.RpcError) as e:
                grpc_call(call, req, auth("bob"))
            assert e.value.code() == grpc.StatusCode.NOT_FOUND
            assert error_reason(e.value) == "NOT_FOUND"
        with pytest.raises(grpc.RpcError) as e:
            list(tasks.WatchTask(pb.WatchTaskRequest(task_id=tid), metadata=auth("bob"), timeout=60))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        # alice's task and job are untouched
        task = get_task(alice, tid)
        assert not task["done"]
        assert get_job(alice, job_id)["status"]["state"] in {"PENDING", "RUNNING"}
    finally:
        alice.post(f"/tasks/{tid}:cancel", json={})
    assert wait_task(alice, tid)["state"] == "TASK_STATE_CANCELLED"


@pytest.mark.parametrize("task_id", ["0" * 32, "nope", "../../etc", "A" * 32])
def test_unknown_or_malformed_task_ids_are_404(rest, task_id):
    assert_firecrest_error(rest("alice").get(f"/tasks/{task_id}"), 404)


# ---------------------------------------------------------------- restart
@pytest.fixture
def solo(stack: dict[str, str], token: Any) -> tuple[dict[str, str], Rest]:
    """A gateway of its own (the solo profile: one core on SQLite, its own Envoy) to restart
    without disturbing the other tests; alice's client for it."""
    env = profile_up("solo")
    return env, Rest(lambda user: Api(env["F7T_URL"], user, env["F7T_SYSTEM"], token), "alice")


def restart_core(env: dict[str, str]) -> float:
    """Stop the solo core (gracefully) and start it again with `firecrest-stack up --profile
    solo`; the time it was stopped."""
    pidfile = Path(env["F7T_STACK_DIR"]) / "run" / "solo-core.pid"
    pid = int(pidfile.read_text().strip())
    stopped = time.time()
    os.kill(pid, signal.SIGTERM)

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(gone, "the core to stop", 60)
    profile_up("solo")
    assert int(pidfile.read_text().strip()) != pid
    return stopped


def test_a_task_survives_a_core_restart(solo, workdir):
    env, alice = solo
    job_id = submit(
        alice,
        {"working_directory": str(workdir), "script": "#!/bin/bash\nsleep 30\nexit 3\n"},
        request_id=f"restart-{uuid.uuid4().hex}",
    )
    tid = job_task(alice, job_id)["id"]
    wait_job(alice, job_id, until=lambda j: j["status"]["state"] == "RUNNING")
    before = get_task(alice, tid)
    assert not before["done"]

    stopped = restart_core(env)

    after = get_task(alice, tid)  # the task is still there
    assert after["id"] == tid and after["metadata"]["jobId"] == job_id
    task = wait_task(alice, tid)
    assert task["state"] == "TASK_STATE_FAILED"
    details = task["error"]["details"][0]
    assert details["metadata"]["exitCode"] == "3" and details["metadata"]["state"] == "FAILED"
    # recorded by the new process, after the restart
    assert ts(task["endTime"]).timestamp() >= stopped
    assert wait_job(alice, job_id)["status"]["exitCode"] == 3
