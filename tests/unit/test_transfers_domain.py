"""Staged transfers without the stack: part plans, object keys, the job's report line and what it
means for the task, the transfer service against a fake staging store and a fake system (a real
SQLite task store in a temporary directory), the janitor's decisions, and the rendered job
scripts (syntax-checked with `bash -n`; caller input only ever inside single-quoted words)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.adapters.slurm.scheduler import check_directives, with_directives
from core.adapters.taskstore import TaskStore
from core.adapters.transferjobs import CheckTransfer, render_script, streamer_argv, streamer_coordinates
from core.config import StreamerConfig
from core.domain.errors import InvalidArgument, NotFound, PermissionDenied, Reason
from core.domain.tasks import TaskState
from core.domain.transfers import (
    MAX_OBJECT_SIZE,
    Check,
    Checked,
    JobCode,
    JobEnd,
    JobPlan,
    JobReport,
    MiB,
    Op,
    Staged,
    StagedObject,
    Submitted,
    TransferRequest,
    check_part_config,
    file_size_of,
    key_owner,
    object_key,
    parse_report,
    plan_parts,
    transfer_method,
    transfer_outcome,
)
from core.services.transfers import FINISHING_FOR, YOUNG_FOR, TransferService

TID = "0123456789abcdef0123456789abcdef"


# ---------------------------------------------------------------- parts


def test_parts_are_firecrest_sized() -> None:
    p = plan_parts(200 * MiB, 64 * MiB, 10000)
    assert (p.part_size, p.count) == (64 * MiB, 4)
    assert [p.part_length(i, 200 * MiB) for i in range(4)] == [64 * MiB] * 3 + [8 * MiB]
    assert plan_parts(3 * MiB, 64 * MiB, 10000).count == 1
    assert plan_parts(64 * MiB, 64 * MiB, 10000).count == 1
    assert plan_parts(64 * MiB + 1, 64 * MiB, 10000).count == 2
    assert plan_parts(0, 64 * MiB, 10000).count == 1  # an empty file is one empty part


def test_too_many_parts_or_more_than_5_tib_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="at most"):
        plan_parts(64 * MiB * 3 + 1, 64 * MiB, 3)
    assert plan_parts(64 * MiB * 3, 64 * MiB, 3).count == 3
    with pytest.raises(InvalidArgument, match="5 TiB"):
        plan_parts(MAX_OBJECT_SIZE + 1, 5 * 1024 * MiB, 10000)
    with pytest.raises(InvalidArgument):
        plan_parts(-1, 64 * MiB, 10)


def test_part_config_must_be_what_s3_accepts() -> None:
    check_part_config(5 * MiB, 10000)
    for size, count in ((5 * MiB - 1, 10), (5 * 1024 * MiB + 1, 10), (64 * MiB, 0), (64 * MiB, 10001)):
        with pytest.raises(ValueError):
            check_part_config(size, count)


@pytest.mark.parametrize("value", [None, -1.0, 1.5, float("nan"), float("inf")])
def test_file_size_must_be_a_whole_number(value: float | None) -> None:
    with pytest.raises(InvalidArgument):
        file_size_of(value)


def test_s3_and_streamer_are_offered() -> None:
    assert transfer_method("") == "s3"
    assert transfer_method("S3") == "s3"
    assert transfer_method("streamer") == "streamer"
    for m in ("wormhole", "ftp"):
        with pytest.raises(InvalidArgument):
            transfer_method(m)
    with pytest.raises(InvalidArgument, match="relay"):
        transfer_method("wormhole")


# ---------------------------------------------------------------- keys


def test_keys_are_made_by_the_gateway() -> None:
    assert object_key("alice", TID, "/home/alice/data.bin") == f"alice/{TID}/data.bin"
    # hostile names are reduced to a harmless basename; the path itself never reaches the key
    assert object_key("alice", TID, "/x/../../bob/$(rm -rf ~) 'q\"\n.bin") == f"alice/{TID}/_rm_-rf_q_.bin"
    assert object_key("alice", TID, "/home/alice/..") == f"alice/{TID}/data"
    assert object_key("alice", TID, "/") == f"alice/{TID}/data"
    assert key_owner(f"alice/{TID}/data.bin") is not None
    owner = key_owner(f"alice/{TID}/data.bin")
    assert owner is not None and (owner.user, owner.transfer_id) == ("alice", TID)
    for bad in ("alice/data.bin", f"Alice/{TID}/x", f"alice/{TID}/", f"alice/{TID}/a/b", "x"):
        assert key_owner(bad) is None
    with pytest.raises(ValueError):
        object_key("../bob", TID, "/x")
    with pytest.raises(ValueError):
        object_key("alice", "../x", "/x")


# ---------------------------------------------------------------- reports and outcomes


def test_the_last_result_line_wins() -> None:
    text = (
        "some tool output\n"
        "FIRECREST_TRANSFER_PROGRESS=0.5\n"
        "FIRECREST_TRANSFER_RESULT=NO_SPACE cat: write error: No space left on device\n"
        "FIRECREST_TRANSFER_SHA256=" + "a" * 64 + "\n"
        "FIRECREST_TRANSFER_BYTES=42\n"
        "FIRECREST_TRANSFER_RESULT=OK /home/alice/x\n"
    )
    r = parse_report(text)
    assert r == JobReport(JobCode.OK, "/home/alice/x", None, "a" * 64, 42)
    assert parse_report("") is None
    assert parse_report("nothing here\n") is None
    running = parse_report("FIRECREST_TRANSFER_PROGRESS=0.25\n")
    assert running is not None and running.code is None and running.progress == 0.25
    odd = parse_report("FIRECREST_TRANSFER_RESULT=WHATEVER x\n")
    assert odd is not None and odd.code is JobCode.FAILED


def test_outcomes() -> None:
    ok = transfer_outcome(
        Op.UPLOAD, JobEnd("7", "COMPLETED", 0), JobReport(JobCode.OK, "", None, "b" * 64, 5)
    )
    assert ok == (TaskState.SUCCEEDED, {"jobId": "7", "sha256": "b" * 64, "size": 5}, None)

    state, _, err = transfer_outcome(
        Op.UPLOAD, JobEnd("7", "FAILED", 1), JobReport(JobCode.NO_SPACE, "cat: write error")
    )
    assert state is TaskState.FAILED and err is not None
    assert err.reason is Reason.FAILED_PRECONDITION and err.metadata["cause"] == "NO_SPACE"
    assert "no space left" in err.message and "cat: write error" in err.message

    expected = {
        JobCode.PERMISSION_DENIED: Reason.PERMISSION_DENIED,
        JobCode.SOURCE_MISSING: Reason.NOT_FOUND,
        JobCode.URL_EXPIRED: Reason.TIMEOUT,
        JobCode.SIZE_MISMATCH: Reason.FAILED_PRECONDITION,
        JobCode.CHECKSUM_MISMATCH: Reason.FAILED_PRECONDITION,
        JobCode.QUOTA_EXCEEDED: Reason.FAILED_PRECONDITION,
        JobCode.STAGING_ERROR: Reason.BACKEND_UNAVAILABLE,
    }
    for code, reason in expected.items():
        _, _, err = transfer_outcome(Op.COPY, JobEnd("7", "FAILED", 1), JobReport(code, "x"))
        assert err is not None and err.reason is reason and err.metadata["cause"] == code.value

    # cancelled, timed out, or died without a word
    state, _, err = transfer_outcome(Op.UPLOAD, JobEnd("7", "CANCELLED", 0), JobReport(None, "", 0.5))
    assert state is TaskState.CANCELLED and err is not None and err.metadata["cause"] == "CANCELLED"
    state, _, err = transfer_outcome(Op.MOVE, JobEnd("7", "TIMEOUT", 0), None)
    assert state is TaskState.FAILED and err is not None and err.reason is Reason.TIMEOUT
    state, _, err = transfer_outcome(Op.MOVE, JobEnd("7", "FAILED", 9), None)
    assert err is not None and err.reason is Reason.SCHEDULER_ERROR and "exit code 9" in err.message
    # an OK line from a job that then failed is not a success
    state, _, _ = transfer_outcome(Op.MOVE, JobEnd("7", "FAILED", 1), JobReport(JobCode.OK))
    assert state is TaskState.FAILED


# ---------------------------------------------------------------- the service, with fakes


@dataclass
class FakeStore:
    url_expiry: int = 3600
    part_size: int = 64 * MiB
    max_part_count: int = 10000
    objects_: dict[str, float] = field(default_factory=dict)
    uploads: dict[str, str] = field(default_factory=dict)  # upload id -> key
    aborted: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    list_uploads: bool = True

    def ensure_bucket(self) -> None:
        pass

    def presign(self, method: str, key: str, expires: float, query: Mapping[str, str] | None = None) -> str:
        q = "&".join(f"{k}={v}" for k, v in sorted((query or {}).items()))
        return f"https://s3.test/bucket/{key}?m={method}&{q}&exp={int(expires)}"

    def create_multipart(self, key: str) -> str:
        uid = f"up{len(self.uploads)}"
        self.uploads[uid] = key
        return uid

    def abort_multipart(self, key: str, upload_id: str) -> bool:
        self.aborted.append(upload_id)
        return self.uploads.pop(upload_id, None) is not None

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        self.objects_.pop(key, None)

    def exists(self, key: str) -> bool:
        return key in self.objects_

    def objects(self, prefix: str = "") -> list[StagedObject]:
        return [StagedObject(k, t) for k, t in self.objects_.items() if k.startswith(prefix)]

    def stale_uploads(self, older_than: float) -> list[tuple[str, str]] | None:
        return [(k, u) for u, k in self.uploads.items()] if self.list_uploads else None


@dataclass
class FakeSystem:
    streamer_offered = False
    streamer_ready_timeout = 0.0
    accounting_looks = 0

    name: str = "cluster"
    home: str = "/home/alice"
    size: int | None = None
    check_error: Exception | None = None
    submit_error: Exception | None = None
    plans: list[JobPlan] = field(default_factory=list)
    states: dict[str, JobEnd | str] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)

    async def check(self, user: str, check: Check) -> Checked:
        if self.check_error:
            raise self.check_error
        return Checked(self.home, self.size)

    async def submit(self, user: str, home: str, plan: JobPlan, account: str) -> Submitted:
        if self.submit_error:
            raise self.submit_error
        self.plans.append(plan)
        job_id = str(100 + len(self.plans))
        self.states[job_id] = "PENDING"
        return Submitted(
            job_id, self.name, plan.directory, plan.directory + "/output.log", plan.directory + "/error.log"
        )

    async def job_ends(self, user: str, job_ids: Sequence[str]) -> dict[str, JobEnd | str]:
        self.accounting_looks += 1
        return {j: self.states[j] for j in job_ids if j in self.states}

    async def read_log(self, user: str, path: str) -> str | None:
        return self.logs.get(path)

    async def cancel(self, user: str, job_id: str) -> None:
        self.cancelled.append(job_id)
        self.states[job_id] = JobEnd(job_id, "CANCELLED", 0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(tmp_path: Path) -> tuple[TransferService, FakeStore, FakeSystem, TaskStore, Clock]:
    store, system, clock = FakeStore(), FakeSystem(), Clock()
    tasks = TaskStore(tmp_path / "tasks.db", poll_interval=0.05)

    def systems(name: str) -> FakeSystem:
        if name != "cluster":
            raise NotFound("no such system")
        return system

    svc = TransferService(systems, store, tasks, clock=clock)
    return svc, store, system, tasks, clock


def test_upload_start_stages_parts_and_records_the_task(env) -> None:  # type: ignore[no-untyped-def]
    svc, _, system, tasks, clock = env
    s = asyncio.run(
        svc.start(
            "alice", TransferRequest(Op.UPLOAD, "cluster", target="/home/alice/x.bin", file_size=200 * MiB)
        )
    )
    assert len(s.upload_urls) == 4 and s.part_size == 64 * MiB
    assert [u.split("partNumber=")[1].split("&")[0] for u in s.upload_urls] == ["1", "2", "3", "4"]
    assert "m=POST" in s.complete_url and "uploadId=up0" in s.complete_url
    plan = system.plans[0]
    assert plan.directory == f"/home/alice/.firecrest/transfers/{s.task.id}"
    assert plan.staged is not None and plan.staged.key == f"alice/{s.task.id}/x.bin"
    assert plan.staged.expires_at == clock.now + 3600
    t = asyncio.run(tasks.get("alice", s.task.id))
    assert t.kind == "transfer.upload" and t.state is TaskState.QUEUED
    assert t.metadata["jobId"] == s.job.job_id and t.metadata["objectKey"] == plan.staged.key
    assert t.metadata["outputLog"].endswith("/output.log")


def test_a_refused_start_leaves_no_task_and_no_staging(env) -> None:  # type: ignore[no-untyped-def]
    svc, store, system, tasks, _ = env
    system.check_error = PermissionDenied("cannot write to directory '/root': Permission denied")
    with pytest.raises(PermissionDenied):
        asyncio.run(svc.start("alice", TransferRequest(Op.UPLOAD, "cluster", target="/root/x", file_size=10)))
    assert store.uploads == {} and asyncio.run(tasks.active()) == []
    system.check_error = None
    system.submit_error = InvalidArgument("Invalid account")
    with pytest.raises(InvalidArgument):
        asyncio.run(
            svc.start("alice", TransferRequest(Op.UPLOAD, "cluster", target="/home/alice/x", file_size=10))
        )
    # the multipart upload it had started is aborted again, the task forgotten
    assert store.uploads == {} and store.aborted == ["up0"] and asyncio.run(tasks.active()) == []
    with pytest.raises(InvalidArgument):
        asyncio.run(
            svc.start("alice", TransferRequest(Op.COPY, "cluster", account="a b", source="/a", target="/b"))
        )
    with pytest.raises(NotFound):
        asyncio.run(svc.start("alice", TransferRequest(Op.COPY, "nope", source="/a", target="/b")))


def test_download_is_single_put_or_multipart_by_size(env) -> None:  # type: ignore[no-untyped-def]
    svc, _, system, _, _ = env
    system.size = 3 * MiB
    s = asyncio.run(svc.start("alice", TransferRequest(Op.DOWNLOAD, "cluster", source="/home/alice/f")))
    assert "m=GET" in s.download_url and s.upload_urls == ()
    staged = system.plans[-1].staged
    assert staged is not None and staged.put_url and not staged.part_urls and not staged.upload_id
    system.size = 130 * MiB
    asyncio.run(svc.start("alice", TransferRequest(Op.DOWNLOAD, "cluster", source="/home/alice/f")))
    staged = system.plans[-1].staged
    assert staged is not None and len(staged.part_urls) == 3 and staged.upload_id and staged.complete_url


def test_tracking_follows_the_job_to_a_clear_error(env) -> None:  # type: ignore[no-untyped-def]
    svc, store, system, tasks, clock = env
    s = asyncio.run(
        svc.start("alice", TransferRequest(Op.UPLOAD, "cluster", target="/home/alice/x", file_size=10))
    )
    key = system.plans[0].staged.key  # type: ignore[union-attr]
    system.states[s.job.job_id] = "RUNNING"
    system.logs[s.job.output_log] = "FIRECREST_TRANSFER_PROGRESS=0.5\n"
    asyncio.run(svc.poll_once())
    t = asyncio.run(tasks.get("alice", s.task.id))
    assert t.state is TaskState.RUNNING and t.progress == 0.5
    system.states[s.job.job_id] = JobEnd(s.job.job_id, "FAILED", 1)
    system.logs[s.job.output_log] += (
        "FIRECREST_TRANSFER_RESULT=PERMISSION_DENIED mv: cannot move: Permission denied\n"
    )
    store.objects_[key] = clock.now
    clock.now += svc.poll_interval  # the next look at the scheduler's accounting
    asyncio.run(svc.poll_once())
    t = asyncio.run(tasks.get("alice", s.task.id))
    assert t.state is TaskState.FAILED and t.error is not None
    assert t.error.reason is Reason.PERMISSION_DENIED and t.error.metadata["cause"] == "PERMISSION_DENIED"
    assert "mv: cannot move" in t.error.message
    # a failed transfer's staging is cleaned at once: the upload aborted, the object deleted
    assert store.aborted == ["up0"] and key in store.deleted and not store.exists(key)


def test_success_keeps_the_checksum(env) -> None:  # type: ignore[no-untyped-def]
    svc, _, system, tasks, _ = env
    s = asyncio.run(svc.start("alice", TransferRequest(Op.COPY, "cluster", source="/a", target="/b")))
    system.states[s.job.job_id] = JobEnd(s.job.job_id, "COMPLETED", 0)
    asyncio.run(svc.poll_once())
    # no result line yet (the log lags): not decided for 30 s
    assert not asyncio.run(tasks.get("alice", s.task.id)).done
    system.logs[s.job.output_log] = "FIRECREST_TRANSFER_RESULT=OK \nFiles were successfully copied\n"
    asyncio.run(svc.poll_once())
    t = asyncio.run(tasks.get("alice", s.task.id))
    assert t.state is TaskState.SUCCEEDED and t.result == {"jobId": s.job.job_id}


def test_a_job_that_reported_success_is_done_before_its_end(env) -> None:  # type: ignore[no-untyped-def]
    """The job's result line says OK while the scheduler still has it running (its accounting
    lags seconds behind): the task succeeds at once, with the checksum; a failure reported while
    running waits for the job's end, whose exit code its error carries."""
    svc, store, system, tasks, clock = env
    s = asyncio.run(
        svc.start("alice", TransferRequest(Op.UPLOAD, "cluster", target="/home/alice/x", file_size=10))
    )
    system.states[s.job.job_id] = "RUNNING"
    system.logs[s.job.output_log] = (
        "FIRECREST_TRANSFER_PROGRESS=0.8\nFIRECREST_TRANSFER_SHA256=" + "ab" * 32 + "\nFIRECREST_TRANSFER_BYTES=10\n"
        "FIRECREST_TRANSFER_RESULT=OK /home/alice/x\n"
    )
    asyncio.run(svc.poll_once())
    t = asyncio.run(tasks.get("alice", s.task.id))
    assert t.state is TaskState.SUCCEEDED and t.done
    assert t.result == {"jobId": s.job.job_id, "sha256": "ab" * 32, "size": 10}
    assert t.metadata["jobState"] == "RUNNING" and not store.aborted  # a success keeps its staging

    f = asyncio.run(svc.start("alice", TransferRequest(Op.COPY, "cluster", source="/a", target="/b")))
    system.states[f.job.job_id] = "RUNNING"
    system.logs[f.job.output_log] = "FIRECREST_TRANSFER_RESULT=NO_SPACE cp: No space left on device\n"
    asyncio.run(svc.poll_once())
    assert not asyncio.run(tasks.get("alice", f.task.id)).done
    clock.now += svc.poll_interval  # a look at the scheduler's accounting: still running
    asyncio.run(svc.poll_once())
    assert not asyncio.run(tasks.get("alice", f.task.id)).done
    # a job that said it failed: the next look asks the accounting for its end, however soon
    system.states[f.job.job_id] = JobEnd(f.job.job_id, "FAILED", 1)
    asyncio.run(svc.poll_once())
    t = asyncio.run(tasks.get("alice", f.task.id))
    assert t.state is TaskState.FAILED and t.error is not None and t.error.metadata["exitCode"] == "1"


