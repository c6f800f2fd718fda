"""Jobs: what a user may submit, what a job's state means, and the service that submits, follows
and controls jobs through an abstract Scheduler port (core.adapters.jobs.SlurmScheduler is the
Slurm adapter; a test can drive this module with a fake one).

Rules that matter:
* Every text field of a job description is either passed to the scheduler as exact data (one argv
  element, quoted once by the adapter) or refused here with InvalidArgument, before anything runs.
* A job state is final only when the scheduler's accounting says so *and* the end time is set;
  the state is the first word of Slurm's State ("CANCELLED by 1001" -> CANCELLED).
* Every submission is also a Task (kind "job", result {"jobId"}), idempotent per user and
  request_id. A background tracker (JobService.track) follows unfinished job tasks with one
  accounting query per user and system, as that user, until the job's final state.
* One user never sees another user's job: "not yours" is answered exactly like "does not exist".
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from core.domain.errors import (
    BackendUnavailable,
    FailedPrecondition,
    GatewayError,
    InvalidArgument,
    NotFound,
    Reason,
    Timeout,
)
from core.domain.tasks import Task, TaskError, TaskRepository, TaskState, check_request_id

log = logging.getLogger(__name__)

JOB_KIND = "job"

# ---------------------------------------------------------------- states
FINAL_JOB_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "OUT_OF_MEMORY",
        "NODE_FAIL",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
        "REVOKED",
    }
)
PENDING_JOB_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SPECIAL_EXIT"})
_STATE_TEXT = {
    "FAILED": "failed",
    "CANCELLED": "was cancelled",
    "TIMEOUT": "reached its time limit",
    "OUT_OF_MEMORY": "ran out of memory",
    "NODE_FAIL": "ended with a node failure",
    "BOOT_FAIL": "could not boot its nodes",
    "DEADLINE": "reached its deadline",
    "PREEMPTED": "was preempted",
    "REVOKED": "was revoked",
}


def job_state(raw: str) -> str:
    """The state word of Slurm's State column ("CANCELLED by 1001" -> "CANCELLED")."""
    words = (raw or "").split()
    return words[0].rstrip("+").upper() if words else "UNKNOWN"


def parse_exit_code(raw: str) -> tuple[int | None, int | None]:
    """Slurm's "exit:signal" ("3:0", "0:125") -> (3, 0)."""
    if not raw or ":" not in raw:
        return None, None
    a, _, b = raw.partition(":")
    try:
        return int(a), int(b)
    except ValueError:
        return None, None


# ---------------------------------------------------------------- job records
@dataclass(frozen=True)
class JobStatus:
    state: str
    state_reason: str | None = None  # Slurm's text ("None" when there is none); None for a step
    exit_code: int | None = None
    interrupt_signal: int | None = None


@dataclass(frozen=True)
class JobTime:
    elapsed: int | None = None
    start: int | None = None
    end: int | None = None
    suspended: int | None = None
    limit: int | None = None  # seconds (FirecREST v2)


@dataclass(frozen=True)
class JobStep:
    id: str
    name: str
    status: JobStatus
    time: JobTime


@dataclass(frozen=True)
class Job:
    job_id: str
    name: str
    status: JobStatus
    time: JobTime
    user: str
    account: str = ""
    allocation_nodes: int = 0
    cluster: str = ""
    group: str = ""
    nodes: str = ""
    partition: str = ""
    priority: int | None = None
    kill_request_user: str | None = None
    working_directory: str = ""
    steps: tuple[JobStep, ...] = ()
    # "accounting" (sacct), "controller" (scontrol/squeue): where the record comes from
    source: str = "accounting"

    @property
    def final(self) -> bool:
        """Final only when the state is a final one *and* the end time is known."""
        return self.status.state in FINAL_JOB_STATES and bool(self.time.end)

    @property
    def partial(self) -> bool:
        """An accounting row made from a step's or the end's record before the job's own start
        record reached the database (Slurm names it "allocation" and leaves the partition empty):
        its descriptive fields are not the job's yet."""
        return self.source == "accounting" and not self.partition


