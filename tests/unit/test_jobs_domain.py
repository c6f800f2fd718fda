"""Jobs and tasks without processes: validation, state rules, the task store (a SQLite file in a
temporary directory), the job service against a fake scheduler, and the Slurm command objects'
argv and parsers (fed with text captured from Slurm 22.05)."""

from __future__ import annotations

import asyncio
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.adapters.slurm.errors import error_text, slurm_error
from core.adapters.slurm.jobs import (
    Accounting,
    AttachJob,
    CancelJob,
    ControllerJob,
    PrepareAndSubmit,
    PrepareJob,
    Queue,
    SubmitBatch,
    job_from_controller,
    start_time,
)
from core.adapters.slurm.parsers import SEP, duration
from core.adapters.ssh import ExecResult
from core.adapters.taskstore import TaskStore
from core.domain.errors import (
    BackendUnavailable,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Reason,
    SchedulerError,
    SystemNotFound,
    Timeout,
)
from core.domain.jobs import (
    Job,
    JobMetadata,
    JobSpec,
    JobStatus,
    JobTime,
    job_outcome,
    job_state,
    merge_records,
    parse_exit_code,
)
from core.domain.tasks import TaskError, TaskState
from core.services.jobs import JobService

HOSTILE = "x'\"$(touch /tmp/pwned)`id`;rm -rf ~ #\\ -- --wrap=x"
SCRIPT = "#!/bin/bash\necho hi\n"


def res(out: str = "", err: str = "", status: int = 0) -> ExecResult:
    return ExecResult(status, out.encode(), err.encode())


