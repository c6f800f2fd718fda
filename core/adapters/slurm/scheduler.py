"""SlurmScheduler: the Scheduler port (core.domain.scheduler) for one system, Slurm's clients run
over its SSH pool as the calling user (core.adapters.slurm.jobs, .status and .users hold the
command objects).

A controller that does not answer is found out fast: a read-only question still running
`scheduler.ping_after` seconds after it was sent (not counting its wait for a free SSH worker) is
checked with `scontrol ping` (one at a time per system, shared by the calls that ask meanwhile),
which says DOWN at once, and ends with a 503 if the controller is down (Slurm's clients would
retry for MessageTimeout first); while it is known to be down every call that needs it is refused
at once, until a ping answers again. A command that changes something (sbatch, scancel) always
runs to its end, so its outcome is never unknown."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from core.adapters.cluster import Cluster
from core.adapters.coalesce import Coalescer, retrieve
from core.adapters.commands import DiscardPrivateDir, RemoteCommand, WritePrivateScript
from core.adapters.slurm.errors import ControllerUnreachable, SlurmCommand
from core.adapters.slurm.jobs import (
    Accounting,
    AttachJob,
    BatchScript,
    CancelJob,
    ControllerJob,
    FindTagged,
    PrepareAndSubmit,
    PrepareJob,
    Queue,
    SubmitBatch,
    job_from_controller,
)
from core.adapters.slurm.parsers import text
from core.adapters.slurm.status import Ping, ShowNodes, ShowPartitions, ShowReservations
from core.adapters.slurm.users import WhoAmI
from core.config import ConfigError
from core.domain.errors import BackendUnavailable, GatewayError
from core.domain.jobs import FINAL_JOB_STATES, Job, JobMetadata, JobSpec, merge_records
from core.domain.scheduler import DataMoverJob, Node, Partition, Reservation, UserInfo

T = TypeVar("T")


def _answered_up(ping: asyncio.Future[tuple[bool, str]]) -> bool:
    return ping.done() and not ping.cancelled() and ping.exception() is None and ping.result()[0]


def check_directives(lines: Sequence[str], system: str) -> tuple[str, ...]:
    """The system's `datatransfer_jobs_directives`: each one `#SBATCH ...` line (ConfigError, at
    start, for anything else)."""
    for d in lines:
        if "\n" in d or not d.startswith("#SBATCH"):
            raise ConfigError(
                f"systems[{system}].datatransfer_jobs_directives: {d!r} is not one '#SBATCH ...' line"
            )
    return tuple(lines)


def with_directives(script: str, directives: Sequence[str]) -> str:
    """A data-mover job's script as sbatch gets it: the directives right after its interpreter
    line (sbatch reads #SBATCH lines only before the first command)."""
    interpreter, _, body = script.partition("\n")
    return "\n".join([interpreter, *directives, body])


class SlurmScheduler:
    """The Scheduler port for one system, over its SSH pool, as the calling user."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.name = cluster.name
        cfg = cluster.cfg.scheduler
        self.timeout = cfg.timeout
        self.ping_after = cfg.ping_after
        self.ping_timeout = cfg.ping_timeout
        self.directives = check_directives(cluster.cfg.datatransfer_jobs_directives, cluster.name)
        # set when a call found the controller unreachable; cleared by the next ping that answers
        self._controller_down = False
        # the ping in flight (or the last one, with when it was sent): callers share it
        self._ping: asyncio.Future[tuple[bool, str]] | None = None
        self._ping_sent = 0.0
        self._job_lists: Coalescer[list[Job]] = Coalescer()

    # ---- running Slurm's clients -------------------------------------------------------------
    async def _run(self, user: str, cmd: RemoteCommand[T]) -> T:
        if cmd.timeout is None:
            cmd.timeout = self.timeout
        if isinstance(cmd, SlurmCommand) and cmd.controller:
            return await self._run_controller(user, cmd)
        return await self.cluster.run(user, cmd)

    async def _controller_answers(self, user: str) -> tuple[bool, str]:
        """`scontrol ping` (fast, whether the controller is up or down). One ping at a time per
        system: callers that ask while one is in flight share its answer (it is about the
        controller, not the user who ran it), and an "up" is reused for ping_after seconds (a
        "down" never: the next call checks again). Without that, every read waiting its turn
        under load queued a ping of its own (a quarter of the SSH commands of the mixed benchmark)."""
        now = time.monotonic()
        ping = self._ping
        fresh_up = ping is not None and _answered_up(ping) and now - self._ping_sent < self.ping_after
        if ping is None or (ping.done() and not fresh_up):
            ping = self._ping = asyncio.ensure_future(self._ping_as(user))
            self._ping_sent = now
            ping.add_done_callback(retrieve)
        return await asyncio.shield(ping)

    async def _ping_as(self, user: str) -> tuple[bool, str]:
        ping = Ping()
        ping.timeout = self.ping_timeout
        up, words = await self.cluster.run(user, ping)
        self._controller_down = not up
        return up, words

    def _unreachable(self, words: str = "") -> BackendUnavailable:
        return ControllerUnreachable(
            f"the scheduler of {self.name} is not reachable: its controller does not answer (scontrol ping"
            + (f": {words})" if words else ")"),
            metadata={"system": self.name},
        )

    async def _run_controller(self, user: str, cmd: SlurmCommand[T]) -> T:
        if self._controller_down:
            up, words = await self._controller_answers(user)
            if not up:
                raise self._unreachable(words)
        loop = asyncio.get_running_loop()
        sent = asyncio.Event()
        running = asyncio.ensure_future(
            self.cluster.run(user, cmd, on_sent=lambda: loop.call_soon_threadsafe(sent.set))
        )
        try:
            if cmd.read_only:
                # the watch starts once the command runs on the login node: its wait for a free
                # worker thread or SSH channel here says nothing about the controller
                started = asyncio.ensure_future(sent.wait())
                try:
                    await asyncio.wait({running, started}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    started.cancel()
            while cmd.read_only and not running.done():
                done, _ = await asyncio.wait({running}, timeout=self.ping_after)
                if not done:
                    up, words = await self._controller_answers(user)
                    if not up:
                        raise self._unreachable(words)
            return await running
        except BackendUnavailable:
            if not running.done() or self._controller_failed(running):
                self._controller_down = True
            raise
        finally:
            if not running.done():
                running.cancel()

    @staticmethod
    def _controller_failed(running: asyncio.Future[T]) -> bool:
        exc = running.exception() if not running.cancelled() else None
        return isinstance(exc, ControllerUnreachable)

    # ---- health ------------------------------------------------------------------------------
    async def ping(self, user: str) -> None:
        up, words = await self._controller_answers(user)
        if not up:
            raise self._unreachable(words)

    # ---- jobs --------------------------------------------------------------------------------
    async def submit(self, user: str, spec: JobSpec, private_dir: str, tag: str) -> tuple[str, str]:
        prepare = PrepareJob(spec.working_directory, spec.script_path, private_dir, spec.script)
        return await self._run(user, PrepareAndSubmit(prepare, SubmitBatch(spec, "", tag)))

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

    async def jobs(self, user: str, account: str = "", window: int = 86400, name: str = "") -> list[Job]:
        # callers asking for the same list at the same time share one sacct and squeue (a run that
        # starts after they asked: core.adapters.coalesce)
        jobs = await self._job_lists.run(
            (user, account, window, name), lambda: self._jobs(user, account, window, name)
        )
        return list(jobs)

    async def _jobs(self, user: str, account: str, window: int, name: str) -> list[Job]:
        acct, queue = await asyncio.gather(
            self._run(
                user,
                Accounting(
                    user=user, account=account, cluster=self.name, window=window, name=name,
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
            standard_input=text(kv.get("StdIn")) or None,
            standard_output=text(kv.get("StdOut")) or None,
            standard_error=text(kv.get("StdErr")) or None,
        )

    async def cancel(self, user: str, job_id: str) -> None:
        await self._run(user, CancelJob(job_id))

    async def attach(self, user: str, job_id: str, command: str) -> None:
        await self._run(user, AttachJob(job_id, command))

    # ---- data-mover jobs ---------------------------------------------------------------------
    async def submit_data_mover(self, user: str, job: DataMoverJob) -> str:
        script = with_directives(job.script, self.directives)
        await self._run(user, WritePrivateScript("transfers", job.private_dir, script))
        spec = JobSpec(
            working_directory=job.home,
            script_path=f"{job.directory}/job.sh",
            name=job.name,
            account=job.account,
            standard_input="/dev/null",
            standard_output=job.output_log,
            standard_error=job.error_log,
        ).validated()
        try:
            return await self._run(user, SubmitBatch(spec, spec.script_path, job.tag))
        except BaseException:
            # sbatch may have gone through although its answer was lost: that job must not run
            with contextlib.suppress(GatewayError):
                lost = await self.find_tagged(user, job.tag)
                if lost is not None:
                    await self.cancel(user, lost)
            with contextlib.suppress(GatewayError):
                await self._run(user, DiscardPrivateDir("transfers", job.private_dir))
            raise

    # ---- the machine and the user ------------------------------------------------------------
    async def nodes(self, user: str) -> list[Node]:
        return await self._run(user, ShowNodes())

    async def partitions(self, user: str, show_hidden: bool) -> list[Partition]:
        return await self._run(user, ShowPartitions(show_hidden))

    async def reservations(self, user: str) -> list[Reservation]:
        return await self._run(user, ShowReservations())

    async def user_info(self, user: str) -> UserInfo:
        return await self._run(user, WhoAmI())