def _upload_waiting_for_its_client(svc, system, clock):  # type: ignore[no-untyped-def]
    """An upload whose job runs and waits for the client's parts, looked at once."""
    clock.now = time.time()  # the task store's own times are the real clock's
    up = asyncio.run(svc.start("alice", TransferRequest(Op.UPLOAD, "cluster", target="/home/alice/x", file_size=10)))
    system.states[up.job.job_id] = "RUNNING"
    system.logs[up.job.output_log] = "FIRECREST_TRANSFER_PROGRESS=0\n"
    asyncio.run(svc.poll_once())
    return up


def test_a_transfer_in_its_last_step_is_looked_at_sooner(env) -> None:  # type: ignore[no-untyped-def]
    """Once an upload's object is being fetched (0.5) or a download's last part is sent (0.9), what
    is left takes seconds: the tracker looks every finishing_interval, for at most FINISHING_FOR
    seconds after the job said so, and every poll_interval otherwise."""
    svc, _, system, _, clock = env
    up = _upload_waiting_for_its_client(svc, system, clock)
    assert svc.tracker.busy_interval == svc.poll_interval == 2.0  # waiting for the client's upload
    system.logs[up.job.output_log] += "FIRECREST_TRANSFER_PROGRESS=0.5\n"
    asyncio.run(svc.poll_once())
    assert svc.tracker.busy_interval == svc.finishing_interval == 0.5
    clock.now += 30
    asyncio.run(svc.poll_once())
    assert svc.tracker.busy_interval == 0.5
    clock.now += FINISHING_FOR
    asyncio.run(svc.poll_once())
    assert svc.tracker.busy_interval == 2.0  # a fetch that takes long (a big file) is not polled fast

    down = asyncio.run(svc.start("alice", TransferRequest(Op.DOWNLOAD, "cluster", source="/home/alice/x")))
    system.states[down.job.job_id] = "RUNNING"
    system.logs[down.job.output_log] = "FIRECREST_TRANSFER_PROGRESS=0.5\n"  # parts still being sent
    asyncio.run(svc.poll_once())
    assert svc.tracker.busy_interval == 2.0
    system.logs[down.job.output_log] += "FIRECREST_TRANSFER_PROGRESS=0.90\n"
    asyncio.run(svc.poll_once())
    assert svc.tracker.busy_interval == 0.5