# ---------------------------------------------------------------- validation
def spec(**kw: object) -> JobSpec:
    base: dict[str, object] = {"working_directory": "/home/alice", "script": SCRIPT}
    base.update(kw)
    return JobSpec(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"script": ""}, "script"),
        ({"script": "   \n"}, "script"),
        ({"script": "echo no interpreter line"}, "script"),
        ({"script_path": "/home/alice/job.sh"}, "script"),  # both
        ({"working_directory": ""}, "working_directory"),
        ({"working_directory": "relative/dir"}, "working_directory"),
        ({"working_directory": "/home/alice\n/etc"}, "working_directory"),
        ({"name": "two\nlines"}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"account": HOSTILE}, "account"),
        ({"account": "-x"}, "account"),
        ({"partition": "debug;id"}, "partition"),
        ({"reservation": "$(id)"}, "reservation"),
        ({"constraints": "a`id`"}, "constraints"),
        ({"constraints": "--x"}, "constraints"),
        ({"standard_output": "out\rput"}, "standard_output"),
        ({"env": {"BAD NAME": "x"}}, "env"),
        ({"env": {"-x": "x"}}, "env"),
        ({"env": {"A": "nul\x00"}}, "env"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(kw: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        spec(**kw).validated()
    assert e.value.metadata["field"] == field


def test_neither_script_nor_path_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="one of"):
        JobSpec(working_directory="/home/alice").validated()


def test_script_path_must_be_absolute() -> None:
    with pytest.raises(InvalidArgument, match="absolute"):
        JobSpec(working_directory="/home/alice", script_path="job.sh").validated()


def test_hostile_free_text_is_accepted_as_data() -> None:
    s = spec(
        name=HOSTILE,
        standard_output=HOSTILE,
        standard_error="-e",
        standard_input=HOSTILE,
        env={"V": HOSTILE + "\nline2"},
        constraints="a&b|c*2,[d|e]",
        partition="long",
        account="f7t",
    )
    assert s.validated() is s


# ---------------------------------------------------------------- states
def test_state_is_the_first_word() -> None:
    assert job_state("CANCELLED by 1001") == "CANCELLED"
    assert job_state("COMPLETED") == "COMPLETED"
    assert job_state("") == "UNKNOWN"


def test_exit_codes() -> None:
    assert parse_exit_code("3:0") == (3, 0)
    assert parse_exit_code("0:125") == (0, 125)
    assert parse_exit_code("") == (None, None)


def job(state: str, end: int | None = 100, code: int | None = 0, sig: int | None = 0) -> Job:
    return Job("7", "n", JobStatus(state, "", code, sig), JobTime(end=end, start=1), "alice")


def test_final_needs_the_end_time() -> None:
    assert job("COMPLETED").final
    assert not job("COMPLETED", end=None).final
    assert not job("RUNNING").final


@pytest.mark.parametrize(
    ("state", "code", "task_state"),
    [
        ("COMPLETED", 0, TaskState.SUCCEEDED),
        ("FAILED", 3, TaskState.FAILED),
        ("CANCELLED", 0, TaskState.CANCELLED),
        ("TIMEOUT", 0, TaskState.FAILED),
        ("OUT_OF_MEMORY", 0, TaskState.FAILED),
    ],
)
def test_job_outcome(state: str, code: int, task_state: TaskState) -> None:
    st, result, error = job_outcome(job(state, code=code))
    assert st is task_state
    assert result is not None
    assert result["jobId"] == "7"
    assert result["state"] == state
    assert result["exitCode"] == code
    if task_state is TaskState.SUCCEEDED:
        assert error is None
    else:
        assert error is not None
        assert error.metadata["state"] == state
        assert error.metadata["exitCode"] == str(code)


# ---------------------------------------------------------------- command objects
def test_sbatch_argv_passes_hostile_strings_as_single_arguments() -> None:
    s = spec(
        name=HOSTILE,
        standard_output=HOSTILE,
        partition="long",
        env={"V": "a,b'c\nd", "W": ""},
    )
    cmd = SubmitBatch(s, "/home/alice/.firecrest/jobs/x/job.sh", "firecrest-task:abc")
    argv = cmd.argv()
    assert argv[:3] == ["env", "V=a,b'c\nd", "W="]
    assert f"--job-name={HOSTILE}" in argv
    assert f"--output={HOSTILE}" in argv
    assert "--export=ALL,V,W" in argv
    assert argv[-1] == "/home/alice/.firecrest/jobs/x/job.sh"
    # the command line a shell sees splits back into exactly these arguments
    assert shlex.split(cmd.command()) == argv


def test_prepare_passes_the_script_on_stdin_only() -> None:
    cmd = PrepareJob("/home/alice/" + HOSTILE, "", "0" * 32, SCRIPT + HOSTILE)
    assert cmd.stdin == (SCRIPT + HOSTILE).encode()
    assert HOSTILE not in cmd.argv()[2]  # the fixed shell snippet
    assert shlex.split(cmd.command())[4] == "/home/alice/" + HOSTILE
    with pytest.raises(ValueError):
        PrepareJob("/x", "", "../etc", SCRIPT)


def test_prepare_errors_are_the_callers_fault() -> None:
    cmd = PrepareJob("/nope", "", "0" * 32, SCRIPT)
    with pytest.raises(InvalidArgument, match="No such file"):
        cmd.check(res(err="working directory '/nope' is not usable: No such file or directory", status=3))


def test_prepare_and_submit_is_one_exec_and_tells_whose_error_it_is() -> None:
    s = spec(name=HOSTILE, working_directory="/home/alice/" + HOSTILE)
    cmd = PrepareAndSubmit(PrepareJob(s.working_directory, "", "0" * 32, s.script), SubmitBatch(s, "", "tag:1"))
    argv = cmd.argv()
    assert argv[:2] == ["sh", "-c"] and argv[3:7] == ["sh", s.working_directory, "", "0" * 32]
    assert argv[7] == "sbatch" and f"--job-name={HOSTILE}" in argv and argv[-1].startswith("--export=")
    assert shlex.split(cmd.command()) == argv and cmd.stdin == SCRIPT.encode()
    # nothing printed: the preparation failed (the caller's input); a path printed: sbatch failed
    with pytest.raises(InvalidArgument, match="not usable"):
        cmd.check(res(err="working directory '/x' is not usable: No such file or directory", status=3))
    with pytest.raises(InvalidArgument, match="partition"):
        cmd.check(res(out="/home/alice/j.sh\n", err="sbatch: error: Invalid partition name specified", status=1))
    assert cmd.parse(res(out="/home/alice/.firecrest/jobs/x/job.sh\n1234\n")) == (
        "1234",
        "/home/alice/.firecrest/jobs/x/job.sh",
    )


def test_attach_runs_the_command_as_one_argument() -> None:
    cmd = AttachJob("12", "echo 'a b' > $HOME/x")
    assert shlex.split(cmd.command())[-2:] == ["12", "echo 'a b' > $HOME/x"]


def test_slurm_errors() -> None:
    assert isinstance(
        slurm_error("Batch job submission failed: Invalid partition name specified"), InvalidArgument
    )
    assert isinstance(slurm_error("Unable to contact slurm controller (connect failure)"), BackendUnavailable)
    assert isinstance(slurm_error("Kill job error on job id 9: Invalid job id specified"), NotFound)
    assert isinstance(slurm_error("something odd"), SchedulerError)
    text = error_text(
        res(err="sbatch: error: Batch job submission failed: Requested reservation is invalid\n")
    )
    assert text == "Batch job submission failed: Requested reservation is invalid"


def test_scancel_reports_errors_on_stderr_with_status_0() -> None:
    with pytest.raises(NotFound):
        CancelJob("9").check(
            res(err="scancel: error: Kill job error on job id 9: Invalid job id specified", status=0)
        )


def rows(text: str) -> str:
    """Slurm output written with | for readability; the real separator is ASCII US."""
    return text.replace("|", SEP)


SACCT = rows(
    """16|alice|alice|f7t|debug|FAILED|None|3:0|1795610315|1795610316|1|00:00:00|UNLIMITED|1|localhost|4294901744|f7t|/home/alice|a|b
16.batch|||f7t||FAILED||3:0|1795610315|1795610316|1|00:00:00||1|localhost||f7t||batch
17|alice|alice|f7t|debug|CANCELLED by 1001|None|0:0|1795610315|Unknown|5|00:00:00|1|1|localhost|1|f7t|/w|n
18|alice|alice|f7t|debug|RUNNING|None|0:0|1795610315|Unknown|5|00:00:00|1|1|localhost|1|f7t|/w|n
garbage line
"""
)


def test_sacct_parse() -> None:
    jobs = {
        j.job_id: j for j in Accounting(job_ids=["16", "17", "18"], allocations_only=False).parse(res(SACCT))
    }
    j16 = jobs["16"]
    assert j16.name == "a" + SEP + "b"  # a separator in the last column stays in the name
    assert j16.user == "alice"
    assert (j16.status.state, j16.status.exit_code, j16.status.interrupt_signal) == ("FAILED", 3, 0)
    assert j16.final
    assert j16.time.limit is None
    assert [s.id for s in j16.steps] == ["16.batch"]
    assert jobs["17"].status.state == "CANCELLED"
    assert not jobs["17"].final  # no end time yet
    assert jobs["18"].status.exit_code is None  # no exit code while running


def test_squeue_parse() -> None:
    out = rows("23|alice|alice|f7t|debug|PENDING|Priority|N/A|N/A|0:00|1:00|1||4294901737|/home/alice|wrap\n")
    (j,) = Queue(user="alice").parse(res(out))
    assert (j.job_id, j.status.state, j.status.state_reason, j.time.limit, j.time.start) == (
        "23",
        "PENDING",
        "Priority",
        60,  # seconds, as FirecREST v2
        None,
    )


def test_scontrol_parse_cannot_be_spoofed_by_the_job_name() -> None:
    line = (
        "JobId=23 JobName=x UserId=bob(1002) JobState=COMPLETED ExitCode=0:0 UserId=alice(1001) "
        "GroupId=alice(1002) JobState=CANCELLED Reason=None ExitCode=0:15 StartTime=1795610480 "
        "EndTime=1795610486 WorkDir=/home/alice StdErr=/home/alice/e StdIn=/dev/null StdOut=/home/alice/o Power="
    )
    kv = ControllerJob("23").parse(res(line))
    assert kv is not None
    j = job_from_controller(kv, "c")
    assert (j.user, j.status.state, j.status.interrupt_signal, j.time.end) == (
        "alice",
        "CANCELLED",
        15,
        1795610486,
    )
    assert (
        ControllerJob("99").parse(res(err="slurm_load_jobs error: Invalid job id specified", status=1))
        is None
    )


def test_merge_prefers_final_accounting_and_ignores_partial_rows() -> None:
    acct = Job("5", "n", JobStatus("COMPLETED", "", 0, 0), JobTime(end=9), "alice", partition="long")
    ctl = Job("5", "n", JobStatus("COMPLETING"), JobTime(), "alice", partition="long", source="controller")
    assert merge_records(acct, ctl) == acct
    running = Job("5", "n", JobStatus("RUNNING"), JobTime(start=1), "alice", partition="long")
    done = Job(
        "5",
        "n",
        JobStatus("FAILED", "", 3, 0),
        JobTime(end=9),
        "alice",
        partition="long",
        source="controller",
    )
    assert merge_records(running, done).status.exit_code == 3  # type: ignore[union-attr]
    # a row from the end record before the start record: Slurm's "allocation" placeholder
    partial = Job("5", "allocation", JobStatus("COMPLETED", "", 0, 0), JobTime(end=9), "alice")
    assert partial.partial
    merged = merge_records(partial, done)
    assert merged is not None and (merged.name, merged.partition, merged.status.state) == (
        "n",
        "long",
        "FAILED",
    )
    assert merge_records(None, ctl) == ctl and merge_records(acct, None) == acct


def test_listing_windows_as_sacct_start_times() -> None:
    assert [start_time(n) for n in (3600, 8 * 3600, 86400, 3 * 86400, 90, 120)] == [
        "now-1hours", "now-8hours", "now-1days", "now-3days", "now-90seconds", "now-2minutes",
    ]


def test_durations() -> None:
    assert duration("0:02") == 2
    assert duration("01:00:00") == 3600
    assert duration("2-01:00:00") == 2 * 86400 + 3600
    assert duration("UNLIMITED") is None


# ---------------------------------------------------------------- the task store
@pytest.fixture
def store(tmp_path: Path) -> TaskStore:
    return TaskStore(tmp_path / "tasks.db", poll_interval=0.2)


async def test_create_is_idempotent_per_owner_and_request_id(store: TaskStore) -> None:
    a, created = await store.create_or_get("alice", "job", "c", {"x": 1}, "req-1")
    b, again = await store.create_or_get("alice", "job", "c", {"x": 2}, "req-1")
    c, other = await store.create_or_get("bob", "job", "c", {}, "req-1")
    assert created and not again and other
    assert a.id == b.id != c.id
    assert (await store.create("alice", "job", "c")).id != (await store.create("alice", "job", "c")).id


async def test_other_owners_get_not_found(store: TaskStore) -> None:
    t = await store.create("alice", "job", "c", {})
    assert (await store.get("alice", t.id)).id == t.id
    for call in (
        lambda: store.get("bob", t.id),
        lambda: store.cancel("bob", t.id),
        lambda: store.delete("bob", t.id),
        lambda: store.get("alice", "nope"),
    ):
        with pytest.raises(NotFound):
            await call()


async def test_update_and_final_states_do_not_change(store: TaskStore) -> None:
    t = await store.create("alice", "transfer.upload", "c", {"a": 1})
    t = await store.update(t.id, state=TaskState.RUNNING, progress=0.5, metadata={"b": 2})
    assert (t.state, t.progress, dict(t.metadata), t.version) == (TaskState.RUNNING, 0.5, {"a": 1, "b": 2}, 2)
    t = await store.update(t.id, state=TaskState.SUCCEEDED, result={"ok": True})
    assert t.done and t.progress == 1.0 and t.end_time is not None and t.result == {"ok": True}
    same = await store.update(t.id, state=TaskState.FAILED, error=TaskError(Reason.INTERNAL, "late"))
    assert same.state is TaskState.SUCCEEDED and same.error is None


async def test_delete_only_when_done(store: TaskStore) -> None:
    t = await store.create("alice", "job", "c")
    with pytest.raises(FailedPrecondition):
        await store.delete("alice", t.id)
    assert (await store.cancel("alice", t.id)).state is TaskState.CANCELLED
    await store.delete("alice", t.id)
    with pytest.raises(NotFound):
        await store.get("alice", t.id)


async def test_list_filters_and_keyset_pagination(store: TaskStore) -> None:
    ids = []
    for i in range(7):
        t = await store.create("alice", "job" if i % 2 else "transfer.cp", "c", {"i": i})
        ids.append(t.id)
    await store.create("bob", "job", "c")
    await store.update(ids[1], state=TaskState.FAILED, error=TaskError(Reason.INTERNAL, "x"))
    seen: list[str] = []
    token = ""
    while True:
        page = await store.list("alice", page_size=3, page_token=token)
        assert len(page.tasks) <= 3
        seen += [t.id for t in page.tasks]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(ids))  # newest first, each once
    assert [t.id for t in (await store.list("alice", kind="job")).tasks] == [ids[5], ids[3], ids[1]]
    assert [t.id for t in (await store.list("alice", state=TaskState.FAILED)).tasks] == [ids[1]]
    first = await store.list("alice", kind="job", page_size=1)
    with pytest.raises(InvalidArgument):
        await store.list("alice", kind="transfer.cp", page_token=first.next_page_token)
    with pytest.raises(InvalidArgument):
        await store.list("alice", page_token="garbage!")
    with pytest.raises(InvalidArgument):
        await store.list("alice", page_size=-1)


