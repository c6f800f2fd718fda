"""Slurm's job commands, one small object per client call (sbatch, squeue, sacct, scontrol,
scancel, srun), run by core.adapters.slurm.scheduler.SlurmScheduler as the calling user.

Conventions:
* Every argument is one argv element (RemoteCommand quotes it once); caller input is never
  pasted into a shell string. The fixed shell scripts (core/adapters/scripts/prepare_job.sh,
  attach_job.sh) take caller input only as positional parameters ("$1", "$2"...).
* Times are read as epoch seconds (SLURM_TIME_FORMAT=%s); exit codes from `sacct -P` text
  (sacct --json reports nonzero exit codes as 0 in 22.05).
* Columns are separated by the ASCII unit separator (parsers.SEP); the free-text,
  user-controlled columns (working directory, job name) come last, so a stray separator in them
  cannot shift the columns we decide on (user, state, exit code).
* Slurm often exits 0 after an error (scancel, scontrol write batch_script): stderr decides.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from core.adapters import scripts
from core.adapters.commands import RemoteCommand
from core.adapters.slurm import parsers as p
from core.adapters.slurm.errors import (
    INVALID_JOB,
    UNREACHABLE,
    ControllerQuery,
    SlurmCommand,
    error_text,
    reported_error,
    slurm_error,
)
from core.adapters.slurm.parsers import SEP
from core.adapters.ssh import ExecResult
from core.domain.errors import FailedPrecondition, GatewayError, InvalidArgument, SchedulerError
from core.domain.jobs import (
    FINAL_JOB_STATES,
    Job,
    JobSpec,
    JobStatus,
    JobStep,
    JobTime,
    job_state,
    parse_exit_code,
)

TIME_ENV = ["env", "SLURM_TIME_FORMAT=%s"]


def start_time(window: int) -> str:
    """sacct's --starttime for "the last `window` seconds" (running jobs are always included:
    sacct selects jobs that were in any state during the window)."""
    for unit, seconds in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if window >= seconds and window % seconds == 0:
            return f"now-{window // seconds}{unit}"
    return f"now-{max(window, 0)}seconds"


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


_STEP_ID = re.compile(r"(\d+)\.(\S+)")


# ---------------------------------------------------------------- submission


class PrepareJob(RemoteCommand[str]):
    """As the user: the working directory must exist; a script_path must be a readable file;
    an inline script goes (on stdin or, in a command shell, as an unexported shell variable;
    never in a command line) to a new private file ~/.firecrest/jobs/<name>.sh. Prints the
    script's path."""

    def __init__(self, working_directory: str, script_path: str, private_dir: str, script: str):
        if not re.fullmatch(r"[0-9a-f]{32}", private_dir):
            raise ValueError("private_dir must be a task id")
        self.working_directory = working_directory
        self.script_path = script_path
        self.private_dir = private_dir
        self.stdin = None if script_path else script.encode("utf-8", "surrogatepass")
        self.stdin_var = None if script_path else "F7T_INPUT"  # prepare_job.sh reads either

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


class SubmitBatch(SlurmCommand[str]):
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

    def parse(self, result: ExecResult) -> str:
        first = result.out.strip().splitlines()[-1] if result.out.strip() else ""
        job_id = first.split(";", 1)[0].strip()
        if not job_id.isdigit():
            raise SchedulerError(f"sbatch gave no job id: {result.out.strip() or result.err}")
        return job_id


class PrepareAndSubmit(SlurmCommand[tuple[str, str]]):
    """PrepareJob, then (same shell, same SSH exec) SubmitBatch on the script it prepared: one
    round trip to the login node instead of two. Returns (job id, script path)."""

    controller = True

    def __init__(self, prepare: PrepareJob, submit: SubmitBatch):
        self.prepare = prepare
        self.submit = submit
        self.stdin = prepare.stdin
        self.stdin_var = prepare.stdin_var

    def argv(self) -> list[str]:
        return [*self.prepare.argv(), *self.submit.options()]

    def check(self, result: ExecResult) -> None:
        # the script's path is printed once it is ready: without it, the preparation failed
        if result.exit_status != 0:
            (self.submit if result.out.strip() else self.prepare).check(result)

    def parse(self, result: ExecResult) -> tuple[str, str]:
        script = self.prepare.parse(ExecResult(0, result.stdout.split(b"\n", 1)[0], b""))
        return self.submit.parse(result), script