def test_a_young_download_or_copy_is_looked_at_sooner(env) -> None:  # type: ignore[no-untyped-def]
    """A download, copy or move is done a second or two after its job starts: for its first
    YOUNG_FOR seconds the tracker looks every finishing_interval. An upload, whose job waits for the
    client's parts, is not."""
    svc, _, system, _, clock = env
    _upload_waiting_for_its_client(svc, system, clock)
    assert svc.tracker.busy_interval == svc.poll_interval == 2.0
    for op, kw in ((Op.COPY, {"source": "/a", "target": "/b"}), (Op.DOWNLOAD, {"source": "/home/alice/x"})):
        clock.now = time.time()
        t = asyncio.run(svc.start("alice", TransferRequest(op, "cluster", **kw)))
        system.states[t.job.job_id] = "PENDING"
        asyncio.run(svc.poll_once())
        assert svc.tracker.busy_interval == svc.finishing_interval == 0.5, op
        clock.now += YOUNG_FOR - 1
        system.states[t.job.job_id] = "RUNNING"
        asyncio.run(svc.poll_once())
        assert svc.tracker.busy_interval == 0.5, op
        clock.now += 2
        asyncio.run(svc.poll_once())
        assert svc.tracker.busy_interval == 2.0, op  # a job that runs long (a big file) is not polled fast


