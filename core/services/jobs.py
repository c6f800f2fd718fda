"""JobService: submits, inspects and controls jobs as the calling user through the Scheduler
port, and keeps job tasks in step with the scheduler (its TaskTracker). The rules it applies
(what a job may be, what a state means) are core.domain.jobs."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.domain.errors import (
    BackendUnavailable,
    FailedPrecondition,
    GatewayError,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    Reason,
    Timeout,
)
from core.domain.files import FileSystem
from core.domain.jobs import (
    _TOKEN,
    JOB_KIND,
    PENDING_JOB_STATES,
    Job,
    JobMetadata,
    JobSpec,
    _text,
    check_attach_command,
    check_job_id,
    expand_output_path,
    job_outcome,
    job_tag,
    time_window_seconds,
)
from core.domain.scheduler import Scheduler
from core.domain.tasks import Task, TaskError, TaskRepository, TaskState, check_request_id
from core.services.tracker import TaskTracker

log = logging.getLogger(__name__)

# the most of a job script read back for its metadata once the scheduler has forgotten the job
MAX_SCRIPT_READ = 8 * 1024 * 1024


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
        files: Callable[[str], FileSystem],
        *,
        poll_interval: float = 2.0,
        max_poll_interval: float = 30.0,
        lost_after: float = 3600.0,
        partial_grace: float = 600.0,
        submit_grace: float = 180.0,
        idle_interval: float = 30.0,
        cancel_wait: float = 10.0,
        min_pass_gap: float = 1.0,
        clock: Callable[[], float] = time.time,
    ):
        self._schedulers = schedulers
        self._files = files
        self.clock = clock
        self.tasks = tasks
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.lost_after = lost_after
        self.partial_grace = partial_grace
        # a task still without a job this long after its creation lost its submitter (with
        # several replicas, another core may be running sbatch for a younger one right now)
        self.submit_grace = submit_grace
        self.cancel_wait = cancel_wait
        self._submitting: set[str] = set()
        self._cancel_requested: set[str] = set()
        self._hurried: dict[str, int] = {}  # task id -> cancel_task calls waiting for its end
        self._follow: dict[tuple[str, str], _Follow] = {}
        # every submission and cancel wakes the tracker; in a burst of them, one pass (a task
        # listing and an sacct of every unfinished job) per min_pass_gap is enough
        self.tracker = TaskTracker(
            "job", self.poll_once, busy_interval=poll_interval, idle_interval=idle_interval, clock=clock,
            min_pass_gap=min(min_pass_gap, poll_interval),
        )

    # ---- submit ------------------------------------------------------------------------------
    async def submit(self, user: str, system: str, spec: JobSpec, request_id: str | None = None) -> str:
        sched = self._schedulers(system)
        spec = spec.validated()
        request_id = check_request_id(request_id)
        for _ in range(5):
            task, created = await self.tasks.create_or_get(user, JOB_KIND, sched.name, spec.summary(), request_id)
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
        tag = job_tag(task.id)
        try:
            # the script is written and submitted in one round trip
            job_id, script = await sched.submit(user, spec, task.id, tag)
        except (Timeout, BackendUnavailable) as e:
            # the command may have run although we lost its answer: look for the job by its tag
            found = await self._find_tagged(user, sched, tag)
            if found is None:
                await self._discard(user, sched, spec, task.id)
                await self.tasks.forget(task.id)
                raise
            log.warning("the submission of task %s lost its answer (%s) but job %s exists", task.id, e, found)
            # the script's path was in the lost answer (metadata then reads the script from Slurm)
            job_id, script = found, spec.script_path
        except Exception:
            await self._discard(user, sched, spec, task.id)
            await self.tasks.forget(task.id)
            raise
        recorded = await self._record_job(task, job_id, script if spec.script else "")
        if task.id in self._cancel_requested or (recorded.done and not recorded.metadata.get("jobId")):
            # the task was cancelled while sbatch ran (through this core, or through another
            # replica, which could only mark it cancelled: the job is stopped here)
            self._cancel_requested.discard(task.id)
            await sched.cancel(user, job_id)
        return job_id

    async def _record_job(self, task: Task, job_id: str, script_file: str) -> Task:
        meta: dict[str, Any] = {"jobId": job_id, "jobState": "PENDING"}
        if script_file:
            meta["scriptFile"] = script_file
        return await self.tasks.update(task.id, metadata=meta, result={"jobId": job_id})

    async def _earlier_submission(self, user: str, task: Task) -> str | None:
        """The job id of an earlier submission with the same request_id (waiting for it if it is
        still being submitted); None if that submission has meanwhile been forgotten."""
        deadline = self.clock() + 120
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
                if self.clock() > deadline:
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
        window = time_window_seconds(time_window)
        _text("name", name, 256)
        jobs = await sched.jobs(user, account, window=window, name=name)
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
            await self._observe(user, sched.name, job)
        return job

    async def metadata(self, user: str, system: str, job_id: str) -> JobMetadata:
        job = await self.get(user, system, job_id)
        sched = self._schedulers(system)
        md = await sched.metadata(user, job_id)
        if md is not None:
            return md
        # the controller has forgotten the job: what the gateway recorded at submission
        task = next(
            (t for t in await self.tasks.find(user, JOB_KIND, "jobId", job_id) if t.system == sched.name), None
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
            script = await self._read_script(user, system, script_file)
        return JobMetadata(
            job_id=job_id,
            script=script,
            standard_input=str(m.get("standardInput") or "/dev/null"),
            standard_output=path("standardOutput", "slurm-%j.out"),
            standard_error=path("standardError", str(m.get("standardOutput") or "slurm-%j.out")),
        )

    async def _read_script(self, user: str, system: str, path: str) -> str | None:
        """A job script's text as the user (None when it is gone or cannot be read)."""
        try:
            data = await self._files(system).read(user, path, MAX_SCRIPT_READ)
        except (NotFound, PermissionDenied, InvalidArgument, FailedPrecondition, PayloadTooLarge):
            return None
        return data.decode("utf-8", "replace")

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

    async def cancel_task(self, task: Task, wait: float | None = None) -> Task:
        """The canceller of job tasks: cancel the job, then wait (at most `wait` seconds, default
        cancel_wait) until the tracker records its end, so that the answer shows the job's final
        state."""
        job_id = str(task.metadata.get("jobId") or "")
        if not job_id:
            if task.id in self._submitting:
                # the job is being submitted: the submitter cancels it as soon as it has its id
                self._cancel_requested.add(task.id)
                return task
            return await self.tasks.update(
                task.id,
                state=TaskState.CANCELLED,
                error=TaskError(
                    Reason.SCHEDULER_ERROR, "cancelled by its owner before the job was submitted"
                ),
            )
        sched = self._schedulers(task.system)
        # NotFound: the scheduler has forgotten the job, so it ended; the tracker records how
        with contextlib.suppress(NotFound):
            await sched.cancel(task.owner, job_id)
        # until the wait is over, the tracker asks about this job at every pass (not only when
        # its owner's group is due)
        self._hurried[task.id] = self._hurried.get(task.id, 0) + 1
        try:
            await self._poll_group(task.owner, task.system, force=True)  # a pending job ends at once
            self.wake(task.owner, task.system)
            return await self.tasks.wait(task.owner, task.id, self.cancel_wait if wait is None else wait)
        except NotFound:  # forgotten meanwhile (its retention ended)
            return task
        finally:
            self._hurried[task.id] -= 1
            if not self._hurried[task.id]:
                del self._hurried[task.id]

    # ---- tracking job tasks ------------------------------------------------------------------
    def wake(self, owner: str | None = None, system: str | None = None) -> None:
        """Start a tracker pass now (for this owner's jobs on this system even if their group
        is not due yet)."""
        if owner is not None and system is not None:
            follow = self._follow.get((owner, system))
            if follow is not None:
                follow.next_poll = 0.0
        self.tracker.wake()

    async def _task_of(self, user: str, system: str, job_id: str) -> Task | None:
        for t in await self.tasks.active(kind=JOB_KIND, owner=user):
            if t.system == system and str(t.metadata.get("jobId") or "") == job_id:
                return t
        return None

    async def _observe(self, user: str, system: str, job: Job) -> None:
        t = await self._task_of(user, system, job.job_id)
        if t is not None:
            await self._apply(t, job)

    async def _apply(self, task: Task, job: Job) -> Task:
        if job.final:
            state, result, error = job_outcome(job)
            return await self.tasks.update(
                task.id, state=state, result=result, error=error, metadata={"jobState": job.status.state}
            )
        changes: dict[str, Any] = {}
        if task.metadata.get("jobState") != job.status.state:
            changes["metadata"] = {"jobState": job.status.state}
        if job.status.state not in PENDING_JOB_STATES and task.state is TaskState.QUEUED:
            changes["state"] = TaskState.RUNNING
        return await self.tasks.update(task.id, **changes) if changes else task

    async def track(self) -> None:
        """Runs until cancelled: follows every unfinished job task (those left running by a
        previous process, or by a replica that died, too) to the final state of its job."""
        await self.tracker.run()

    async def poll_once(self) -> bool:
        """One pass over the unfinished job tasks; True if some remain."""
        active = [t for t in await self.tasks.active(kind=JOB_KIND) if t.id not in self._submitting]
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
        now = self.clock()
        if not force and now < follow.next_poll:
            return
        tasks = [
            t
            for t in await self.tasks.active(kind=JOB_KIND, owner=owner)
            if t.system == system and t.id not in self._submitting
        ]
        if not tasks:
            return
        try:
            sched = self._schedulers(system)
        except NotFound:
            for t in tasks:
                await self.tasks.update(
                    t.id,
                    state=TaskState.FAILED,
                    error=TaskError(Reason.SYSTEM_NOT_FOUND, f"system '{system}' is no longer configured"),
                )
            return
        try:
            orphans = [
                t
                for t in tasks
                if not t.metadata.get("jobId") and self.clock() - t.create_time >= self.submit_grace
            ]
            await self._reconcile_unsubmitted(owner, sched, orphans)
            with_job = {str(t.metadata["jobId"]): t for t in tasks if t.metadata.get("jobId")}
            records = await sched.accounting(owner, sorted(with_job)) if with_job else {}
        except GatewayError as e:
            follow.failures += 1
            delay = min(300.0, self.poll_interval * 2**follow.failures)
            follow.next_poll = self.clock() + delay
            log.warning(
                "cannot follow %s's jobs on %s (%s); next try in %.0f s", owner, system, e.message, delay
            )
            return
        follow.failures = 0
        for job_id, t in with_job.items():
            job = records.get(job_id)
            if job is None:
                if self.clock() - t.create_time > self.lost_after:
                    await self.tasks.update(
                        t.id,
                        state=TaskState.FAILED,
                        error=TaskError(
                            Reason.SCHEDULER_ERROR,
                            f"job {job_id} is unknown to the scheduler's accounting",
                            {"jobId": job_id},
                        ),
                    )
                continue
            if job.partial and self.clock() - t.create_time < self.partial_grace:
                continue  # wait for the job's own accounting record
            if job.user and job.user != owner:
                log.error("job %s of task %s belongs to %s, not %s", job_id, t.id, job.user, owner)
                continue
            await self._apply(t, job)
        # poll young jobs often and old ones rarely; a job being cancelled at every pass
        youngest = max(t.create_time for t in tasks)
        follow.next_poll = self.clock() + min(
            self.max_poll_interval, max(self.poll_interval, (self.clock() - youngest) / 10)
        )
        if any(t.id in self._hurried for t in tasks):
            follow.next_poll = 0.0

    async def _reconcile_unsubmitted(self, owner: str, sched: Scheduler, tasks: builtins.list[Task]) -> None:
        """Tasks without a job id that no core is submitting any more (none here, and older
        than submit_grace): the process that was submitting them stopped. The job exists if sbatch got through (found by its tag);
        otherwise the task failed."""
        for t in tasks:
            job_id = await sched.find_tagged(owner, job_tag(t.id))
            if job_id is not None:
                log.info("task %s: found job %s submitted before a restart", t.id, job_id)
                await self._record_job(t, job_id, "")
                continue
            await self.tasks.update(
                t.id,
                state=TaskState.FAILED,
                error=TaskError(
                    Reason.INTERNAL,
                    "the gateway stopped while submitting this job and no job was found for it",
                ),
            )