class FindTagged(ControllerQuery[str | None]):
    """The job (known to the controller) whose comment is `tag`."""

    def __init__(self, user: str, tag: str):
        self.user = user
        self.tag = tag

    def argv(self) -> list[str]:
        return ["squeue", "-h", "-t", "all", f"--user={self.user}", "-o", f"%i{SEP}%k"]

    def parse(self, result: ExecResult) -> str | None:
        for line in result.out.splitlines():
            cols = p.columns(line, 2)
            if cols and cols[1].strip() == self.tag and cols[0].strip().isdigit():
                return cols[0].strip()
        return None


# ---------------------------------------------------------------- reading jobs
_SACCT_FIELDS = (
    "JobIDRaw,User,Group,Account,Partition,State,Reason,ExitCode,Start,End,ElapsedRaw,Suspended,"
    "TimelimitRaw,NNodes,NodeList,Priority,Cluster,WorkDir,JobName"
)
_SACCT_N = len(_SACCT_FIELDS.split(","))


class Accounting(SlurmCommand[list[Job]]):
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
        window: int = 86400,
        name: str = "",
    ):
        self.job_ids = job_ids
        self.user = user
        self.account = account
        self.allocations_only = allocations_only
        self.cluster = cluster
        self.window = window
        self.name = name

    def argv(self) -> list[str]:
        argv = [*TIME_ENV, "sacct", "-P", "-n", f"--delimiter={SEP}", f"--format={_SACCT_FIELDS}"]
        if self.allocations_only:
            argv.append("-X")
        if self.job_ids:
            argv.append(f"--jobs={p.id_list(self.job_ids)}")
        else:
            argv += [f"--user={self.user}", f"--starttime={start_time(self.window)}"]
        if self.account:
            argv.append(f"--accounts={self.account}")
        if self.name:
            argv.append(f"--name={self.name}")
        return argv

    def parse(self, result: ExecResult) -> list[Job]:
        # thousands of rows for a busy user: each job is built once, with its steps, at the end
        wanted = set(self.job_ids) if self.job_ids else None
        jobs: dict[str, dict[str, Any]] = {}
        steps: dict[str, list[JobStep]] = {}
        for line in result.out.splitlines():
            cols = p.columns(line, _SACCT_N)
            if cols is None:
                continue
            (
                raw_id, user, group, account, partition, state, reason, exit_code, start, end,
                elapsed, suspended, limit, nnodes, nodelist, priority, cluster, workdir, name,
            ) = cols  # fmt: skip
            status = _status(state, reason, exit_code)
            time = JobTime(
                elapsed=p.integer(elapsed),
                start=p.epoch(start),
                end=p.epoch(end),
                suspended=p.duration(suspended),
                limit=p.limit_seconds(limit),
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
                    "allocation_nodes": p.integer(nnodes) or 0,
                    "cluster": cluster or self.cluster,
                    "group": group,
                    "nodes": p.text(nodelist) if nodelist != "None assigned" else "",
                    "partition": partition,
                    "priority": p.integer(priority),
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


class Queue(ControllerQuery[list[Job]]):
    """`squeue -t all`: the jobs the controller knows (until MinJobAge after their end)."""

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
            argv.append(f"--jobs={p.id_list(self.job_ids)}")
        if self.account:
            argv.append(f"--account={self.account}")
        if self.name:
            argv.append(f"--name={self.name}")
        return argv

    def check(self, result: ExecResult) -> None:
        if result.exit_status != 0 and not INVALID_JOB.search(result.err):
            raise slurm_error(error_text(result))

    def parse(self, result: ExecResult) -> list[Job]:
        out = []
        for line in result.out.splitlines():
            cols = p.columns(line, _SQUEUE_N)
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
                        elapsed=p.duration(elapsed),
                        start=p.epoch(start) if word != "PENDING" else None,
                        end=p.epoch(end) if word in FINAL_JOB_STATES else None,
                        limit=p.limit_seconds(limit),
                    ),
                    user=user,
                    account=account,
                    allocation_nodes=p.integer(nnodes) or 0,
                    cluster=self.cluster,
                    group=group,
                    nodes=p.text(nodelist),
                    partition=partition,
                    priority=p.integer(priority),
                    working_directory=workdir,
                    source="controller",
                )
            )
        return out