async def test_tasks_are_counted_by_kind_and_state(store: TaskStore) -> None:
    a = await store.create("alice", "job", "c")
    await store.create("bob", "job", "c")
    await store.create("alice", "transfer.upload", "c")
    await store.update(a.id, state=TaskState.SUCCEEDED)
    assert await store.count_by_state() == {
        ("job", "succeeded"): 1,
        ("job", "queued"): 1,
        ("transfer.upload", "queued"): 1,
    }


async def test_a_task_survives_reopening_the_store(tmp_path: Path) -> None:
    s1 = TaskStore(tmp_path / "t.db")
    t = await s1.create("alice", "job", "c", {"jobId": "5"}, "r")
    await s1.update(t.id, state=TaskState.RUNNING)
    await s1.close()
    s2 = TaskStore(tmp_path / "t.db")
    assert [x.id for x in await s2.active(kind="job")] == [t.id]
    assert await s2.create_or_get("alice", "job", "c", {}, "r") == (await s2.get("alice", t.id), False)
    await s2.close()


async def test_wait_returns_on_change_or_timeout(store: TaskStore) -> None:
    t = await store.create("alice", "job", "c")
    not_done = await store.wait("alice", t.id, 0.3)
    assert not not_done.done

    async def finish() -> None:
        await asyncio.sleep(0.2)
        other = TaskStore(store.path)  # another process's store on the same file: seen by polling
        await other.update(t.id, state=TaskState.SUCCEEDED)
        await other.close()

    f = asyncio.create_task(finish())
    done = await store.wait("alice", t.id, 30)
    await f
    assert done.state is TaskState.SUCCEEDED
    with pytest.raises(NotFound):
        await store.wait("bob", t.id, 1)