def test_between_two_accounting_looks_only_the_logs_are_read(env) -> None:  # type: ignore[no-untyped-def]
    """A look at the scheduler's accounting (sacct) costs the controller and its database ~0.1 s:
    the tracker asks it at most every poll_interval per user and system, and in the faster looks
    between reads the jobs' logs, where a job says it is done."""
    svc, _, system, tasks, clock = env
    s = asyncio.run(svc.start("alice", TransferRequest(Op.COPY, "cluster", source="/a", target="/b")))
    system.states[s.job.job_id] = "RUNNING"
    system.logs[s.job.output_log] = "FIRECREST_TRANSFER_PROGRESS=0\n"
    asyncio.run(svc.poll_once())
    assert system.accounting_looks == 1
    assert asyncio.run(tasks.get("alice", s.task.id)).state is TaskState.RUNNING
    clock.now += svc.finishing_interval
    system.logs[s.job.output_log] += "FIRECREST_TRANSFER_RESULT=OK /b\n"
    asyncio.run(svc.poll_once())
    assert system.accounting_looks == 1
    assert asyncio.run(tasks.get("alice", s.task.id)).state is TaskState.SUCCEEDED


def test_a_slow_staging_store_does_not_hold_up_the_tasks_ends(env) -> None:  # type: ignore[no-untyped-def]
    """The janitor waits on the staging store (s3rver answered nothing for seconds while it
    assembled a big multipart upload); a transfer whose job has ended is finished meanwhile."""
    svc, store, system, tasks, _ = env
    store.objects_["alice/old/x"] = 0.0
    release = threading.Event()
    listed = threading.Event()

    def objects(prefix: str = "") -> list[StagedObject]:
        listed.set()
        release.wait(10)
        return []

    store.objects = objects

    async def scenario() -> TaskState:
        tracker = asyncio.create_task(svc.track())
        try:
            await asyncio.to_thread(listed.wait, 5)  # the janitor is stuck in the store
            s = await svc.start("alice", TransferRequest(Op.COPY, "cluster", source="/a", target="/b"))
            system.states[s.job.job_id] = JobEnd(s.job.job_id, "COMPLETED", 0)
            system.logs[s.job.output_log] = "FIRECREST_TRANSFER_RESULT=OK /b\n"
            svc.wake()
            for _ in range(100):
                t = await tasks.get("alice", s.task.id)
                if t.done:
                    return t.state
                await asyncio.sleep(0.05)
            return t.state
        finally:
            release.set()
            tracker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tracker

    assert asyncio.run(scenario()) is TaskState.SUCCEEDED