def merge_records(acct: Job | None, ctl: Job | None) -> Job | None:
    """One view of a job from its accounting row and the controller's record. The state comes
    from accounting once it is final there (with the exit code), else from the controller, which
    is more current; names and the like from accounting unless its row is partial."""
    if ctl is None:
        return acct
    if acct is None:
        return ctl
    use_acct_state = acct.final and not acct.partial
    base = ctl if acct.partial else acct
    return replace(
        base,
        status=acct.status if use_acct_state else ctl.status,
        time=acct.time if use_acct_state else ctl.time,
        steps=acct.steps,
        source="accounting" if use_acct_state else "controller",
    )


@dataclass(frozen=True)
class JobMetadata:
    job_id: str
    script: str | None = None
    standard_input: str | None = None
    standard_output: str | None = None
    standard_error: str | None = None


# ---------------------------------------------------------------- submissions
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# account, partition and reservation names: a plain token (Slurm's own names are like this)
_TOKEN = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+:@-]*$")
# constraints: Slurm's feature expression syntax (names, & | , * [ ] ( ) and counts)
_CONSTRAINT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@&|,*\[\]()!-]*$")
JOB_ID = re.compile(r"^[0-9]{1,12}$")

MAX_SCRIPT_BYTES = 1024 * 1024
MAX_PATH = 4096
MAX_NAME = 200
MAX_ENV_VARS = 256
MAX_ENV_VALUE = 64 * 1024


@dataclass(frozen=True)
class JobSpec:
    """A job description (FirecREST's JobDescriptionModel); empty strings mean "not given"."""

    working_directory: str
    script: str = ""
    script_path: str = ""
    name: str = ""
    account: str = ""
    partition: str = ""
    reservation: str = ""
    constraints: str = ""
    standard_input: str = ""
    standard_output: str = ""
    standard_error: str = ""
    env: Mapping[str, str] = field(default_factory=dict)

    def validated(self) -> JobSpec:
        """This spec if every field is acceptable; InvalidArgument naming the field otherwise."""
        if not self.script.strip() and not self.script_path:
            if self.script:
                raise InvalidArgument("job.script is empty", metadata={"field": "script"})
            raise InvalidArgument(
                "one of job.script or job.script_path is required", metadata={"field": "script"}
            )
        if self.script and self.script_path:
            raise InvalidArgument(
                "give either job.script or job.script_path, not both", metadata={"field": "script"}
            )
        if self.script:
            data = self.script.encode("utf-8", "surrogatepass")
            if len(data) > MAX_SCRIPT_BYTES:
                raise InvalidArgument(
                    f"job.script is larger than {MAX_SCRIPT_BYTES} bytes", metadata={"field": "script"}
                )
            if "\x00" in self.script:
                raise InvalidArgument("job.script contains a NUL character", metadata={"field": "script"})
            if not self.script.startswith("#!"):
                raise InvalidArgument(
                    "job.script must start with an interpreter line such as #!/bin/bash (sbatch requires it)",
                    metadata={"field": "script"},
                )
        _path("working_directory", self.working_directory, required=True, absolute=True)
        _path("script_path", self.script_path, absolute=True)
        for f in ("standard_input", "standard_output", "standard_error"):
            _path(f, getattr(self, f))
        _text("name", self.name, MAX_NAME)
        for f in ("account", "partition", "reservation"):
            v = getattr(self, f)
            if v and (len(v) > 128 or not _TOKEN.match(v)):
                raise InvalidArgument(
                    f"job.{f} {v!r} is not a valid {f} name (letters, digits and _ . + : @ -, "
                    "not starting with -)",
                    metadata={"field": f},
                )
        if self.constraints and (len(self.constraints) > 1024 or not _CONSTRAINT.match(self.constraints)):
            raise InvalidArgument(
                f"job.constraints {self.constraints!r} is not a valid constraint expression",
                metadata={"field": "constraints"},
            )
        if len(self.env) > MAX_ENV_VARS:
            raise InvalidArgument(
                f"job.env has more than {MAX_ENV_VARS} variables", metadata={"field": "env"}
            )
        for k, v in self.env.items():
            if not _ENV_NAME.match(k):
                raise InvalidArgument(
                    f"job.env: {k!r} is not a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)",
                    metadata={"field": "env"},
                )
            if "\x00" in v or len(v) > MAX_ENV_VALUE:
                raise InvalidArgument(
                    f"job.env: the value of {k} contains NUL or is longer than {MAX_ENV_VALUE} characters",
                    metadata={"field": "env"},
                )
        return self

    def summary(self) -> dict[str, Any]:
        """What a job task records about its submission (no script text, no env values)."""
        d: dict[str, Any] = {"jobId": "", "workingDirectory": self.working_directory}
        for key, value in (
            ("jobName", self.name),
            ("scriptPath", self.script_path),
            ("account", self.account),
            ("partition", self.partition),
            ("standardInput", self.standard_input),
            ("standardOutput", self.standard_output),
            ("standardError", self.standard_error),
        ):
            if value:
                d[key] = value
        return d