async def test_watch_streams_changes_until_done(store: TaskStore) -> None:
    t = await store.create("alice", "job", "c")
    seen: list[TaskState] = []

    async def drive() -> None:
        await asyncio.sleep(0.1)
        await store.update(t.id, state=TaskState.RUNNING)
        await asyncio.sleep(0.1)
        await store.update(t.id, progress=0.5)
        await asyncio.sleep(0.1)
        await store.update(t.id, state=TaskState.FAILED, error=TaskError(Reason.INTERNAL, "x"))

    d = asyncio.create_task(drive())
    async for x in store.watch("alice", t.id):
        seen.append(x.state)
    await d
    assert seen[0] is TaskState.QUEUED and seen[-1] is TaskState.FAILED
    assert TaskState.RUNNING in seen


# ---------------------------------------------------------------- the job service
@dataclass
class FakeScheduler:
    name: str = "c"
    submitted: list[tuple[str, str]] = field(default_factory=list)  # (job id, tag)
    cancelled: list[str] = field(default_factory=list)
    records: dict[str, Job] = field(default_factory=dict)
    submit_error: Exception | None = None
    prepare_error: Exception | None = None
    sbatch_delay: float = 0.0
    lose_answer: bool = False

    async def submit(self, user: str, spec: JobSpec, private_dir: str, tag: str) -> tuple[str, str]:
        if self.prepare_error:
            raise self.prepare_error
        script = spec.script_path or f"/home/{user}/.firecrest/jobs/{private_dir}/job.sh"
        await asyncio.sleep(self.sbatch_delay)
        if self.submit_error:
            raise self.submit_error
        job_id = str(100 + len(self.submitted))
        self.submitted.append((job_id, tag))
        self.records[job_id] = Job(
            job_id, spec.name, JobStatus("PENDING"), JobTime(), user, partition="debug"
        )
        if self.lose_answer:
            raise Timeout("lost")
        return job_id, script

    async def find_tagged(self, user: str, tag: str) -> str | None:
        return next((j for j, t in self.submitted if t == tag), None)

    async def discard(self, user: str, private_dir: str) -> None:
        return None

    async def job(self, user: str, job_id: str) -> Job | None:
        return self.records.get(job_id)

    async def jobs(self, user: str, account: str = "", window: int = 86400, name: str = "") -> list[Job]:
        return list(self.records.values())

    async def accounting(self, user: str, job_ids: list[str]) -> dict[str, Job]:
        return {j: self.records[j] for j in job_ids if j in self.records}

    async def metadata(self, user: str, job_id: str) -> JobMetadata | None:
        return None

    async def cancel(self, user: str, job_id: str) -> None:
        self.cancelled.append(job_id)

    async def attach(self, user: str, job_id: str, command: str) -> None:
        return None

    def finish(self, job_id: str, state: str, code: int = 0) -> None:
        j = self.records[job_id]
        self.records[job_id] = Job(
            job_id, j.name, JobStatus(state, "", code, 0), JobTime(start=1, end=2), j.user, partition="debug"
        )