def test_a_job_that_never_reports_fails_after_the_grace(env) -> None:  # type: ignore[no-untyped-def]
    svc, _, system, tasks, clock = env
    s = asyncio.run(svc.start("alice", TransferRequest(Op.REMOVE, "cluster", source="/a")))
    system.states[s.job.job_id] = JobEnd(s.job.job_id, "COMPLETED", 0)
    asyncio.run(svc.poll_once())
    clock.now += 31
    asyncio.run(svc.poll_once())
    t = asyncio.run(tasks.get("alice", s.task.id))
    assert t.state is TaskState.FAILED and t.error is not None and t.error.metadata["cause"] == "JOB_FAILED"


def test_cancel_stops_the_job_and_cleans_up(env) -> None:  # type: ignore[no-untyped-def]
    svc, store, system, tasks, _ = env
    s = asyncio.run(
        svc.start("alice", TransferRequest(Op.UPLOAD, "cluster", target="/home/alice/x", file_size=10))
    )
    t = asyncio.run(svc.cancel_task(asyncio.run(tasks.get("alice", s.task.id))))
    assert t.state is TaskState.CANCELLED and system.cancelled == [s.job.job_id]
    assert store.aborted == ["up0"] and store.uploads == {}


def test_stuck_upload_jobs_are_stopped_after_expiry(env) -> None:  # type: ignore[no-untyped-def]
    svc, _, system, tasks, clock = env
    s = asyncio.run(
        svc.start("alice", TransferRequest(Op.UPLOAD, "cluster", target="/home/alice/x", file_size=10))
    )
    system.states[s.job.job_id] = "PENDING"
    clock.now += 3600 + 301
    asyncio.run(svc.poll_once())
    t = asyncio.run(tasks.get("alice", s.task.id))
    assert t.state is TaskState.FAILED and t.error is not None and t.error.metadata["cause"] == "URL_EXPIRED"
    assert system.cancelled == [s.job.job_id]


