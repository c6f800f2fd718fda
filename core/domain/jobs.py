"""Jobs: what a user may submit and what a job's state means. The scheduler is reached through the
Scheduler port (core.domain.scheduler); the service that submits, follows and controls jobs through
it is core.services.jobs.JobService.

Rules that matter:
* Every text field of a job description is either passed to the scheduler as exact data (one argv
  element, quoted once by the adapter) or refused here with InvalidArgument, before anything runs.
* A job state is final only when the scheduler's accounting says so *and* the end time is set;
  the state is the first word of Slurm's State ("CANCELLED by 1001" -> CANCELLED).
* Every submission is also a Task (kind "job", result {"jobId"}), idempotent per user and
  request_id. A background tracker (core.services.jobs) follows unfinished job tasks with one
  accounting query per user and system, as that user, until the job's final state.
* One user never sees another user's job: "not yours" is answered exactly like "does not exist".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from core.domain.errors import (
    InvalidArgument,
    Reason,
)
from core.domain.tasks import TaskError, TaskState

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
                    "job.script must start with an interpreter line such as #!/bin/bash (the batch scheduler requires it)",
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


# GET /compute/{system}/jobs?time_window=...: FirecREST v2's windows, in seconds
TIME_WINDOWS = {"1h": 3600, "8h": 8 * 3600, "24h": 86400, "3d": 3 * 86400, "7d": 7 * 86400}
DEFAULT_TIME_WINDOW = "24h"


def time_window_seconds(window: str) -> int:
    """How far back a listing looks, in seconds ("" is the default, the last 24 hours)."""
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


def job_tag(task_id: str) -> str:
    """The tag a submission records with its job, so that the job of a task can be found again
    (an sbatch whose answer was lost, a core that died between sbatch and recording the job)."""
    return f"firecrest-task:{task_id}"