class ControllerJob(ControllerQuery[dict[str, str] | None]):
    """`scontrol -o show job -dd ID`: the controller's record (Key=Value), None once it has
    forgotten the job. Keys after JobName override look-alikes inside the name."""

    def __init__(self, job_id: str):
        self.job_id = job_id

    def argv(self) -> list[str]:
        return [*TIME_ENV, "scontrol", "-o", "show", "job", "-dd", self.job_id]

    def check(self, result: ExecResult) -> None:
        if result.exit_status != 0 and not INVALID_JOB.search(result.err):
            raise slurm_error(error_text(result))

    def parse(self, result: ExecResult) -> dict[str, str] | None:
        if result.exit_status != 0:
            return None
        for line in result.out.splitlines():
            kv = p.key_values(line)
            if kv.get("JobId") == self.job_id:
                return kv
        return None


def job_from_controller(kv: dict[str, str], cluster: str) -> Job:
    status = _status(kv.get("JobState", ""), kv.get("Reason", ""), kv.get("ExitCode", ""))
    user = kv.get("UserId", "").split("(", 1)[0]
    group = kv.get("GroupId", "").split("(", 1)[0]
    state = status.state
    start = p.epoch(kv.get("StartTime")) if state != "PENDING" else None
    end = p.epoch(kv.get("EndTime"))
    return Job(
        job_id=kv["JobId"],
        name=kv.get("JobName", ""),
        status=status,
        time=JobTime(
            elapsed=p.duration(kv.get("RunTime")),
            start=start,
            # for unfinished jobs EndTime is a projection (start + limit), not an end
            end=end if state in FINAL_JOB_STATES else None,
            limit=p.limit_seconds(kv.get("TimeLimit")),
        ),
        user=user,
        account=p.text(kv.get("Account")),
        allocation_nodes=p.integer(kv.get("NumNodes")) or 0,
        cluster=cluster,
        group=group,
        nodes=p.text(kv.get("NodeList")),
        partition=p.text(kv.get("Partition")),
        priority=p.integer(kv.get("Priority")),
        working_directory=p.text(kv.get("WorkDir")),
        source="controller",
    )


class BatchScript(ControllerQuery[str | None]):
    """`scontrol write batch_script ID -`: the job's script (None when not available)."""

    max_output = 8 * 1024 * 1024

    def __init__(self, job_id: str):
        self.job_id = job_id

    def argv(self) -> list[str]:
        return ["scontrol", "write", "batch_script", self.job_id, "-"]

    def check(self, result: ExecResult) -> None:
        if UNREACHABLE.search(result.err):
            raise slurm_error(result.err)

    def parse(self, result: ExecResult) -> str | None:
        if reported_error(result):
            return None
        return result.out


class CancelJob(SlurmCommand[None]):
    controller = True

    def __init__(self, job_id: str):
        self.job_id = job_id

    def argv(self) -> list[str]:
        return ["scancel", self.job_id]

    def check(self, result: ExecResult) -> None:
        if reported_error(result):
            raise slurm_error(error_text(result))

    def parse(self, result: ExecResult) -> None:
        return None


class AttachJob(SlurmCommand[None]):
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
        text = error_text(result)
        if re.search(r"srun: error", result.err):
            raise slurm_error(text)
        raise InvalidArgument(f"the attached command failed (exit status {result.exit_status}): {text}")

    def parse(self, result: ExecResult) -> None:
        return None