def test_janitor_keeps_only_what_a_transfer_still_needs(env) -> None:  # type: ignore[no-untyped-def]
    svc, store, system, tasks, clock = env
    system.size = 10
    running = asyncio.run(
        svc.start("alice", TransferRequest(Op.UPLOAD, "cluster", target="/home/alice/a", file_size=10))
    )
    download = asyncio.run(
        svc.start("alice", TransferRequest(Op.DOWNLOAD, "cluster", source="/home/alice/b"))
    )
    failed = asyncio.run(
        svc.start("alice", TransferRequest(Op.UPLOAD, "cluster", target="/home/alice/c", file_size=10))
    )
    asyncio.run(tasks.update(download.task.id, state=TaskState.SUCCEEDED))
    asyncio.run(tasks.update(failed.task.id, state=TaskState.FAILED))
    keys = {
        n: asyncio.run(tasks.get("alice", s.task.id)).metadata["objectKey"]
        for n, s in (("running", running), ("download", download), ("failed", failed))
    }
    for k in keys.values():
        store.objects_[k] = clock.now
    store.objects_[f"bob/{TID}/forgotten"] = clock.now - 601  # no such task, old
    store.objects_[f"bob/{'f' * 32}/new"] = clock.now  # no such task yet, young: maybe being created
    store.objects_[f"alice/{running.task.id}/stolen"] = 0.0  # right id, wrong... still alice's and active
    store.objects_[f"bob/{failed.task.id}/x"] = clock.now - 601  # someone else's id: not bob's task
    asyncio.run(svc.janitor())
    assert set(store.objects_) == {
        keys["running"],
        keys["download"],
        f"bob/{'f' * 32}/new",
        f"alice/{running.task.id}/stolen",
    }
    # the multipart upload of the failed transfer is aborted once it is stale; the running one's not
    clock.now += 3600 + 61
    asyncio.run(svc.janitor())
    assert store.aborted == ["up1"]  # the failed upload's, not the running one's (up0)
    # the download's object goes once its URL has expired
    assert keys["download"] not in store.objects_


