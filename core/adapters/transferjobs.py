"""Staged transfers on a system: the checks run as the user before anything is submitted, the
transfer job scripts (bash + coreutils + curl, run by Slurm as the user), and the
SlurmTransferSystem that submits and follows them (the domain's TransferSystem port) through the
compute adapter's SlurmScheduler.

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
import contextlib
import json
import shlex
from collections.abc import Sequence
from importlib import resources

from core.adapters import files, scripts
from core.adapters.cluster import Cluster
from core.adapters.commands import DiscardPrivateDir, RemoteCommand
from core.adapters.jobs import SlurmScheduler
from core.adapters.ssh import ExecResult
from core.config import StreamerConfig
from core.domain import paths
from core.domain.errors import GatewayError, InvalidArgument, NotFound, PermissionDenied
from core.domain.jobs import FINAL_JOB_STATES, JobSpec
from core.domain.transfers import (
    BYTES_PREFIX,
    PROGRESS_PREFIX,
    RESULT_PREFIX,
    SHA256_PREFIX,
    SUCCESS_SENTENCE,
    TRANSFER_ID,
    Check,
    Checked,
    JobEnd,
    JobPlan,
    Op,
    Submitted,
)

PRIVATE_ROOT = ".firecrest/transfers"  # below the user's home

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


class WriteTransferScript(RemoteCommand[None]):
    """~/.firecrest/transfers/<id>/ (mode 700) with the job script (mode 600) from stdin."""

    timeout = 30.0

    def __init__(self, transfer_id: str, script: str):
        if not TRANSFER_ID.match(transfer_id):
            raise ValueError("transfer_id must be 32 hex digits")
        self.transfer_id = transfer_id
        self.stdin = script.encode("utf-8", "surrogatepass")

    def argv(self) -> list[str]:
        return scripts.argv("transfer_write_script.sh", self.transfer_id)

    def check(self, result: ExecResult) -> None:
        if result.exit_status != 0:
            raise GatewayError(
                f"could not prepare the transfer directory: {result.err or result.exit_status}"
            )

    def parse(self, result: ExecResult) -> None:
        return None


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


def render_script(plan: JobPlan, directives: Sequence[str] = (), streamer: StreamerConfig | None = None) -> str:
    """The bash script of a transfer job: #SBATCH directives, the plan's data as quoted variable
    assignments, then a fixed body."""
    lines = ["#!/bin/bash"]
    for d in directives:
        if "\n" in d or not d.startswith("#SBATCH"):
            raise ValueError(f"a transfer job directive must be one '#SBATCH ...' line: {d!r}")
        lines.append(d)
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

_RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"})


class SlurmTransferSystem:
    """The TransferSystem port for one system: checks and script writing over SSH as the user,
    submission and accounting through the compute adapter's SlurmScheduler."""

    def __init__(self, cluster: Cluster, scheduler: SlurmScheduler):
        self.cluster = cluster
        self.scheduler = scheduler
        self.name = cluster.name
        self.streamer = cluster.cfg.streamer
        self.streamer_offered = self.streamer is not None
        self.streamer_ready_timeout = self.streamer.ready_timeout if self.streamer else 0.0

    async def check(self, user: str, check: Check) -> Checked:
        return await self.cluster.run(user, CheckTransfer(check))

    async def submit(self, user: str, home: str, plan: JobPlan, account: str) -> Submitted:
        directory = plan.directory
        script = render_script(plan, self.cluster.cfg.datatransfer_jobs_directives, self.streamer)
        await self.cluster.run(user, WriteTransferScript(plan.transfer_id, script))
        out, err = f"{directory}/output.log", f"{directory}/error.log"
        spec = JobSpec(
            working_directory=home,
            script_path=f"{directory}/job.sh",
            name=f"firecrest-transfer-{plan.op.value}",
            account=account,
            standard_input="/dev/null",
            standard_output=out,
            standard_error=err,
        ).validated()
        tag = f"firecrest-transfer:{plan.transfer_id}"
        try:
            job_id = await self.scheduler.sbatch(user, spec, spec.script_path, tag)
        except BaseException:
            # sbatch may have gone through although its answer was lost: that job must not run
            with contextlib.suppress(GatewayError):
                lost = await self.scheduler.find_tagged(user, tag)
                if lost is not None:
                    await self.scheduler.cancel(user, lost)
            with contextlib.suppress(GatewayError):
                await self.cluster.run(user, DiscardPrivateDir("transfers", plan.transfer_id))
            raise
        return Submitted(
            job_id=job_id, system=self.name, directory=directory, output_log=out, error_log=err,
            working_directory=home,
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
        if not path:
            return None
        return await self.scheduler.read_file(user, path)

    async def cancel(self, user: str, job_id: str) -> None:
        await self.scheduler.cancel(user, job_id)