@dataclass
class FakeFiles:
    """A system's files: each path's content (a missing one is NotFound, as the port says)."""

    content: dict[str, bytes] = field(default_factory=dict)

    async def read(self, user: str, path: str, limit: int, offset: int = 0, size: int | None = None) -> bytes:
        if path not in self.content:
            raise NotFound(f"cat: {path}: No such file or directory")
        return self.content[path][offset : None if size is None else offset + size]


def service(store: TaskStore, sched: FakeScheduler, files: FakeFiles | None = None) -> JobService:
    def lookup(name: str) -> FakeScheduler:
        if name != sched.name:
            raise SystemNotFound(f"system '{name}' does not exist")
        return sched

    return JobService(lookup, store, lambda _: files or FakeFiles(), poll_interval=0.05, submit_grace=0.0)


async def test_submit_records_a_task_that_follows_the_job(store: TaskStore) -> None:
    sched = FakeScheduler()
    svc = service(store, sched)
    job_id = await svc.submit("alice", "c", spec(name="n"))
    (task,) = await store.active(kind="job")
    assert task.metadata["jobId"] == job_id and task.result == {"jobId": job_id}
    sched.records[job_id] = Job(
        job_id, "n", JobStatus("RUNNING"), JobTime(start=1), "alice", partition="debug"
    )
    await svc.poll_once()
    assert (await store.get("alice", task.id)).state is TaskState.RUNNING
    sched.finish(job_id, "FAILED", 3)
    await svc._poll_group("alice", "c", force=True)
    t = await store.get("alice", task.id)
    assert t.state is TaskState.FAILED and t.error is not None and t.error.metadata["exitCode"] == "3"