# ---------------------------------------------------------------- rendered scripts

HOSTILE = "/home/alice/a b/'q\"$(touch /tmp/pwned)`id`;\n*.bin"


def _staged() -> Staged:
    return Staged(
        key=f"alice/{TID}/x",
        expires_at=2_000_000_000,
        head_url="http://s3/x?a=1&b='2'",
        get_url="http://s3/x?get",
        put_url="http://s3/x?put",
        delete_url="http://s3/x?del",
        upload_id="u1",
        part_urls=("http://s3/x?p=1", "http://s3/x?p=2"),
        part_size=64 * MiB,
        complete_url="http://s3/x?complete",
    )


@pytest.mark.parametrize("op", list(Op))
def test_scripts_are_valid_bash_with_input_as_quoted_data(op: Op) -> None:
    plan = JobPlan(
        op=op,
        transfer_id=TID,
        directory=f"/home/alice/.firecrest/transfers/{TID}",
        source=HOSTILE,
        target=HOSTILE + ".out",
        size=123,
        pattern=".*\\.txt",
        staged=_staged() if op in (Op.UPLOAD, Op.DOWNLOAD) else None,
    )
    script = with_directives(render_script(plan), ["#SBATCH --partition=xfer"])
    assert script.startswith("#!/bin/bash\n#SBATCH --partition=xfer\n")
    r = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert r.returncode == 0, r.stderr
    # the hostile path is exact data: evaluating the script's assignments gives it back verbatim
    head = script.split("\nset -u\n", 1)[0]
    show = {Op.UPLOAD: '"$TARGET"', Op.DOWNLOAD: '"$SOURCE"'}.get(op, '"${TOOL[@]}"')
    r = subprocess.run(["bash", "-c", head + f"\nprintf '%s\\0' {show}"], capture_output=True, check=True)
    values = r.stdout.decode().split("\0")
    assert (HOSTILE + ".out" if op is Op.UPLOAD else HOSTILE) in values or any(
        HOSTILE.rsplit("/", 1)[1] == v for v in values
    ), values
    assert not Path("/tmp/pwned").exists()
    # presigned URLs are never put on a command line: only in variables read by curl_url
    assert 'curl "$' not in script and "curl '" not in script


@pytest.mark.parametrize("op", [Op.UPLOAD, Op.DOWNLOAD])
def test_a_streamer_job_keeps_its_secret_off_the_command_line(op: Op) -> None:
    cfg = StreamerConfig(python="/opt/py/bin/python", port_range=(50000, 50009), public_ips=("10.0.0.5",))
    secret = "s3cr3t-" + "x" * 20
    plan = JobPlan(op=op, transfer_id=TID, directory="/d", source=HOSTILE, target=HOSTILE + ".out",
                   method="streamer", secret=secret)
    argv = streamer_argv(cfg, plan)
    assert secret not in " ".join(argv)
    assert argv[-3:] == (["receive", "--path", HOSTILE + ".out"] if op is Op.UPLOAD else ["send", "--path", HOSTILE])
    script = render_script(plan, cfg)
    assert subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True).returncode == 0
    assert 'export F7T_STREAMER_SECRET="$SECRET"' in script
    # the coordinates are FirecREST v2's (and firecrest-streamer's) encoding
    coords = json.loads(base64.urlsafe_b64decode(streamer_coordinates(cfg, secret)))
    assert coords == {"ports": [50000, 50009], "ips": ["10.0.0.5"], "secret": secret}
    with pytest.raises(ValueError):
        render_script(plan, None)  # a system without a streamer cannot run one


