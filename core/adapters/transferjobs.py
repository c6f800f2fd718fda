"""Staged transfers on a system: the checks run as the user before anything is submitted, the
transfer job scripts (bash + coreutils + curl, run as the user by the system's scheduler), and
TransferJobs, the TransferSystem port's adapter, which submits and follows them as data-mover jobs
through the system's Scheduler port (any scheduler: the scheduler's adapter adds its own
directives) and reads their logs through its FileSystem port.

Safety rules:
* Caller input reaches a shell only as data: positional parameters of fixed scripts (checks) or
  single-quoted words (shlex.quote) assigned to variables at the top of a job script; the script
  body (core/adapters/scripts/transfer_*.sh) never changes with the input.
* Presigned URLs are secrets: they live in the job script (mode 600, in the user's private
  ~/.firecrest/transfers/<id>/, removed as soon as the job starts; Slurm keeps its own copy) and
  reach curl through a config on a file descriptor, never through a command line (`ps`).
* A job prints exactly one result line `FIRECREST_TRANSFER_RESULT=<CODE> <message>` (see
  core.domain.transfers.JobCode), then FirecREST's success sentence when it succeeded.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Sequence
from importlib import resources

from core.adapters import files, scripts
from core.adapters.cluster import Cluster
from core.adapters.commands import RemoteCommand
from core.adapters.ssh import ExecResult
from core.config import StreamerConfig
from core.domain import paths
from core.domain.errors import (
    FailedPrecondition,
    GatewayError,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)
from core.domain.files import FileSystem
from core.domain.jobs import FINAL_JOB_STATES
from core.domain.scheduler import DataMoverJob, Scheduler
from core.domain.transfers import (
    BYTES_PREFIX,
    PROGRESS_PREFIX,
    RESULT_PREFIX,
    SHA256_PREFIX,
    SUCCESS_SENTENCE,
    Check,
    Checked,
    JobEnd,
    JobPlan,
    Op,
    Submitted,
)

# ---------------------------------------------------------------- checks before submission


class CheckTransfer(RemoteCommand[Checked]):
    """As the user, before anything runs: the paths of the operation exist and are usable."""

    timeout = 30.0

    def __init__(self, check: Check):
        self.check_ = check

    def argv(self) -> list[str]:
        c = self.check_
        return scripts.argv("transfer_check.sh", c.op.value, c.source, c.target)

    def check(self, result: ExecResult) -> None:
        if result.exit_status == 0:
            return
        text = result.err or f"exit status {result.exit_status}"
        field = "targetPath" if self.check_.op is Op.UPLOAD else "sourcePath"
        if result.exit_status == 10:
            raise NotFound(text, metadata={"field": field})
        if result.exit_status == 11:
            raise PermissionDenied(text, metadata={"field": field})
        if result.exit_status == 12:
            raise InvalidArgument(text, metadata={"field": field})
        raise GatewayError(f"could not check the transfer's paths: {text}")

    def parse(self, result: ExecResult) -> Checked:
        lines = result.out.splitlines()
        if not lines or not lines[0].startswith("/"):
            raise GatewayError(f"unexpected output while checking the transfer: {result.out!r}")
        size = int(lines[1]) if len(lines) > 1 and lines[1].strip().isdigit() else None
        return Checked(home=lines[0], size=size)


# ---------------------------------------------------------------- job scripts


def _q(value: str | int | float) -> str:
    return shlex.quote(str(value))


def _array(values: Sequence[str]) -> str:
    return "(" + " ".join(shlex.quote(v) for v in values) + ")"


def _tool(plan: JobPlan) -> list[str]:
    if plan.op is Op.COPY:
        return [
            "cp",
            "-R",
            "-f",
            "-L" if plan.dereference else "-P",
            "--preserve=mode,timestamps,links",
            "--",
            plan.source,
            plan.target,
        ]
    if plan.op is Op.MOVE:
        return ["mv", "-f", "--", plan.source, plan.target]
    if plan.op is Op.REMOVE:
        return files.Remove(plan.source).tool_argv()
    if plan.op is Op.COMPRESS:
        return files.Compress(
            paths.split_for_archive(plan.source),
            plan.target,
            plan.compression,
            plan.dereference,
            plan.pattern,
        ).tool_argv()
    if plan.op is Op.EXTRACT:
        return files.Extract(plan.source, plan.target, plan.compression).tool_argv()
    raise ValueError(f"no tool for {plan.op}")


# The streamer's server (streamer_job.py beside this file, firecrest-streamer's protocol), run by
# the job with the configured Python; the secret travels in the environment, never in argv.
STREAMER_SERVER = resources.files("core.adapters").joinpath("streamer_job.py").read_text(encoding="utf-8")


def streamer_argv(cfg: StreamerConfig, plan: JobPlan) -> list[str]:
    """The server's command line for a plan (everything but the secret)."""
    mode, path = ("receive", plan.target) if plan.op is Op.UPLOAD else ("send", plan.source)
    return [
        cfg.python, "-c", STREAMER_SERVER,
        "--host", cfg.host,
        "--port-range", str(cfg.port_range[0]), str(cfg.port_range[1]),
        "--wait-timeout", str(cfg.wait_timeout),
        "--inbound-transfer-limit", str(cfg.inbound_transfer_limit),
        mode, "--path", path,
    ]  # fmt: skip