async def test_same_request_id_gives_the_same_job_once(store: TaskStore) -> None:
    sched = FakeScheduler(sbatch_delay=0.2)
    svc = service(store, sched)
    ids = await asyncio.gather(*(svc.submit("alice", "c", spec(), "key-1") for _ in range(3)))
    assert len(set(ids)) == 1 and len(sched.submitted) == 1
    assert await svc.submit("alice", "c", spec(), "key-1") == ids[0]
    assert await svc.submit("bob", "c", spec(), "key-1") != ids[0]


async def test_refused_submission_leaves_no_task(store: TaskStore) -> None:
    sched = FakeScheduler(submit_error=InvalidArgument("Invalid partition name specified"))
    svc = service(store, sched)
    with pytest.raises(InvalidArgument):
        await svc.submit("alice", "c", spec(), "k")
    assert (await store.list("alice")).tasks == []
    sched.submit_error = None
    assert await svc.submit("alice", "c", spec(), "k")  # the key is free again
    sched.prepare_error = InvalidArgument("working directory '/x' is not usable")
    with pytest.raises(InvalidArgument):
        await svc.submit("alice", "c", spec())
    assert len((await store.list("alice")).tasks) == 1


async def test_a_lost_sbatch_answer_finds_the_job_by_its_tag(store: TaskStore) -> None:
    sched = FakeScheduler(lose_answer=True)
    svc = service(store, sched)
    job_id = await svc.submit("alice", "c", spec())
    assert job_id == sched.submitted[0][0]


