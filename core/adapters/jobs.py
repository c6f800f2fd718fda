"""Slurm job commands, one small object per scheduler call, and the SlurmScheduler that runs them
as the calling user on one system (the domain's Scheduler port).

Conventions:
* Every argument is one argv element (RemoteCommand quotes it once); caller input is never
  pasted into a shell string. The fixed shell scripts (core/adapters/scripts/prepare_job.sh,
  attach_job.sh) take caller input only as positional parameters ("$1", "$2"...).
* Times are read as epoch seconds (SLURM_TIME_FORMAT=%s); exit codes from `sacct -P` text
  (sacct --json reports nonzero exit codes as 0 in 22.05).
* Columns are separated by the ASCII unit separator; the free-text, user-controlled columns
  (working directory, job name) come last, so a stray separator in them cannot shift the
  columns we decide on (user, state, exit code).
* Slurm often exits 0 after an error (scancel, scontrol write batch_script): stderr decides.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, TypeVar

from core.adapters import scripts
from core.adapters.cluster import Cluster
from core.adapters.commands import DiscardPrivateDir, RemoteCommand, parse_key_values
from core.adapters.slurm import UNREACHABLE
from core.adapters.ssh import ExecResult
from core.domain.errors import (
    BackendUnavailable,
    FailedPrecondition,
    GatewayError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SchedulerError,
)
from core.domain.jobs import (
    FINAL_JOB_STATES,
    Job,
    JobMetadata,
    JobSpec,
    JobStatus,
    JobStep,
    JobTime,
    job_state,
    merge_records,
    parse_exit_code,
)

T = TypeVar("T")
SEP = "\x1f"
TIME_ENV = ["env", "SLURM_TIME_FORMAT=%s"]
# sacct's window for "the caller's jobs" (running jobs are always included: sacct selects jobs
# that were in any state during the window)
LIST_WINDOW = "now-1days"

# ---------------------------------------------------------------- errors
_BACKEND = UNREACHABLE
_INVALID_JOB = re.compile(r"Invalid job id specified|Invalid job id|does not exist", re.I)
_DENIED = re.compile(r"Access/permission denied|Permission denied|Invalid user id", re.I)
_CALLER = re.compile(
    r"Batch job submission failed|Invalid (account|partition|qos|feature|reservation|node|wckey|time)"
    r"|Requested|Unable to open file|does not look like a batch script|invalid|not allowed|unrecognized option"
    r"|Job violates|Node count specification|More processors requested|Memory required|No such file",
    re.I,
)


_PREFIX = re.compile(r"^(sbatch|squeue|sacct|scancel|scontrol|srun): (error: )?", re.I)


def slurm_error_text(result: ExecResult) -> str:
    """Slurm's error lines, without the "sbatch: error: " prefixes, in one line."""
    lines = [ln.strip() for ln in result.err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
    text = "; ".join(_PREFIX.sub("", ln) for ln in errors or lines)
    return text or result.out.strip() or f"exit status {result.exit_status}"


def slurm_error(text: str) -> GatewayError:
    """Slurm's error text as a domain error: the caller's fault -> 4XX, the scheduler's -> 503."""
    if _BACKEND.search(text):
        return BackendUnavailable(f"the scheduler is not reachable: {text}")
    if _INVALID_JOB.search(text):
        return NotFound(text)
    if _DENIED.search(text):
        return PermissionDenied(text)
    if _CALLER.search(text):
        return InvalidArgument(text)
    return SchedulerError(text)


def _has_error(result: ExecResult) -> bool:
    return result.exit_status != 0 or bool(re.search(r"\berror\b|failed", result.err, re.I))


# ---------------------------------------------------------------- value parsing
_INT = re.compile(r"-?\d+")
_DURATION = re.compile(r"(?:(\d+)-)?(?:(\d+):)?(?:(\d+):)?(\d+)(?:\.\d+)?")
_STEP_ID = re.compile(r"(\d+)\.(\S+)")

def _int(v: str | None) -> int | None:
    if v is None:
        return None
    v = v.strip()
    if v.isascii() and v.isdigit():  # the common case, without the regex
        return int(v)
    if not v or not _INT.fullmatch(v):
        return None
    return int(v)


def _epoch(v: str | None) -> int | None:
    n = _int(v)
    return n if n and n > 0 else None


@functools.lru_cache(maxsize=4096)  # a listing repeats the same few values ("00:00:00") thousands of times
def duration(v: str | None) -> int | None:
    """Slurm durations ("[D-]HH:MM:SS", "MM:SS", "SS", with optional fraction) in seconds."""
    if not v:
        return None
    v = v.strip()
    m = _DURATION.fullmatch(v)
    if not m:
        return None
    days, a, b, c = m.groups()
    parts = [int(x) for x in (a, b) if x is not None]
    secs = int(c)
    if len(parts) == 2:
        secs += parts[0] * 3600 + parts[1] * 60
    elif len(parts) == 1:
        # "MM:SS", or "D-HH:MM" is not a Slurm output format
        secs += parts[0] * (3600 if days else 60)
    return secs + int(days or 0) * 86400


def _limit_seconds(v: str | None) -> int | None:
    """sacct TimelimitRaw (minutes) or squeue %l (a duration) in seconds; UNLIMITED etc. -> None."""
    n = _int(v)
    if n is not None:
        return n * 60
    return duration(v)


def _null(v: str | None) -> str:
    v = (v or "").strip()
    return "" if v in ("(null)", "N/A", "None", "Unknown") else v


@functools.lru_cache(maxsize=4096)  # JobStatus is immutable: equal rows share one
def _status(state: str, reason: str, exit_code: str) -> JobStatus:
    """An exit code only for a job (or step) in a final state: Slurm prints 0:0 while running."""
    word = job_state(state)
    code, sig = parse_exit_code(exit_code) if word in FINAL_JOB_STATES else (None, None)
    return JobStatus(word, reason.strip() or None, code, sig)


@functools.lru_cache(maxsize=4096)
def _step_status(status: JobStatus) -> JobStatus:
    """A step has no reason of its own (FirecREST v2: null)."""
    return JobStatus(status.state, None, status.exit_code, status.interrupt_signal)


def _split(line: str, n: int) -> list[str] | None:
    """n columns, the last of which may contain the separator; None if there are fewer."""
    cols = line.split(SEP, n - 1)
    return cols if len(cols) == n else None


def _ids(job_ids: Iterable[str]) -> str:
    return ",".join(job_ids)


# ---------------------------------------------------------------- submission


class PrepareJob(RemoteCommand[str]):
    """As the user: the working directory must exist; a script_path must be a readable file;
    an inline script goes (on stdin, never in the command line) to a fresh private directory
    ~/.firecrest/jobs/<name>/job.sh. Prints the script's path."""

    def __init__(self, working_directory: str, script_path: str, private_dir: str, script: str):
        if not re.fullmatch(r"[0-9a-f]{32}", private_dir):
            raise ValueError("private_dir must be a task id")
        self.working_directory = working_directory
        self.script_path = script_path
        self.private_dir = private_dir
        self.stdin = None if script_path else script.encode("utf-8", "surrogatepass")

    def argv(self) -> list[str]:
        return scripts.argv("prepare_job.sh", self.working_directory, self.script_path, self.private_dir)

    def check(self, result: ExecResult) -> None:
        if result.exit_status in (3, 4):
            field = "working_directory" if result.exit_status == 3 else "script_path"
            raise InvalidArgument(result.err or "invalid job input", metadata={"field": field})
        if result.exit_status != 0:
            # e.g. no home directory, quota exceeded: the account's state, not the request
            raise FailedPrecondition(
                f"could not write the job script into ~/.firecrest/jobs: {result.err or result.exit_status}"
            )

    def parse(self, result: ExecResult) -> str:
        path = result.out.strip().splitlines()[-1] if result.out.strip() else ""
        if not path.startswith("/"):
            raise GatewayError(f"unexpected output while preparing the job: {result.out!r}")
        return path


class SubmitBatch(RemoteCommand[str]):
    """sbatch with every option explicit; environment variables are given to sbatch through
    `env NAME=VALUE` (any value, exactly) and exported by name (--export=ALL,NAME,...), so a
    comma or quote in a value cannot change the option's meaning."""

    controller = True

    def __init__(self, spec: JobSpec, script: str, comment: str):
        self.spec = spec
        self.script = script
        self.comment = comment

    def argv(self) -> list[str]:
        return [*self.options(), self.script]

    def options(self) -> list[str]:
        """The sbatch command line without the script (the last argument)."""
        s = self.spec
        argv: list[str] = []
        if s.env:
            argv += ["env", *[f"{k}={v}" for k, v in sorted(s.env.items())]]
        argv += ["sbatch", "--parsable", f"--chdir={s.working_directory}", f"--comment={self.comment}"]
        for opt, value in (
            ("--job-name", s.name),
            ("--account", s.account),
            ("--partition", s.partition),
            ("--reservation", s.reservation),
            ("--constraint", s.constraints),
            ("--input", s.standard_input),
            ("--output", s.standard_output),
            ("--error", s.standard_error),
        ):
            if value:
                argv.append(f"{opt}={value}")
        # the names are documentation (ALL exports them anyway); Slurm's keywords are left out
        names = [k for k in sorted(s.env) if k.upper() not in ("ALL", "NONE", "NIL")]
        argv.append("--export=" + ",".join(["ALL", *names]))
        return argv

    def check(self, result: ExecResult) -> None:
        if result.exit_status != 0:
            raise slurm_error(slurm_error_text(result))

    def parse(self, result: ExecResult) -> str:
        first = result.out.strip().splitlines()[-1] if result.out.strip() else ""
        job_id = first.split(";", 1)[0].strip()
        if not job_id.isdigit():
            raise SchedulerError(f"sbatch gave no job id: {result.out.strip() or result.err}")
        return job_id


class PrepareAndSubmit(RemoteCommand[tuple[str, str]]):
    """PrepareJob, then (same shell, same SSH exec) SubmitBatch on the script it prepared: one
    round trip to the login node instead of two. Returns (job id, script path)."""

    def __init__(self, prepare: PrepareJob, submit: SubmitBatch):
        self.prepare = prepare
        self.submit = submit
        self.stdin = prepare.stdin

    def argv(self) -> list[str]:
        return [*self.prepare.argv(), *self.submit.options()]

    def check(self, result: ExecResult) -> None:
        # the script's path is printed once it is ready: without it, the preparation failed
        if result.exit_status != 0:
            (self.submit if result.out.strip() else self.prepare).check(result)

    def parse(self, result: ExecResult) -> tuple[str, str]:
        script = self.prepare.parse(ExecResult(0, result.stdout.split(b"\n", 1)[0], b""))
        return self.submit.parse(result), script


class FindTagged(RemoteCommand[str | None]):
    """The job (known to the controller) whose comment is `tag`."""

    controller = True
    read_only = True

    def __init__(self, user: str, tag: str):
        self.user = user
        self.tag = tag

    def argv(self) -> list[str]:
        return ["squeue", "-h", "-t", "all", f"--user={self.user}", "-o", f"%i{SEP}%k"]

    def check(self, result: ExecResult) -> None:
        if result.exit_status != 0:
            raise slurm_error(slurm_error_text(result))

    def parse(self, result: ExecResult) -> str | None:
        for line in result.out.splitlines():
            cols = _split(line, 2)
            if cols and cols[1].strip() == self.tag and cols[0].strip().isdigit():
                return cols[0].strip()
        return None


# ---------------------------------------------------------------- reading jobs
_SACCT_FIELDS = (
    "JobIDRaw,User,Group,Account,Partition,State,Reason,ExitCode,Start,End,ElapsedRaw,Suspended,"
    "TimelimitRaw,NNodes,NodeList,Priority,Cluster,WorkDir,JobName"
)
_SACCT_N = len(_SACCT_FIELDS.split(","))


class Accounting(RemoteCommand[list[Job]]):
    """`sacct -P` records: of given jobs (with their steps unless allocations_only), or the
    user's jobs of the last day (optionally of one account)."""

    def __init__(
        self,
        *,
        job_ids: list[str] | None = None,
        user: str = "",
        account: str = "",
        allocations_only: bool = True,
        cluster: str = "",
        since: str = LIST_WINDOW,
        name: str = "",
    ):
        self.job_ids = job_ids
        self.user = user
        self.account = account
        self.allocations_only = allocations_only
        self.cluster = cluster
        self.since = since
        self.name = name

    def argv(self) -> list[str]:
        argv = [*TIME_ENV, "sacct", "-P", "-n", f"--delimiter={SEP}", f"--format={_SACCT_FIELDS}"]
        if self.allocations_only:
            argv.append("-X")
        if self.job_ids:
            argv.append(f"--jobs={_ids(self.job_ids)}")
        else:
            argv += [f"--user={self.user}", f"--starttime={self.since}"]
        if self.account:
            argv.append(f"--accounts={self.account}")
        if self.name:
            argv.append(f"--name={self.name}")
        return argv

    def check(self, result: ExecResult) -> None:
        if result.exit_status != 0:
            raise slurm_error(slurm_error_text(result))

    def parse(self, result: ExecResult) -> list[Job]:
        # thousands of rows for a busy user: each job is built once, with its steps, at the end
        wanted = set(self.job_ids) if self.job_ids else None
        jobs: dict[str, dict[str, Any]] = {}
        steps: dict[str, list[JobStep]] = {}
        for line in result.out.splitlines():
            cols = _split(line, _SACCT_N)
            if cols is None:
                continue
            (
                raw_id, user, group, account, partition, state, reason, exit_code, start, end,
                elapsed, suspended, limit, nnodes, nodelist, priority, cluster, workdir, name,
            ) = cols  # fmt: skip
            status = _status(state, reason, exit_code)
            time = JobTime(
                elapsed=_int(elapsed),
                start=_epoch(start),
                end=_epoch(end),
                suspended=duration(suspended),
                limit=_limit_seconds(limit),
            )
            if raw_id.isascii() and raw_id.isdigit():
                if wanted is not None and raw_id not in wanted:
                    continue
                jobs[raw_id] = {
                    "job_id": raw_id,
                    "name": name,
                    "status": status,
                    "time": time,
                    "user": user,
                    "account": account,
                    "allocation_nodes": _int(nnodes) or 0,
                    "cluster": cluster or self.cluster,
                    "group": group,
                    "nodes": _null(nodelist) if nodelist != "None assigned" else "",
                    "partition": partition,
                    "priority": _int(priority),
                    "working_directory": workdir,
                    "source": "accounting",
                }
            elif m := _STEP_ID.fullmatch(raw_id):
                steps.setdefault(m.group(1), []).append(JobStep(raw_id, name, _step_status(status), time))
        return [Job(**job, steps=tuple(steps.get(job_id, ()))) for job_id, job in jobs.items()]


_SQUEUE_FORMAT = SEP.join(
    ["%i", "%u", "%g", "%a", "%P", "%T", "%r", "%S", "%e", "%M", "%l", "%D", "%N", "%Q", "%Z", "%j"]
)
_SQUEUE_N = 16


class Queue(RemoteCommand[list[Job]]):
    """`squeue -t all`: the jobs the controller knows (until MinJobAge after their end)."""

    controller = True
    read_only = True

    def __init__(
        self, *, user: str = "", job_ids: list[str] | None = None, account: str = "", cluster: str = "",
        name: str = "",
    ):
        self.user = user
        self.job_ids = job_ids
        self.account = account
        self.cluster = cluster
        self.name = name

    def argv(self) -> list[str]:
        # all states: a job that ended a moment ago may not have its accounting record yet
        argv = [*TIME_ENV, "squeue", "-h", "-t", "all", "-o", _SQUEUE_FORMAT]
        if self.user:
            argv.append(f"--user={self.user}")
        if self.job_ids:
            argv.append(f"--jobs={_ids(self.job_ids)}")
        if self.account:
            argv.append(f"--account={self.account}")
        if self.name:
            argv.append(f"--name={self.name}")
        return argv

    def check(self, result: ExecResult) -> None:
        if result.exit_status != 0 and not _INVALID_JOB.search(result.err):
            raise slurm_error(slurm_error_text(result))

    def parse(self, result: ExecResult) -> list[Job]:
        out = []
        for line in result.out.splitlines():
            cols = _split(line, _SQUEUE_N)
            if cols is None or not cols[0].strip().isdigit():
                continue
            (
                job_id, user, group, account, partition, state, reason, start, end, elapsed, limit,
                nnodes, nodelist, priority, workdir, name,
            ) = cols  # fmt: skip
            word = job_state(state)
            out.append(
                Job(
                    job_id=job_id.strip(),
                    name=name,
                    status=JobStatus(word, reason.strip() or None),
                    # a pending job's start and an unfinished job's end are projections
                    time=JobTime(
                        elapsed=duration(elapsed),
                        start=_epoch(start) if word != "PENDING" else None,
                        end=_epoch(end) if word in FINAL_JOB_STATES else None,
                        limit=_limit_seconds(limit),
                    ),
                    user=user,
                    account=account,
                    allocation_nodes=_int(nnodes) or 0,
                    cluster=self.cluster,
                    group=group,
                    nodes=_null(nodelist),
                    partition=partition,
                    priority=_int(priority),
                    working_directory=workdir,
                    source="controller",
                )
            )
        return out


class ControllerJob(RemoteCommand[dict[str, str] | None]):
    """`scontrol -o show job -dd ID`: the controller's record (Key=Value), None once it has
    forgotten the job. Keys after JobName override look-alikes inside the name."""

    controller = True
    read_only = True

    def __init__(self, job_id: str):
        self.job_id = job_id

    def argv(self) -> list[str]:
        return [*TIME_ENV, "scontrol", "-o", "show", "job", "-dd", self.job_id]

    def check(self, result: ExecResult) -> None:
        if result.exit_status != 0 and not _INVALID_JOB.search(result.err):
            raise slurm_error(slurm_error_text(result))

    def parse(self, result: ExecResult) -> dict[str, str] | None:
        if result.exit_status != 0:
            return None
        for line in result.out.splitlines():
            kv = parse_key_values(line)
            if kv.get("JobId") == self.job_id:
                return kv
        return None


def job_from_controller(kv: dict[str, str], cluster: str) -> Job:
    status = _status(kv.get("JobState", ""), kv.get("Reason", ""), kv.get("ExitCode", ""))
    user = kv.get("UserId", "").split("(", 1)[0]
    group = kv.get("GroupId", "").split("(", 1)[0]
    state = status.state
    start = _epoch(kv.get("StartTime")) if state != "PENDING" else None
    end = _epoch(kv.get("EndTime"))
    return Job(
        job_id=kv["JobId"],
        name=kv.get("JobName", ""),
        status=status,
        time=JobTime(
            elapsed=duration(kv.get("RunTime")),
            start=start,
            # for unfinished jobs EndTime is a projection (start + limit), not an end
            end=end if state in FINAL_JOB_STATES else None,
            limit=_limit_seconds(kv.get("TimeLimit")),
        ),
        user=user,
        account=_null(kv.get("Account")),
        allocation_nodes=_int(kv.get("NumNodes")) or 0,
        cluster=cluster,
        group=group,
        nodes=_null(kv.get("NodeList")),
        partition=_null(kv.get("Partition")),
        priority=_int(kv.get("Priority")),
        working_directory=_null(kv.get("WorkDir")),
        source="controller",
    )


class BatchScript(RemoteCommand[str | None]):
    """`scontrol write batch_script ID -`: the job's script (None when not available)."""

    controller = True
    read_only = True

    max_output = 8 * 1024 * 1024

    def __init__(self, job_id: str):
        self.job_id = job_id

    def argv(self) -> list[str]:
        return ["scontrol", "write", "batch_script", self.job_id, "-"]

    def check(self, result: ExecResult) -> None:
        if _BACKEND.search(result.err):
            raise slurm_error(result.err)

    def parse(self, result: ExecResult) -> str | None:
        if _has_error(result):
            return None
        return result.out


class ReadFile(RemoteCommand[str | None]):
    max_output = 8 * 1024 * 1024

    def __init__(self, path: str):
        self.path = path

    def argv(self) -> list[str]:
        return ["cat", "--", self.path]

    def check(self, result: ExecResult) -> None:
        return None

    def parse(self, result: ExecResult) -> str | None:
        return result.out if result.exit_status == 0 else None


class CancelJob(RemoteCommand[None]):
    controller = True

    def __init__(self, job_id: str):
        self.job_id = job_id

    def argv(self) -> list[str]:
        return ["scancel", self.job_id]

    def check(self, result: ExecResult) -> None:
        if _has_error(result):
            raise slurm_error(slurm_error_text(result))

    def parse(self, result: ExecResult) -> None:
        return None


class AttachJob(RemoteCommand[None]):
    """FirecREST's attach: `srun --overlap --jobid=ID` running the caller's command (a shell
    command line, interpreted by /bin/sh inside the job as the user, exactly as given)."""

    controller = True

    def __init__(self, job_id: str, command: str):
        self.job_id = job_id
        self.shell_command = command

    def argv(self) -> list[str]:
        return scripts.argv("attach_job.sh", self.job_id, self.shell_command)

    def check(self, result: ExecResult) -> None:
        if result.exit_status == 0:
            return
        text = slurm_error_text(result)
        if re.search(r"srun: error", result.err):
            raise slurm_error(text)
        raise InvalidArgument(f"the attached command failed (exit status {result.exit_status}): {text}")

    def parse(self, result: ExecResult) -> None:
        return None


# ---------------------------------------------------------------- the port's adapter
class SlurmScheduler:
    """The Scheduler port for one system, over its SSH pool, as the calling user."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.name = cluster.name
        self.timeout = cluster.cfg.scheduler.timeout

    async def _run(self, user: str, cmd: RemoteCommand[T]) -> T:
        if cmd.timeout is None:
            cmd.timeout = self.timeout
        return await self.cluster.run(user, cmd)

    async def submit(self, user: str, spec: JobSpec, private_dir: str, tag: str) -> tuple[str, str]:
        prepare = PrepareJob(spec.working_directory, spec.script_path, private_dir, spec.script)
        return await self._run(user, PrepareAndSubmit(prepare, SubmitBatch(spec, "", tag)))

    async def sbatch(self, user: str, spec: JobSpec, script: str, tag: str) -> str:
        """sbatch of a script already on the cluster; returns the job id."""
        return await self._run(user, SubmitBatch(spec, script, tag))

    async def find_tagged(self, user: str, tag: str) -> str | None:
        return await self._run(user, FindTagged(user, tag))

    async def discard(self, user: str, private_dir: str) -> None:
        await self._run(user, DiscardPrivateDir("jobs", private_dir))

    async def job(self, user: str, job_id: str) -> Job | None:
        # accounting (exit codes, steps) and the controller (current; knows a job submitted a
        # moment ago, until MinJobAge after its end), asked at the same time
        acct_rows, kv = await asyncio.gather(
            self._run(user, Accounting(job_ids=[job_id], allocations_only=False, cluster=self.name)),
            self._run(user, ControllerJob(job_id)),
        )
        acct = acct_rows[0] if acct_rows else None
        ctl = job_from_controller(kv, acct.cluster if acct else self.name) if kv is not None else None
        return merge_records(acct, ctl)

    async def jobs(self, user: str, account: str = "", since: str = "", name: str = "") -> list[Job]:
        acct, queue = await asyncio.gather(
            self._run(
                user,
                Accounting(
                    user=user, account=account, cluster=self.name, since=since or LIST_WINDOW, name=name,
                    allocations_only=False,  # with their steps ("tasks"), as FirecREST v2 lists them
                ),
            ),
            self._run(user, Queue(user=user, account=account, cluster=self.name, name=name)),
        )
        merged: dict[str, Job] = {j.job_id: j for j in acct}
        missing_exit = []
        for q in queue:
            job = merge_records(merged.get(q.job_id), q)
            assert job is not None
            if job.source == "controller" and job.status.state in FINAL_JOB_STATES:
                # ended, not yet final in accounting: squeue has no exit code, scontrol has
                missing_exit.append(q.job_id)
            merged[q.job_id] = job
        for job_id in missing_exit[:20]:
            kv = await self._run(user, ControllerJob(job_id))
            if kv is not None:
                ctl = job_from_controller(kv, self.name)
                merged[job_id] = replace(merged[job_id], status=ctl.status, time=ctl.time)
        return sorted(merged.values(), key=lambda j: int(j.job_id))

    async def accounting(self, user: str, job_ids: list[str]) -> dict[str, Job]:
        jobs = await self._run(user, Accounting(job_ids=job_ids, cluster=self.name))
        return {j.job_id: j for j in jobs}

    async def metadata(self, user: str, job_id: str) -> JobMetadata | None:
        kv = await self._run(user, ControllerJob(job_id))
        if kv is None:
            return None
        script = await self._run(user, BatchScript(job_id))
        return JobMetadata(
            job_id=job_id,
            script=script,
            standard_input=_null(kv.get("StdIn")) or None,
            standard_output=_null(kv.get("StdOut")) or None,
            standard_error=_null(kv.get("StdErr")) or None,
        )

    async def read_file(self, user: str, path: str) -> str | None:
        return await self._run(user, ReadFile(path))

    async def cancel(self, user: str, job_id: str) -> None:
        await self._run(user, CancelJob(job_id))

    async def attach(self, user: str, job_id: str, command: str) -> None:
        await self._run(user, AttachJob(job_id, command))