def streamer_coordinates(cfg: StreamerConfig, secret: str) -> str:
    """What the client needs, encoded as FirecREST v2 and firecrest-streamer do."""
    data = {"ports": list(cfg.port_range), "ips": list(cfg.public_ips), "secret": secret}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def render_script(plan: JobPlan, streamer: StreamerConfig | None = None) -> str:
    """The bash script of a transfer job: the interpreter line, the plan's data as quoted variable
    assignments, then a fixed body (the scheduler's adapter puts its directives after the first
    line)."""
    lines = ["#!/bin/bash"]
    lines += [
        f"# FirecREST staged transfer {plan.transfer_id} ({plan.op.value})",
        f"F7T_ID={_q(plan.transfer_id)}",
        f"F7T_DIR={_q(plan.directory)}",
        f"F7T_RESULT={_q(RESULT_PREFIX)}",
        f"F7T_PROGRESS={_q(PROGRESS_PREFIX)}",
        f"F7T_SHA256={_q(SHA256_PREFIX)}",
        f"F7T_BYTES={_q(BYTES_PREFIX)}",
        f"F7T_SUCCESS={_q(SUCCESS_SENTENCE[plan.op])}",
        f"F7T_DEADLINE={int(plan.staged.expires_at) if plan.staged else 0}",
    ]
    s = plan.staged
    if plan.method == "streamer":
        if streamer is None:
            raise ValueError("a streamer transfer on a system without a streamer")
        lines += [
            f"MODE={'receive' if plan.op is Op.UPLOAD else 'send'}",
            f"TARGET={_q(plan.target)}",
            f"SOURCE={_q(plan.source)}",
            f"SECRET={_q(plan.secret)}",
            f"STREAMER={_array(streamer_argv(streamer, plan))}",
        ]
        body = "transfer_streamer.sh"
    elif plan.op is Op.UPLOAD:
        assert s is not None
        lines += [
            f"TARGET={_q(plan.target)}",
            f"SIZE={int(plan.size)}",
            f"HEAD_URL={_q(s.head_url)}",
            f"GET_URL={_q(s.get_url)}",
            f"DELETE_URL={_q(s.delete_url)}",
        ]
        body = "transfer_upload.sh"
    elif plan.op is Op.DOWNLOAD:
        assert s is not None
        lines += [
            f"SOURCE={_q(plan.source)}",
            f"SIZE={int(plan.size)}",
            f"HEAD_URL={_q(s.head_url)}",
            f"PUT_URL={_q(s.put_url)}",
            f"PART_SIZE={int(s.part_size)}",
            f"PART_URLS={_array(s.part_urls)}",
            f"COMPLETE_URL={_q(s.complete_url)}",
        ]
        body = "transfer_download.sh"
    else:
        must_exist = plan.source if plan.op in (Op.REMOVE, Op.MOVE, Op.COPY, Op.COMPRESS, Op.EXTRACT) else ""
        lines += [f"MUST_EXIST={_q(must_exist)}", f"TOOL={_array(_tool(plan))}"]
        body = "transfer_operation.sh"
    return "\n".join(lines) + "\n" + scripts.load("transfer_prelude.sh") + scripts.load(body)


# ---------------------------------------------------------------- the port's adapter

# the most of a transfer job's output log read to follow it (its report lines come last)
MAX_LOG = 8 * 1024 * 1024


class TransferJobs:
    """The TransferSystem port for one system: checks over SSH as the user, then the transfer as
    a data-mover job of the system's scheduler, followed through the scheduler's accounting and
    the job's output log."""

    def __init__(self, cluster: Cluster, scheduler: Scheduler, files: FileSystem):
        self.cluster = cluster
        self.scheduler = scheduler
        self.files = files
        self.name = cluster.name
        self.streamer = cluster.cfg.streamer
        self.streamer_offered = self.streamer is not None
        self.streamer_ready_timeout = self.streamer.ready_timeout if self.streamer else 0.0

    async def check(self, user: str, check: Check) -> Checked:
        return await self.cluster.run(user, CheckTransfer(check))

    async def submit(self, user: str, home: str, plan: JobPlan, account: str) -> Submitted:
        job = DataMoverJob(
            private_dir=plan.transfer_id,
            home=home,
            script=render_script(plan, self.streamer),
            name=f"firecrest-transfer-{plan.op.value}",
            output_log=f"{plan.directory}/output.log",
            error_log=f"{plan.directory}/error.log",
            tag=f"firecrest-transfer:{plan.transfer_id}",
            account=account,
        )
        if job.directory != plan.directory:
            raise ValueError(f"a transfer's directory is {job.directory}, not {plan.directory}")
        job_id = await self.scheduler.submit_data_mover(user, job)
        return Submitted(
            job_id=job_id, system=self.name, directory=plan.directory, output_log=job.output_log,
            error_log=job.error_log, working_directory=home,
            coordinates=streamer_coordinates(self.streamer, plan.secret)
            if plan.method == "streamer" and self.streamer else "",
        )

    async def job_ends(self, user: str, job_ids: Sequence[str]) -> dict[str, JobEnd | str]:
        records = await self.scheduler.accounting(user, list(job_ids))
        out: dict[str, JobEnd | str] = {}
        for job_id, job in records.items():
            if job.user and job.user != user:
                continue
            if job.final:
                out[job_id] = JobEnd(job_id, job.status.state, job.status.exit_code)
            elif job.status.state in FINAL_JOB_STATES:
                out[job_id] = "COMPLETING"
            else:
                out[job_id] = job.status.state
        return out

    async def read_log(self, user: str, path: str) -> str | None:
        """The job's log as text; None while it does not exist (or cannot be read)."""
        if not path:
            return None
        try:
            data = await self.files.read(user, path, MAX_LOG)
        except (NotFound, PermissionDenied, InvalidArgument, FailedPrecondition, PayloadTooLarge):
            return None
        return data.decode("utf-8", "replace")

    async def cancel(self, user: str, job_id: str) -> None:
        await self.scheduler.cancel(user, job_id)