async def test_reconcile_after_a_crash_during_submission(store: TaskStore) -> None:
    sched = FakeScheduler()
    # a previous process created two tasks and died: one sbatch got through, one did not
    t1 = await store.create("alice", "job", "c", {"jobId": ""})
    t2 = await store.create("alice", "job", "c", {"jobId": ""})
    sched.submitted.append(("555", f"firecrest-task:{t1.id}"))
    sched.records["555"] = Job("555", "n", JobStatus("PENDING"), JobTime(), "alice")
    svc = service(store, sched)
    await svc.poll_once()
    assert (await store.get("alice", t1.id)).metadata["jobId"] == "555"
    assert (await store.get("alice", t2.id)).state is TaskState.FAILED


async def test_other_users_jobs_are_not_found(store: TaskStore) -> None:
    sched = FakeScheduler()
    svc = service(store, sched)
    job_id = await svc.submit("alice", "c", spec())
    for call in (svc.get, svc.metadata, svc.cancel):
        with pytest.raises(NotFound):
            await call("bob", "c", job_id)
    assert sched.cancelled == []
    assert [j.job_id for j in await svc.list("bob", "c")] == []
    with pytest.raises(SystemNotFound):
        await svc.get("alice", "nope", job_id)
    with pytest.raises(InvalidArgument):
        await svc.get("alice", "c", "12; id")


async def test_cancelling_a_job_task_cancels_the_job(store: TaskStore) -> None:
    sched = FakeScheduler()
    svc = service(store, sched)
    job_id = await svc.submit("alice", "c", spec())
    (task,) = await store.active(kind="job")
    sched.finish(job_id, "CANCELLED")  # a pending job ends at once
    t0 = time.monotonic()
    t = await svc.cancel_task(task, wait=60)
    assert sched.cancelled == [job_id]
    assert t.state is TaskState.CANCELLED
    assert time.monotonic() - t0 < 5  # answered by the first look, not after a wait


async def test_a_cancel_answers_once_a_tracker_pass_sees_the_job_end(store: TaskStore) -> None:
    now = [time.time()]
    sched = FakeScheduler()
    svc = JobService(lambda _: sched, store, lambda _: FakeFiles(), submit_grace=0.0, clock=lambda: now[0])
    job_id = await svc.submit("alice", "c", spec())
    (task,) = await store.active(kind="job")
    now[0] += 3600  # an old job: its owner's group is due only every max_poll_interval
    await svc.poll_once()
    cancelling = asyncio.create_task(svc.cancel_task(task, wait=60))
    while not sched.cancelled:  # scancel sent; the job still runs (it is being signalled)
        await asyncio.sleep(0)
    assert not cancelling.done()
    sched.finish(job_id, "CANCELLED")
    await svc.poll_once()  # the tracker's next pass asks about it although its group is not due
    t = await asyncio.wait_for(cancelling, 5)
    assert t.state is TaskState.CANCELLED and t.done
    assert svc._hurried == {}


async def test_a_cancel_whose_job_does_not_end_answers_after_its_wait(store: TaskStore) -> None:
    sched = FakeScheduler()
    svc = service(store, sched)
    job_id = await svc.submit("alice", "c", spec())
    (task,) = await store.active(kind="job")
    t = await svc.cancel_task(task, wait=0)
    assert sched.cancelled == [job_id] and not t.done