def _rendered_scripts() -> list[tuple[str, str]]:
    cfg = StreamerConfig(python="/opt/py/bin/python", port_range=(50000, 50009), public_ips=("10.0.0.5",))
    out = []
    for op in Op:
        plan = JobPlan(
            op=op, transfer_id=TID, directory="/d", source=HOSTILE, target=HOSTILE + ".out", size=123,
            pattern=".*", staged=_staged() if op in (Op.UPLOAD, Op.DOWNLOAD) else None,
        )
        out.append((op.value, with_directives(render_script(plan), ["#SBATCH --partition=xfer"])))
    for op in (Op.UPLOAD, Op.DOWNLOAD):
        plan = JobPlan(op=op, transfer_id=TID, directory="/d", source=HOSTILE, target=HOSTILE + ".out",
                       method="streamer", secret="s")
        out.append((f"streamer-{op.value}", render_script(plan, cfg)))
    return out


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (./run test installs it)")
@pytest.mark.parametrize(("name", "script"), _rendered_scripts())
def test_rendered_job_scripts_pass_shellcheck(name: str, script: str) -> None:
    """The whole job script as Slurm gets it (header, prelude, body), not only the .sh files that
    ./run lint checks. Left out: SC2016 and SC2054 are about the hostile data, which is meant to
    stay literal in single quotes, and SC2034 about header variables one body does not use."""
    r = subprocess.run(
        ["shellcheck", "--exclude=SC2016,SC2034,SC2054", "-"], input=script, text=True, capture_output=True
    )
    assert r.returncode == 0, r.stdout


def test_a_directive_must_be_one_sbatch_line() -> None:
    assert check_directives(["#SBATCH -p x"], "c") == ("#SBATCH -p x",)
    for bad in ("--partition=x", "#SBATCH -p x\nrm -rf ~"):
        with pytest.raises(ValueError):
            check_directives([bad], "c")


def test_check_maps_remote_refusals_to_4xx() -> None:
    from core.adapters.ssh import ExecResult

    cmd = CheckTransfer(Check(Op.UPLOAD, target="/root/x"))
    argv = cmd.argv()
    assert argv[:2] == ["sh", "-c"] and argv[-3:] == ["upload", "", "/root/x"]
    for status, exc in ((10, NotFound), (11, PermissionDenied), (12, InvalidArgument)):
        with pytest.raises(exc):
            cmd.check(ExecResult(status, b"", b"cannot write to directory '/root': Permission denied"))
    assert cmd.parse(ExecResult(0, b"/home/alice\n", b"")) == Checked("/home/alice", None)
    dl = CheckTransfer(Check(Op.DOWNLOAD, source="/home/alice/f"))
    assert dl.parse(ExecResult(0, b"/home/alice\n1234\n", b"")) == Checked("/home/alice", 1234)


@pytest.mark.parametrize("with_openssl", [True, False])
def test_checksums_of_passing_bytes_with_or_without_openssl(tmp_path: Path, with_openssl: bool) -> None:
    """The prelude's `hashing`/`hashed` (transfer_prelude.sh): the digests of the bytes written to
    the FIFOs, from OpenSSL where the node has it, else from coreutils; the same text either way."""
    import hashlib
    import os

    from core.adapters import scripts

    bindir = tmp_path / "bin"  # a PATH with or without openssl, and the rest of what the script runs
    bindir.mkdir()
    tools = ["cut", "rm", "mkfifo", "cat", "tee", "head", "sha256sum", "md5sum"] + (["openssl"] if with_openssl else [])
    for tool in tools:
        found = shutil.which(tool)
        assert found is not None, tool
        (bindir / tool).symlink_to(found)
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "data").write_bytes(data)
    script = (
        f"F7T_DIR={tmp_path}\nfail() {{ echo \"FAIL $*\"; exit 1; }}\n"
        + scripts.load("transfer_prelude.sh")
        + '\nhashing whole sha256\nhashing first md5\n'
        + f'head -c 1000 {tmp_path}/data > "$F7T_DIR/first.fifo"\n'
        + f'cat {tmp_path}/data | tee "$F7T_DIR/whole.fifo" > /dev/null\n'
        + 'hashed first; echo "md5 $HASH"; hashed whole; echo "sha256 $HASH"\n'
    )
    out = subprocess.run(
        ["/bin/bash", "-c", script], env={"PATH": str(bindir)},
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr + out.stdout
    assert out.stdout.split("\n")[-3:] == [
        f"md5 {hashlib.md5(data[:1000]).hexdigest()}",  # S3's part checksum
        f"sha256 {hashlib.sha256(data).hexdigest()}",
        "",
    ]