def _text(fieldname: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidArgument(
            f"job.{fieldname} is longer than {limit} characters", metadata={"field": fieldname}
        )
    if _CONTROL.search(value):
        raise InvalidArgument(
            f"job.{fieldname} contains control characters (newline, tab, ...)", metadata={"field": fieldname}
        )


def _path(fieldname: str, value: str, *, required: bool = False, absolute: bool = False) -> None:
    if not value:
        if required:
            raise InvalidArgument(f"job.{fieldname} is required", metadata={"field": fieldname})
        return
    _text(fieldname, value, MAX_PATH)
    if absolute and not value.startswith("/"):
        raise InvalidArgument(
            f"job.{fieldname} must be an absolute path, got {value!r}", metadata={"field": fieldname}
        )


# GET /compute/{system}/jobs?time_window=...: FirecREST v2's windows, as Slurm start times
TIME_WINDOWS = {"1h": "now-1hours", "8h": "now-8hours", "24h": "now-24hours", "3d": "now-3days", "7d": "now-7days"}
DEFAULT_TIME_WINDOW = "24h"


def time_window_start(window: str) -> str:
    """The Slurm start time of a listing window ("" is the default, the last 24 hours)."""
    start = TIME_WINDOWS.get(window or DEFAULT_TIME_WINDOW)
    if start is None:
        raise InvalidArgument(
            f"time_window must be one of {', '.join(TIME_WINDOWS)} (got {window!r})",
            metadata={"field": "time_window"},
        )
    return start


def job_page(jobs: list[Job], page_size: int, page_token: str) -> tuple[list[Job], str]:
    """One page of a listing in job id order (keyset: the token is the last id of the previous
    page, so jobs that start or end between two calls neither repeat nor vanish); page_size 0 = all."""
    if page_size < 0:
        raise InvalidArgument("page_size must not be negative", metadata={"field": "page_size"})
    if page_token and not page_token.isdigit():
        raise InvalidArgument(f"invalid page_token {page_token!r}", metadata={"field": "page_token"})
    ordered = sorted(jobs, key=lambda j: int(j.job_id))
    if page_token:
        ordered = [j for j in ordered if int(j.job_id) > int(page_token)]
    if page_size == 0 or len(ordered) <= page_size:
        return ordered, ""
    page = ordered[:page_size]
    return page, page[-1].job_id


def check_job_id(job_id: str) -> str:
    if not JOB_ID.match(job_id or ""):
        raise InvalidArgument(
            f"invalid job id {job_id!r} (a Slurm job id is a number)", metadata={"job_id": job_id}
        )
    return job_id


def check_attach_command(command: str) -> str:
    if not command.strip():
        raise InvalidArgument("command is empty", metadata={"field": "command"})
    if "\x00" in command or len(command) > 64 * 1024:
        raise InvalidArgument("command contains NUL or is too long", metadata={"field": "command"})
    return command


# ---------------------------------------------------------------- the scheduler port
class Scheduler(Protocol):
    """One system's batch scheduler, used as a given user (every call runs as `user`)."""

    name: str

    async def prepare(self, user: str, spec: JobSpec, private_dir: str) -> str:
        """Check the working directory (and script_path) as the user; for an inline script write
        it into a fresh private directory named `private_dir` in the user's home and return its
        path (else return spec.script_path). InvalidArgument when the user's input is wrong."""
        ...

    async def submit(self, user: str, spec: JobSpec, script: str, tag: str) -> str:
        """sbatch; returns the job id. `tag` is recorded with the job so that find_tagged finds it."""
        ...

    async def find_tagged(self, user: str, tag: str) -> str | None: ...

    async def discard(self, user: str, private_dir: str) -> None: ...

    async def job(self, user: str, job_id: str) -> Job | None:
        """The job with its steps, whoever owns it (the caller checks Job.user), or None."""
        ...

    async def jobs(self, user: str, account: str = "", since: str = "", name: str = "") -> list[Job]:
        """The user's jobs active since `since` (a Slurm time such as "now-1hours"; empty: the
        last day), optionally of one account and with exactly one name, with their steps."""
        ...

    async def accounting(self, user: str, job_ids: list[str]) -> dict[str, Job]:
        """Accounting records (no steps) of these jobs, by id (missing ones are absent)."""
        ...

    async def metadata(self, user: str, job_id: str) -> JobMetadata | None: ...

    async def read_file(self, user: str, path: str) -> str | None: ...

    async def cancel(self, user: str, job_id: str) -> None: ...

    async def attach(self, user: str, job_id: str, command: str) -> None: ...


def job_outcome(job: Job) -> tuple[TaskState, dict[str, Any] | None, TaskError | None]:
    """The task state, result and error that a finished job means."""
    st = job.status
    result: dict[str, Any] = {"jobId": job.job_id, "state": st.state}
    if st.exit_code is not None:
        result["exitCode"] = st.exit_code
    if st.interrupt_signal is not None:
        result["interruptSignal"] = st.interrupt_signal
    if st.state == "COMPLETED":
        return TaskState.SUCCEEDED, result, None
    meta = {k: str(v) for k, v in result.items()}
    text = _STATE_TEXT.get(st.state, st.state.lower())
    msg = f"job {job.job_id} {text} (state {st.state}"
    if st.exit_code is not None:
        msg += f", exit code {st.exit_code}"
    if st.interrupt_signal:
        msg += f", signal {st.interrupt_signal}"
    msg += ")"
    error = TaskError(Reason.SCHEDULER_ERROR, msg, meta)
    state = TaskState.CANCELLED if st.state == "CANCELLED" else TaskState.FAILED
    return state, result, error


def expand_output_path(pattern: str, job_id: str, name: str, user: str, workdir: str) -> str:
    """Slurm's default/relative output paths and the common % patterns, for records that the
    controller no longer has (only used as a fallback)."""
    out = pattern.replace("%%", "\0").replace("%j", job_id).replace("%x", name).replace("%u", user)
    out = out.replace("%A", job_id).replace("\0", "%")
    if not out.startswith("/") and workdir:
        out = workdir.rstrip("/") + "/" + out
    return out


# ---------------------------------------------------------------- the service
@dataclass
class _Follow:
    next_poll: float = 0.0
    failures: int = 0


class JobService:
    """Submits, inspects and controls jobs as the calling user, and keeps job tasks in step with
    the scheduler (track())."""

    def __init__(
        self,
        schedulers: Callable[[str], Scheduler],
        tasks: TaskRepository,
        *,
        poll_interval: float = 2.0,
        max_poll_interval: float = 30.0,
        lost_after: float = 3600.0,
        partial_grace: float = 600.0,
    ):
        self._schedulers = schedulers
        self.tasks = tasks
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.lost_after = lost_after
        self.partial_grace = partial_grace
        self._submitting: set[str] = set()
        self._cancel_requested: set[str] = set()
        self._follow: dict[tuple[str, str], _Follow] = {}
        self._wake = asyncio.Event()

    # ---- submit ------------------------------------------------------------------------------
    async def submit(self, user: str, system: str, spec: JobSpec, request_id: str | None = None) -> str:
        sched = self._schedulers(system)
        spec = spec.validated()
        request_id = check_request_id(request_id)
        for _ in range(5):
            task, created = self.tasks.create_or_get(user, JOB_KIND, sched.name, spec.summary(), request_id)
            if created:
                break
            job_id = await self._earlier_submission(user, task)
            if job_id is not None:
                return job_id
        else:
            raise FailedPrecondition("a submission with this request_id keeps failing; use a new request_id")
        # from here the submission completes even if the caller goes away (a cancelled RPC must
        # not leave a job without its task); the tracker leaves tasks being submitted alone
        self._submitting.add(task.id)
        return await asyncio.shield(self._submit_tracked(user, sched, spec, task))

    async def _submit_tracked(self, user: str, sched: Scheduler, spec: JobSpec, task: Task) -> str:
        try:
            return await self._submit(user, sched, spec, task)
        finally:
            self._submitting.discard(task.id)
            self.wake(user, sched.name)

    async def _submit(self, user: str, sched: Scheduler, spec: JobSpec, task: Task) -> str:
        try:
            script = await sched.prepare(user, spec, task.id)
        except Exception:
            self.tasks.forget(task.id)
            raise
        tag = _tag(task.id)
        try:
            job_id = await sched.submit(user, spec, script, tag)
        except (Timeout, BackendUnavailable) as e:
            # the command may have run although we lost its answer: look for the job by its tag
            found = await self._find_tagged(user, sched, tag)
            if found is None:
                await self._discard(user, sched, spec, task.id)
                self.tasks.forget(task.id)
                raise
            log.warning("sbatch for task %s lost its answer (%s) but job %s exists", task.id, e, found)
            job_id = found
        except Exception:
            await self._discard(user, sched, spec, task.id)
            self.tasks.forget(task.id)
            raise
        self._record_job(task, job_id, script if spec.script else "")
        if task.id in self._cancel_requested:
            # the task was cancelled while sbatch ran
            self._cancel_requested.discard(task.id)
            await sched.cancel(user, job_id)
        return job_id

    def _record_job(self, task: Task, job_id: str, script_file: str) -> Task:
        meta: dict[str, Any] = {"jobId": job_id, "jobState": "PENDING"}
        if script_file:
            meta["scriptFile"] = script_file
        return self.tasks.update(task.id, metadata=meta, result={"jobId": job_id})

    async def _earlier_submission(self, user: str, task: Task) -> str | None:
        """The job id of an earlier submission with the same request_id (waiting for it if it is
        still being submitted); None if that submission has meanwhile been forgotten."""
        deadline = time.monotonic() + 120
        try:
            async for t in self.tasks.watch(user, task.id):
                job_id = str(t.metadata.get("jobId") or "")
                if job_id:
                    return job_id
                if t.done:
                    err = t.error
                    raise GatewayError(
                        f"the submission with this request_id failed: {err.message if err else t.state.value}",
                        reason=err.reason if err else Reason.INTERNAL,
                    )
                if time.monotonic() > deadline:
                    break
        except NotFound:
            return None
        raise Timeout("a submission with this request_id is still in progress; retry later")

    async def _find_tagged(self, user: str, sched: Scheduler, tag: str) -> str | None:
        try:
            return await sched.find_tagged(user, tag)
        except GatewayError as e:
            log.warning("could not look for job tagged %s: %s", tag, e.message)
            return None

    async def _discard(self, user: str, sched: Scheduler, spec: JobSpec, private_dir: str) -> None:
        if not spec.script:
            return
        try:
            await sched.discard(user, private_dir)
        except GatewayError as e:
            log.info("could not remove %s's job directory %s: %s", user, private_dir, e.message)

    # ---- inspect -----------------------------------------------------------------------------
    async def list(
        self, user: str, system: str, account: str = "", name: str = "", time_window: str = ""
    ) -> list[Job]:
        sched = self._schedulers(system)
        if account and not _TOKEN.match(account):
            raise InvalidArgument(f"invalid account name {account!r}", metadata={"field": "account"})
        since = time_window_start(time_window)
        _text("name", name, 256)
        jobs = await sched.jobs(user, account, since=since, name=name)
        # the caller's own jobs only, whatever the scheduler lets them see
        return [j for j in jobs if j.user == user and (not name or j.name == name)]

    async def get(self, user: str, system: str, job_id: str) -> Job:
        sched = self._schedulers(system)
        check_job_id(job_id)
        job = await sched.job(user, job_id)
        if job is None or job.user != user:
            # FirecREST v2's words: clients (pyfirecrest's wait_for_job...) match "Job not found"
            raise NotFound("Job not found.", metadata={"job_id": job_id})
        if job.final and job.source == "accounting" and not job.partial:
            self._observe(user, sched.name, job)
        return job

    async def metadata(self, user: str, system: str, job_id: str) -> JobMetadata:
        job = await self.get(user, system, job_id)
        sched = self._schedulers(system)
        md = await sched.metadata(user, job_id)
        if md is not None:
            return md
        # the controller has forgotten the job: what the gateway recorded at submission
        task = next(
            (t for t in self.tasks.find(user, JOB_KIND, "jobId", job_id) if t.system == sched.name), None
        )
        if task is None:
            return JobMetadata(job_id=job_id)
        m = task.metadata
        wd = str(m.get("workingDirectory") or job.working_directory)

        def path(key: str, default: str) -> str:
            return expand_output_path(str(m.get(key) or default), job_id, job.name, user, wd)

        script = None
        script_file = str(m.get("scriptFile") or m.get("scriptPath") or "")
        if script_file:
            script = await sched.read_file(user, script_file)
        return JobMetadata(
            job_id=job_id,
            script=script,
            standard_input=str(m.get("standardInput") or "/dev/null"),
            standard_output=path("standardOutput", "slurm-%j.out"),
            standard_error=path("standardError", str(m.get("standardOutput") or "slurm-%j.out")),
        )

    # ---- control -----------------------------------------------------------------------------
    async def cancel(self, user: str, system: str, job_id: str) -> None:
        job = await self.get(user, system, job_id)
        if job.final:
            raise FailedPrecondition(
                f"job {job_id} has already ended ({job.status.state})",
                metadata={"job_id": job_id, "state": job.status.state},
            )
        sched = self._schedulers(system)
        await sched.cancel(user, job_id)
        self.wake(user, sched.name)

    async def attach(self, user: str, system: str, job_id: str, command: str) -> None:
        check_attach_command(command)
        job = await self.get(user, system, job_id)
        if job.status.state != "RUNNING":
            raise FailedPrecondition(
                f"job {job_id} is {job.status.state}: a command can only be attached to a running job",
                metadata={"job_id": job_id, "state": job.status.state},
            )
        await self._schedulers(system).attach(user, job_id, command)

    async def cancel_task(self, task: Task, wait: float = 10.0) -> Task:
        """The canceller of job tasks: scancel the job, then give the scheduler a moment so the
        answer shows the job's final state."""
        job_id = str(task.metadata.get("jobId") or "")
        if not job_id:
            if task.id in self._submitting:
                # sbatch is running: the submitter cancels the job as soon as it has its id
                self._cancel_requested.add(task.id)
                return task
            return self.tasks.update(
                task.id,
                state=TaskState.CANCELLED,
                error=TaskError(
                    Reason.SCHEDULER_ERROR, "cancelled by its owner before the job was submitted"
                ),
            )
        sched = self._schedulers(task.system)
        # NotFound: the controller has forgotten the job, so it ended; the tracker records how
        with contextlib.suppress(NotFound):
            await sched.cancel(task.owner, job_id)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            await self._poll_group(task.owner, task.system, force=True)
            t = self.tasks.get_any(task.id)
            if t is None or t.done:
                break
        return self.tasks.get_any(task.id) or task

    # ---- tracking job tasks ------------------------------------------------------------------
    def wake(self, owner: str | None = None, system: str | None = None) -> None:
        """Start a tracker pass now (for this owner's jobs on this system even if their group
        is not due yet)."""
        if owner is not None and system is not None:
            follow = self._follow.get((owner, system))
            if follow is not None:
                follow.next_poll = 0.0
        self._wake.set()

    def _task_of(self, user: str, system: str, job_id: str) -> Task | None:
        for t in self.tasks.active(kind=JOB_KIND, owner=user):
            if t.system == system and str(t.metadata.get("jobId") or "") == job_id:
                return t
        return None

    def _observe(self, user: str, system: str, job: Job) -> None:
        t = self._task_of(user, system, job.job_id)
        if t is not None:
            self._apply(t, job)

    def _apply(self, task: Task, job: Job) -> Task:
        if job.final:
            state, result, error = job_outcome(job)
            return self.tasks.update(
                task.id, state=state, result=result, error=error, metadata={"jobState": job.status.state}
            )
        changes: dict[str, Any] = {}
        if task.metadata.get("jobState") != job.status.state:
            changes["metadata"] = {"jobState": job.status.state}
        if job.status.state not in PENDING_JOB_STATES and task.state is TaskState.QUEUED:
            changes["state"] = TaskState.RUNNING
        return self.tasks.update(task.id, **changes) if changes else task

    async def track(self) -> None:
        """Runs until cancelled: follows every unfinished job task (those left running by a
        previous process first) to the final state of its job."""
        while True:
            self._wake.clear()  # a wake() during the pass below makes the next one start at once
            try:
                pending = await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job tracker pass failed")
                pending = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval if pending else 30.0)

    async def poll_once(self) -> bool:
        """One pass over the unfinished job tasks; True if some remain."""
        active = [t for t in self.tasks.active(kind=JOB_KIND) if t.id not in self._submitting]
        groups = sorted({(t.owner, t.system) for t in active})
        sem = asyncio.Semaphore(4)

        async def one(owner: str, system: str) -> None:
            async with sem:
                await self._poll_group(owner, system)

        await asyncio.gather(*(one(o, s) for o, s in groups))
        for key in list(self._follow):
            if key not in groups:
                del self._follow[key]
        return bool(active)

    async def _poll_group(self, owner: str, system: str, force: bool = False) -> None:
        key = (owner, system)
        follow = self._follow.setdefault(key, _Follow())
        now = time.time()
        if not force and now < follow.next_poll:
            return
        tasks = [
            t
            for t in self.tasks.active(kind=JOB_KIND, owner=owner)
            if t.system == system and t.id not in self._submitting
        ]
        if not tasks:
            return
        try:
            sched = self._schedulers(system)
        except NotFound:
            for t in tasks:
                self.tasks.update(
                    t.id,
                    state=TaskState.FAILED,
                    error=TaskError(Reason.SYSTEM_NOT_FOUND, f"system '{system}' is no longer configured"),
                )
            return
        try:
            await self._reconcile_unsubmitted(owner, sched, [t for t in tasks if not t.metadata.get("jobId")])
            with_job = {str(t.metadata["jobId"]): t for t in tasks if t.metadata.get("jobId")}
            records = await sched.accounting(owner, sorted(with_job)) if with_job else {}
        except GatewayError as e:
            follow.failures += 1
            delay = min(300.0, self.poll_interval * 2**follow.failures)
            follow.next_poll = time.time() + delay
            log.warning(
                "cannot follow %s's jobs on %s (%s); next try in %.0f s", owner, system, e.message, delay
            )
            return
        follow.failures = 0
        for job_id, t in with_job.items():
            job = records.get(job_id)
            if job is None:
                if time.time() - t.create_time > self.lost_after:
                    self.tasks.update(
                        t.id,
                        state=TaskState.FAILED,
                        error=TaskError(
                            Reason.SCHEDULER_ERROR,
                            f"job {job_id} is unknown to the scheduler's accounting",
                            {"jobId": job_id},
                        ),
                    )
                continue
            if job.partial and time.time() - t.create_time < self.partial_grace:
                continue  # wait for the job's own accounting record
            if job.user and job.user != owner:
                log.error("job %s of task %s belongs to %s, not %s", job_id, t.id, job.user, owner)
                continue
            self._apply(t, job)
        # poll young jobs often and old ones rarely
        youngest = max(t.create_time for t in tasks)
        follow.next_poll = time.time() + min(
            self.max_poll_interval, max(self.poll_interval, (time.time() - youngest) / 10)
        )

    async def _reconcile_unsubmitted(self, owner: str, sched: Scheduler, tasks: builtins.list[Task]) -> None:
        """Tasks without a job id that this process is not submitting: the process that was
        submitting them stopped. The job exists if sbatch got through (found by its tag);
        otherwise the task failed."""
        for t in tasks:
            job_id = await sched.find_tagged(owner, _tag(t.id))
            if job_id is not None:
                log.info("task %s: found job %s submitted before a restart", t.id, job_id)
                self._record_job(t, job_id, "")
                continue
            self.tasks.update(
                t.id,
                state=TaskState.FAILED,
                error=TaskError(
                    Reason.INTERNAL,
                    "the gateway stopped while submitting this job and no job was found for it",
                ),
            )


def _tag(task_id: str) -> str:
    return f"firecrest-task:{task_id}"
