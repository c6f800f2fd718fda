"""TransferService: starts staged transfers (a task, S3 staging, a job as the user), follows their
jobs to the end (its TaskTracker) and keeps the staging store clean (the janitor). The rules are
core.domain.transfers; the ports it runs through are StagingStore and TransferSystem."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from core.domain.errors import FailedPrecondition, GatewayError, InvalidArgument, NotFound, Reason
from core.domain.tasks import Task, TaskError, TaskRepository, TaskState
from core.domain.transfers import (
    CODE_TEXT,
    STREAMER_LISTENING,
    TRANSFER_KINDS,
    Check,
    JobCode,
    JobEnd,
    JobPlan,
    Op,
    PartPlan,
    Staged,
    StagedObject,
    StagingStore,
    Started,
    Submitted,
    TransferRequest,
    TransferSystem,
    check_account,
    key_owner,
    object_key,
    op_of,
    parse_report,
    plan_parts,
    transfer_outcome,
)
from core.services.tracker import TaskTracker

log = logging.getLogger(__name__)

# a transfer's job has reported its last step for at most this many seconds: its tracker looks at
# it every finishing_interval, not every poll_interval (see _finishing)
FINISHING_FOR = 60.0
# and a transfer whose job runs without waiting for the client (not an upload, whose job waits for
# the client's parts) is looked at every finishing_interval for its first YOUNG_FOR seconds: a
# small download, copy or move is done a second or two after its job starts, and its task ends
# only when the tracker next looks (every poll_interval, it took 2.2 s for 1 MB)
YOUNG_FOR = 10.0


def _finishing(kind: str, progress: float) -> bool:
    """The job's last step: an upload's object is complete in the staging store and is being fetched
    (transfer_upload.sh reports 0.5, then 0.8), a download's last part is sent (0.9 in
    transfer_download.sh) and the upload is being completed. What is left takes seconds, and the
    task ends only when the tracker next looks: it looks sooner."""
    return (kind == Op.UPLOAD.kind and progress >= 0.5) or (kind == Op.DOWNLOAD.kind and progress >= 0.9)


class TransferService:
    """Starts transfers (task, staging, job), follows their jobs (track) and cleans the staging
    store (janitor)."""

    def __init__(
        self,
        systems: Callable[[str], TransferSystem],
        staging: StagingStore | None,
        tasks: TaskRepository,
        *,
        poll_interval: float = 2.0,
        finishing_interval: float = 0.5,
        janitor_interval: float = 60.0,
        lost_after: float = 3600.0,
        orphan_grace: float = 600.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self._systems = systems
        self.sleep = sleep
        self.staging = staging
        self.tasks = tasks
        self.poll_interval = poll_interval
        self.finishing_interval = min(finishing_interval, poll_interval)
        self._finishing_seen = False  # in this pass: a task in its last step (_finishing)
        self.janitor_interval = janitor_interval
        # (owner, system) -> clock() of the last look at the scheduler's accounting for its jobs
        self._accounted: dict[tuple[str, str], float] = {}
        self.lost_after = lost_after
        self.orphan_grace = orphan_grace
        self.clock = clock
        self._starting: set[str] = set()
        self.tracker = TaskTracker(
            "transfer", self._pass, busy_interval=poll_interval, idle_interval=janitor_interval, clock=clock
        )

    # ---- start -------------------------------------------------------------------------------
    def _store(self) -> StagingStore:
        if self.staging is None:
            raise FailedPrecondition("staged transfers need an S3 staging store, and none is configured")
        return self.staging

    async def start(self, user: str, req: TransferRequest) -> Started:
        system = self._systems(req.system)
        check_account(req.account)
        streamer = req.method == "streamer" and req.op in (Op.UPLOAD, Op.DOWNLOAD)
        if streamer and not system.streamer_offered:
            raise InvalidArgument(
                f"transfer method 'streamer' is not offered on system '{system.name}': use 's3'",
                metadata={"field": "transferMethod"},
            )
        plan_for_upload: PartPlan | None = None
        if req.op is Op.UPLOAD and not streamer:
            store = self._store()
            plan_for_upload = plan_parts(req.file_size or 0, store.part_size, store.max_part_count)
        elif req.op is Op.DOWNLOAD and not streamer:
            self._store()
        checked = await system.check(user, Check(req.op, req.source, req.target))
        meta: dict[str, Any] = {"operation": req.op.value}
        if streamer:
            meta["transferMethod"] = "streamer"
        if req.source:
            meta["sourcePath"] = req.source
        if req.target:
            meta["targetPath"] = req.target
        task, _ = await self.tasks.create_or_get(user, req.op.kind, system.name, meta)
        self._starting.add(task.id)
        staged: Staged | None = None
        try:
            directory = f"{checked.home.rstrip('/')}/.firecrest/transfers/{task.id}"
            size = 0
            if streamer:
                size = checked.size or 0 if req.op is Op.DOWNLOAD else req.file_size or 0
            elif req.op is Op.UPLOAD:
                assert plan_for_upload is not None
                size = req.file_size or 0
                staged = await asyncio.to_thread(
                    self._stage_upload, user, task.id, req.target, plan_for_upload
                )
            elif req.op is Op.DOWNLOAD:
                size = checked.size or 0
                staged = await asyncio.to_thread(self._stage_download, user, task.id, req.source, size)
            if staged is not None:
                await self.tasks.update(
                    task.id,
                    metadata={
                        "objectKey": staged.key,
                        "uploadId": staged.upload_id,
                        "expiresAt": staged.expires_at,
                        "size": size,
                    },
                )
            plan = JobPlan(
                op=req.op,
                transfer_id=task.id,
                directory=directory,
                source=req.source,
                target=req.target,
                size=size,
                dereference=req.dereference,
                compression=req.compression,
                pattern=req.pattern,
                staged=staged,
                method="streamer" if streamer else "s3",
                secret=secrets.token_urlsafe(24) if streamer else "",
            )
            job = await system.submit(user, checked.home, plan, req.account)
        except BaseException:
            await self.tasks.forget(task.id)
            if staged is not None:
                await asyncio.to_thread(self._cleanup_staged, staged.key, staged.upload_id)
            raise
        finally:
            self._starting.discard(task.id)
        task = await self.tasks.update(
            task.id,
            metadata={
                "jobId": job.job_id,
                "jobState": "PENDING",
                "workingDirectory": job.directory,
                "outputLog": job.output_log,
                "errorLog": job.error_log,
            },
        )
        if task.done:
            # cancelled while it was being started: stop the job it got and drop the staging
            with contextlib.suppress(GatewayError):
                await system.cancel(user, job.job_id)
            if staged is not None:
                await asyncio.to_thread(self._cleanup_staged, staged.key, staged.upload_id)
        self.wake()
        if streamer and not task.done:
            await self._until_listening(system, user, job)
        started = Started(task=task, job=job)
        if staged is not None and req.op is Op.UPLOAD:
            started = Started(
                task=task,
                job=job,
                upload_urls=staged.part_urls,
                complete_url=staged.complete_url,
                part_size=staged.part_size,
            )
        elif staged is not None:
            started = Started(task=task, job=job, download_url=self._download_url(staged))
        return started

    async def _until_listening(self, system: TransferSystem, user: str, job: Submitted) -> None:
        """Answer a streamer transfer once its server accepts connections (or after the system's
        ready timeout, e.g. while the job waits in the queue): clients connect as soon as they see
        the job running, which happens a moment before the server listens."""
        end = self.clock() + system.streamer_ready_timeout
        while self.clock() < end:
            log = await system.read_log(user, job.output_log)
            if log and STREAMER_LISTENING in log:
                return
            await self.sleep(0.3)

    def _stage_upload(self, user: str, tid: str, target: str, parts: PartPlan) -> Staged:
        store = self._store()
        store.ensure_bucket()
        key = object_key(user, tid, target)
        expires = store.url_expiry
        expires_at = self.clock() + expires
        upload_id = store.create_multipart(key)
        part_urls = tuple(
            store.presign("PUT", key, expires, {"uploadId": upload_id, "partNumber": str(n)})
            for n in range(1, parts.count + 1)
        )
        return Staged(
            key=key,
            expires_at=expires_at,
            head_url=store.presign("HEAD", key, expires),
            get_url=store.presign("GET", key, expires),
            delete_url=store.presign("DELETE", key, expires),
            upload_id=upload_id,
            part_urls=part_urls,
            part_size=parts.part_size,
            complete_url=store.presign("POST", key, expires, {"uploadId": upload_id}),
        )

    def _stage_download(self, user: str, tid: str, source: str, size: int) -> Staged:
        store = self._store()
        store.ensure_bucket()
        key = object_key(user, tid, source)
        expires = store.url_expiry
        expires_at = self.clock() + expires
        head_url = store.presign("HEAD", key, expires)
        get_url = store.presign("GET", key, expires)
        if size <= store.part_size:
            return Staged(
                key=key,
                expires_at=expires_at,
                head_url=head_url,
                get_url=get_url,
                put_url=store.presign("PUT", key, expires),
            )
        parts = plan_parts(size, store.part_size, store.max_part_count)
        upload_id = store.create_multipart(key)
        return Staged(
            key=key,
            expires_at=expires_at,
            head_url=head_url,
            get_url=get_url,
            upload_id=upload_id,
            part_urls=tuple(
                store.presign("PUT", key, expires, {"uploadId": upload_id, "partNumber": str(n)})
                for n in range(1, parts.count + 1)
            ),
            part_size=parts.part_size,
            complete_url=store.presign("POST", key, expires, {"uploadId": upload_id}),
        )

    @staticmethod
    def _download_url(staged: Staged) -> str:
        return staged.get_url

    # ---- cancel ------------------------------------------------------------------------------
    async def cancel_task(self, task: Task) -> Task:
        """The canceller of transfer tasks: stop the job, mark the task cancelled, clean up."""
        job_id = str(task.metadata.get("jobId") or "")
        if job_id:
            with contextlib.suppress(NotFound):  # already gone
                await self._systems(task.system).cancel(task.owner, job_id)
        t = await self.tasks.update(
            task.id,
            state=TaskState.CANCELLED,
            error=TaskError(
                Reason.FAILED_PRECONDITION,
                f"{task.kind} cancelled by its owner",
                {"cause": "CANCELLED", **({"jobId": job_id} if job_id else {})},
            ),
        )
        await self._cleanup_task(t)
        return t

    # ---- tracking ----------------------------------------------------------------------------
    def wake(self) -> None:
        self.tracker.wake()

    async def track(self) -> None:
        """Runs until cancelled: follows unfinished transfer tasks to their job's end (those of a
        replica that died, too), and runs the janitor every janitor_interval seconds, in a loop of
        its own: the janitor waits on the staging store, which can be slow to answer (s3rver, one
        thread, answered nothing for 4 s while it assembled a GiB multipart upload), and the
        tasks' ends must not wait behind it."""
        janitor = asyncio.create_task(self._janitor_loop(), name="transfer janitor")
        try:
            await self.tracker.run()
        finally:
            janitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await janitor

    async def _pass(self) -> bool:
        return await self.poll_once()

    async def _janitor_loop(self) -> None:
        while True:
            try:
                await self.janitor()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("staging janitor pass failed")
            await asyncio.sleep(self.janitor_interval)

    async def _active(self) -> list[Task]:
        return [t for t in await self.tasks.active() if t.kind in TRANSFER_KINDS and t.id not in self._starting]

    async def poll_once(self) -> bool:
        active = await self._active()
        groups: dict[tuple[str, str], list[Task]] = {}
        for t in active:
            groups.setdefault((t.owner, t.system), []).append(t)
        sem = asyncio.Semaphore(4)

        async def one(owner: str, system: str, tasks: list[Task]) -> None:
            async with sem:
                await self._poll_group(owner, system, tasks)

        self._finishing_seen = False
        self._accounted = {k: v for k, v in self._accounted.items() if k in groups}
        await asyncio.gather(*(one(o, s, ts) for (o, s), ts in groups.items()))
        self.tracker.busy_interval = self.finishing_interval if self._finishing_seen else self.poll_interval
        return bool(active)

    async def _poll_group(self, owner: str, system_name: str, tasks: list[Task]) -> None:
        try:
            system = self._systems(system_name)
        except NotFound:
            for t in tasks:
                await self._finish(t, TaskState.FAILED, None, TaskError(Reason.SYSTEM_NOT_FOUND, "system is gone"))
            return
        with_job = {str(t.metadata["jobId"]): t for t in tasks if t.metadata.get("jobId")}
        for t in tasks:
            if not t.metadata.get("jobId") and self.clock() - t.create_time > 600:
                # the process that started it stopped before submitting
                await self._finish_async(
                    t,
                    TaskState.FAILED,
                    None,
                    TaskError(Reason.INTERNAL, "the gateway stopped while starting it"),
                )
        if not with_job:
            return
        for t in with_job.values():
            if t.kind != Op.UPLOAD.kind and self.clock() - t.create_time < YOUNG_FOR:
                self._finishing_seen = True
        key = (owner, system_name)
        if self.clock() - self._accounted.get(key, float("-inf")) < self.poll_interval:
            # a look between two looks at the scheduler's accounting (a sacct: ~0.1 s of the
            # controller's, the database's and the login node's CPU, every finishing_interval
            # while the job copies), at the jobs' logs only: where a job says it is done. A job
            # that ends without saying so is seen at the next accounting, as before.
            for t in with_job.values():
                await self._job_running(system, t, None)
            return
        self._accounted[key] = self.clock()
        try:
            states = await system.job_ends(owner, sorted(with_job))
        except GatewayError as e:
            log.warning("cannot follow %s's transfer jobs on %s: %s", owner, system_name, e.message)
            return
        for job_id, t in with_job.items():
            st = states.get(job_id)
            if st is None:
                if self.clock() - t.create_time > self.lost_after:
                    await self._finish_async(
                        t,
                        TaskState.FAILED,
                        None,
                        TaskError(
                            Reason.SCHEDULER_ERROR, f"transfer job {job_id} is unknown to the scheduler"
                        ),
                    )
                continue
            if isinstance(st, JobEnd):
                await self._job_ended(system, t, st)
            else:
                await self._job_running(system, t, st)

    async def _job_running(self, system: TransferSystem, t: Task, asked: str | None) -> None:
        """A job the scheduler has not ended: `asked` is its state in the accounting, or None when
        this look did not ask (the log is read all the same)."""
        changes: dict[str, Any] = {}
        state = asked if asked is not None else str(t.metadata.get("jobState") or "")
        if t.metadata.get("jobState") != state:
            changes["metadata"] = {"jobState": state}
        if state not in ("PENDING", "REQUEUED", "CONFIGURING") and t.state is TaskState.QUEUED:
            changes["state"] = TaskState.RUNNING
        if (asked is None or state in ("RUNNING", "COMPLETING")) and t.metadata.get("outputLog"):
            report = parse_report(await system.read_log(t.owner, str(t.metadata["outputLog"])))
            if report is not None and report.code is JobCode.OK:
                # the job has done the work and said so (the file is in place, or the object is
                # complete in the staging store): the task is done now, not once the scheduler's
                # accounting has the job's end (seconds later). A failure still waits for the end,
                # whose state and exit code its error carries.
                done = JobEnd(str(t.metadata["jobId"]), "COMPLETED", 0)
                outcome, result, _ = transfer_outcome(op_of(t.kind) or Op.COPY, done, report)
                await self._finish_async(t, outcome, result, None, job_state=state)
                return
            if report is not None and report.code is not None:
                # it says it failed: its end (state, exit code) is next, asked at the next look
                self._accounted.pop((t.owner, t.system), None)
                self._finishing_seen = True
            if report is not None and report.progress is not None and report.progress != t.progress:
                changes["progress"] = report.progress
            progress = float(changes.get("progress", t.progress))
            if _finishing(t.kind, progress) and ("progress" in changes or self.clock() - t.update_time < FINISHING_FOR):
                self._finishing_seen = True
        expires_at = float(t.metadata.get("expiresAt") or 0)
        if expires_at and self.clock() > expires_at + 300 and t.kind == Op.UPLOAD.kind:
            # the job should have given up at expiry: it is stuck (or never started)
            await system.cancel(t.owner, str(t.metadata["jobId"]))
            await self._finish_async(
                t,
                TaskState.FAILED,
                None,
                TaskError(
                    Reason.TIMEOUT,
                    f"{CODE_TEXT[JobCode.URL_EXPIRED]}; the transfer job was cancelled",
                    {"cause": JobCode.URL_EXPIRED.value, "jobId": str(t.metadata["jobId"])},
                ),
            )
            return
        if changes:
            await self.tasks.update(t.id, **changes)

    async def _job_ended(self, system: TransferSystem, t: Task, end: JobEnd) -> None:
        op = op_of(t.kind) or Op.COPY
        log_path = str(t.metadata.get("outputLog") or "")
        report = parse_report(await system.read_log(t.owner, log_path)) if log_path else None
        if (report is None or report.code is None) and end.state == "COMPLETED":
            # the log may lag behind the accounting record on a shared file system: give it 30 s
            seen = float(t.metadata.get("endSeenAt") or 0)
            if not seen:
                await self.tasks.update(t.id, metadata={"endSeenAt": self.clock()})
                return
            if self.clock() - seen < 30:
                return
        state, result, error = transfer_outcome(op, end, report)
        await self._finish_async(t, state, result, error, job_state=end.state)

    async def _finish(
        self, t: Task, state: TaskState, result: dict[str, Any] | None, error: TaskError | None
    ) -> Task:
        return await self.tasks.update(t.id, state=state, result=result, error=error)

    async def _finish_async(
        self,
        t: Task,
        state: TaskState,
        result: dict[str, Any] | None,
        error: TaskError | None,
        job_state: str = "",
    ) -> None:
        meta = {"jobState": job_state} if job_state else None
        done = await self.tasks.update(t.id, state=state, result=result, error=error, metadata=meta)
        if done.state is not TaskState.SUCCEEDED:
            await self._cleanup_task(done)

    # ---- staging cleanup ---------------------------------------------------------------------
    async def _cleanup_task(self, t: Task) -> None:
        key = str(t.metadata.get("objectKey") or "")
        if key and self.staging is not None:
            await asyncio.to_thread(self._cleanup_staged, key, str(t.metadata.get("uploadId") or ""))

    def _cleanup_staged(self, key: str, upload_id: str) -> None:
        store = self.staging
        if store is None:
            return
        try:
            if upload_id:
                store.abort_multipart(key, upload_id)
            store.delete(key)
        except GatewayError as e:
            log.warning("could not clean staged object %s: %s (the janitor retries)", key, e.message)

    async def janitor(self) -> int:
        """One pass over the staging store: deletes every object whose transfer does not need it
        any more, and aborts multipart uploads older than the URL expiry. Returns the number of
        objects deleted. (S3 calls run on worker threads, task look-ups on the event loop.)"""
        store = self.staging
        if store is None:
            return 0
        now = self.clock()
        deleted = 0
        for obj in await asyncio.to_thread(lambda: list(store.objects())):
            if await self._keep(obj, now):
                continue
            try:
                await asyncio.to_thread(store.delete, obj.key)
                deleted += 1
                log.info("janitor: deleted staged object %s", obj.key)
            except GatewayError as e:
                log.warning("janitor: could not delete %s: %s", obj.key, e.message)
        stale = await asyncio.to_thread(store.stale_uploads, now - store.url_expiry - 60)
        for key, upload_id in stale or ():
            owner = key_owner(key)
            t = await self.tasks.get_any(owner.transfer_id) if owner else None
            if t is not None and not t.done:
                continue
            try:
                await asyncio.to_thread(store.abort_multipart, key, upload_id)
            except GatewayError as e:
                log.warning("janitor: could not abort upload %s of %s: %s", upload_id, key, e.message)
        return deleted

    async def _keep(self, obj: StagedObject, now: float) -> bool:
        owner = key_owner(obj.key)
        if owner is None:
            # not the gateway's: keep only while it might still be in use by someone
            return now - obj.last_modified < self.orphan_grace
        t = await self.tasks.get_any(owner.transfer_id)
        if t is None or t.owner != owner.user or t.kind not in TRANSFER_KINDS:
            return now - obj.last_modified < self.orphan_grace
        if not t.done:
            return True
        if t.state is TaskState.SUCCEEDED and t.kind == Op.DOWNLOAD.kind:
            return now < float(t.metadata.get("expiresAt") or 0)
        return False