async def test_metadata_falls_back_to_the_submission_record(store: TaskStore) -> None:
    sched = FakeScheduler()  # its controller has "forgotten" every job (metadata -> None)
    files = FakeFiles()
    svc = service(store, sched, files)
    job_id = await svc.submit(
        "alice", "c", spec(name="n", working_directory="/w", standard_error="/e/%j.err")
    )
    (task,) = await store.find("alice", "job", "jobId", job_id)
    files.content[task.metadata["scriptFile"]] = SCRIPT.encode()
    sched.finish(job_id, "COMPLETED")
    await svc.poll_once()
    assert (await store.find("alice", "job", "jobId", job_id))[0].done
    assert await store.find("bob", "job", "jobId", job_id) == []
    md = await svc.metadata("alice", "c", job_id)
    assert md.script == SCRIPT
    assert md.standard_output == f"/w/slurm-{job_id}.out"
    assert md.standard_error == f"/e/{job_id}.err"
    assert md.standard_input == "/dev/null"


async def test_cancelling_an_ended_job_is_refused(store: TaskStore) -> None:
    sched = FakeScheduler()
    svc = service(store, sched)
    job_id = await svc.submit("alice", "c", spec())
    sched.finish(job_id, "COMPLETED")
    with pytest.raises(FailedPrecondition, match="already ended"):
        await svc.cancel("alice", "c", job_id)
    assert sched.cancelled == []


async def test_a_caller_going_away_does_not_orphan_the_job(store: TaskStore) -> None:
    sched = FakeScheduler(sbatch_delay=0.3)
    svc = service(store, sched)
    call = asyncio.create_task(svc.submit("alice", "c", spec(), "gone"))
    await asyncio.sleep(0.1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0.5)
    (job_id, _), *more = sched.submitted
    assert not more
    assert await store.find("alice", "job", "jobId", job_id)
    assert await svc.submit("alice", "c", spec(), "gone") == job_id  # the retry gets that job


async def test_a_stopping_server_releases_waiters_and_watchers(store: TaskStore) -> None:
    t = await store.create("alice", "job", "c")
    waiting = asyncio.create_task(store.wait("alice", t.id, 3600))

    async def drain() -> list[TaskState]:
        return [x.state async for x in store.watch("alice", t.id)]

    watching = asyncio.create_task(drain())
    await asyncio.sleep(0.1)
    store.release_waiters()
    assert not (await asyncio.wait_for(waiting, 5)).done
    with pytest.raises(BackendUnavailable):
        await asyncio.wait_for(watching, 5)


async def test_a_job_unknown_to_accounting_fails_after_lost_after_on_the_injected_clock(
    store: TaskStore,
) -> None:
    now = [time.time()]
    sched = FakeScheduler()
    svc = JobService(
        lambda _: sched, store, lambda _: FakeFiles(), poll_interval=0.05, submit_grace=0.0, lost_after=3600,
        clock=lambda: now[0],
    )
    job_id = await svc.submit("alice", "c", spec())
    del sched.records[job_id]  # the scheduler's accounting never heard of it
    (task,) = await store.active(kind="job")
    await svc._poll_group("alice", "c", force=True)
    assert not (await store.get("alice", task.id)).done  # young: its record may still come
    now[0] += 3601  # an hour later, without waiting an hour
    await svc._poll_group("alice", "c", force=True)
    t = await store.get("alice", task.id)
    assert t.state is TaskState.FAILED and t.error is not None and "unknown to the scheduler" in t.error.message


async def test_the_tracker_follows_jobs_in_the_background(store: TaskStore) -> None:
    sched = FakeScheduler()
    svc = service(store, sched)
    tracker = asyncio.create_task(svc.track())
    try:
        job_id = await svc.submit("alice", "c", spec())
        (task,) = await store.active(kind="job")
        sched.finish(job_id, "TIMEOUT")
        done = await store.wait("alice", task.id, 10)
        assert done.state is TaskState.FAILED
        assert done.error is not None and done.error.metadata["state"] == "TIMEOUT"
    finally:
        tracker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await tracker
