"""Builds the object graph from the configuration, in one place."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from core.adapters.accounts import AccountPolicy
from core.adapters.certs import CertificateAuthority
from core.adapters.cluster import Cluster
from core.adapters.commands import DiscardPrivateDir
from core.adapters.files import ShellFileSystem
from core.adapters.s3 import Staging
from core.adapters.slurm import SlurmScheduler
from core.adapters.ssh import CommandWorkers, SSHPool
from core.adapters.taskstore import TaskStore
from core.adapters.transferjobs import TransferJobs
from core.config import Config, ConfigError, TaskStoreConfig
from core.domain.certificates import UserKey
from core.domain.errors import SystemNotFound
from core.domain.files import FileSystem
from core.domain.jobs import JOB_KIND
from core.domain.scheduler import Scheduler
from core.domain.systems import Systems
from core.domain.tasks import Task, TaskRepository
from core.domain.transfers import TRANSFER_KINDS, TransferSystem
from core.observability import Metrics, gauge
from core.services.certificates import CertificateService
from core.services.files import FileService
from core.services.jobs import JobService
from core.services.retention import purge_forever
from core.services.status import StatusService
from core.services.tasks import TaskService
from core.services.transfers import TransferService

log = logging.getLogger(__name__)


class UserKeys:
    """Per-user key + certificate, minted on demand and renewed before expiry."""

    def __init__(self, ca: CertificateAuthority, accounts: AccountPolicy | None = None):
        self.ca = ca
        self.accounts = accounts or AccountPolicy()
        self._keys: dict[str, UserKey] = {}
        self._lock = threading.Lock()

    def __call__(self, user: str) -> UserKey:
        self.accounts.check(user)  # PermissionDenied: no certificate, so no SSH, for this account
        with self._lock:
            k = self._keys.get(user)
            margin = min(60, self.ca.lifetime / 5)
            if k is None or k.cert.valid_before - margin <= time.time():
                k = self._keys[user] = self.ca.new_user_key(user)
            return k


# scheduler.type -> the adapter of the Scheduler port (core.domain.scheduler) for one system,
# built with the system's Cluster (its SSH pool and config); a new scheduler is one more entry here
SCHEDULER_TYPES: dict[str, Callable[[Cluster], Scheduler]] = {"slurm": SlurmScheduler}


def task_store(cfg: TaskStoreConfig) -> TaskRepository:
    """The configured task store: SQLite (embedded, one core) or PostgreSQL (N replicas)."""
    if cfg.type == "postgres":
        from core.adapters.pgtasks import PostgresTaskStore  # psycopg: only where it is used

        return PostgresTaskStore(cfg.connection_string(), poll_interval=cfg.poll_interval)
    return TaskStore(cfg.path, poll_interval=cfg.poll_interval)


class Gateway:
    """The object graph of one core: per system its adapters (Cluster: the SSH pool; a Scheduler
    chosen by scheduler.type; a FileSystem; the transfer jobs), the task store, and the services
    the API is built on (status, certificates, jobs, files, transfers, tasks)."""

    def __init__(self, config: Config):
        self.config = config
        for i, s in enumerate(config.systems):
            if s.scheduler.type not in SCHEDULER_TYPES:
                raise ConfigError(
                    f"systems[{i}].scheduler.type: {s.scheduler.type!r} is not one of "
                    f"{sorted(SCHEDULER_TYPES)}"
                )
        self.executor = CommandWorkers(config.worker_threads, config.max_queued_commands)
        self.ca = CertificateAuthority(
            config.certificate.ca_key, config.certificate.lifetime, config.certificate.key_id_prefix
        )
        self.accounts = AccountPolicy(config.certificate.allowed_groups, config.certificate.allowed_uids)
        self.keys = UserKeys(self.ca, self.accounts)
        self.metrics = Metrics()
        # ---- adapters, one of each per system
        self.clusters = Systems({
            s.name: Cluster(
                s,
                SSHPool(s.ssh, self.keys, self.executor, self.metrics.ssh_wait_seconds.labels(s.name).observe),
                self.metrics,
            )
            for s in config.systems
        })
        self.schedulers: Systems[Scheduler] = Systems(
            {c.name: SCHEDULER_TYPES[c.cfg.scheduler.type](c) for c in self.clusters}
        )
        self.filesystems: Systems[FileSystem] = Systems({c.name: ShellFileSystem(c, ops_timeout=c.cfg.ops_timeout) for c in self.clusters})
        self.transfer_systems: Systems[TransferSystem] = Systems({
            c.name: TransferJobs(c, self.schedulers(c.name), self.filesystems(c.name)) for c in self.clusters
        })
        configs = Systems({s.name: s for s in config.systems})
        self.task_store = task_store(config.task_store)
        self.staging = Staging(config.s3) if config.s3 else None
        # ---- services
        self.status = StatusService(
            config.systems, self.schedulers, lambda name: self.clusters(name).probe(), max_age=config.health_max_age
        )
        self.certificates = CertificateService(self.ca, self.accounts, configs)
        self.files = FileService(self.filesystems, configs)
        self.jobs = JobService(
            self.schedulers,
            self.task_store,
            self.filesystems,
            poll_interval=config.jobs.poll_interval,
            max_poll_interval=config.jobs.max_poll_interval,
            idle_interval=config.jobs.idle_interval,
            submit_grace=config.jobs.submit_grace,
            lost_after=config.jobs.lost_after,
            partial_grace=config.jobs.partial_grace,
            cancel_wait=config.jobs.cancel_wait,
        )
        self.transfers = TransferService(
            self.transfer_systems,
            self.staging,
            self.task_store,
            janitor_interval=config.s3.janitor_interval if config.s3 else 60.0,
            poll_interval=config.transfers.poll_interval,
            finishing_interval=config.transfers.finishing_interval,
            lost_after=config.transfers.lost_after,
            orphan_grace=config.transfers.orphan_grace,
        )
        # the Tasks API's cancel stops the work behind a task through the canceller of its kind
        # (kinds without one are just marked cancelled)
        cancellers: dict[str, Callable[[Task], Awaitable[Task]]] = {JOB_KIND: self.jobs.cancel_task}
        cancellers.update({kind: self.transfers.cancel_task for kind in TRANSFER_KINDS})
        self.tasks = TaskService(self.task_store, cancellers)
        # ---- long-running coroutines of a serving core (start_background runs each once; the
        # job tracker first reconciles job tasks left unfinished by a previous process)
        self.background: list[Callable[[], Coroutine[Any, Any, None]]] = [
            self.jobs.track,
            self.transfers.track,
            lambda: purge_forever(self.task_store, config.task_retention, self._discard, config.task_purge_interval),
        ]
        # tasks by kind and state, counted in the background (a scrape must not wait on the store)
        self._task_counts: dict[tuple[str, str], int] = {}
        self.background.append(self._count_tasks)
        self.background.append(self._sweep_ssh)
        self._running: list[asyncio.Task[None]] = []
        self.metrics.add_callback(self._gauges)

    async def _count_tasks(self, interval: float = 5.0) -> None:
        while True:
            try:
                self._task_counts = await self.task_store.count_by_state()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("counting tasks for the metrics failed")
            await asyncio.sleep(interval)

    async def _sweep_ssh(self) -> None:
        """Close the command shells idle for too long and the connections of users who went away."""
        interval = min([s.ssh.shell_idle_timeout / 2 for s in self.config.systems if s.ssh.shell_idle_timeout] or [30.0])
        while True:
            await asyncio.sleep(max(1.0, min(interval, 30.0)))
            for c in self.clusters:
                try:
                    await asyncio.to_thread(c.pool.sweep)
                except Exception:
                    log.exception("closing idle SSH sessions of %s failed", c.name)

    def _gauges(self) -> list[Any]:
        """Metrics read at scrape time: SSH pools, tasks by state, how far behind the trackers are."""
        pools = {c.name: c.pool.usage() for c in self.clusters}
        lags = []
        for name, tracker in (("jobs", self.jobs.tracker), ("transfers", self.transfers.tracker)):
            if tracker.last_pass is not None:
                lags.append(([name], tracker.clock() - tracker.last_pass))
        return [
            gauge("f7t_ssh_pool_connections", "Open pooled SSH connections", ["system"],
                  [([s], u[0]) for s, u in pools.items()]),
            gauge("f7t_ssh_pool_channels_in_use", "SSH exec channels in use", ["system"],
                  [([s], u[1]) for s, u in pools.items()]),
            gauge("f7t_ssh_idle_shells", "Command shells open and waiting for a command", ["system"],
                  [([c.name], c.pool.idle_shells()) for c in self.clusters]),
            gauge("f7t_ssh_commands_waiting", "SSH commands waiting for a worker thread", [],
                  [([], self.executor.waiting)]),
            gauge("f7t_tasks", "Tasks in the task store, by kind and state", ["kind", "state"],
                  [([k, s], n) for (k, s), n in sorted(self._task_counts.items())]),
            gauge("f7t_tracker_lag_seconds", "Seconds since a tracker last completed a pass over its tasks",
                  ["tracker"], lags),
        ]

    async def _discard(self, task: Task) -> None:
        """Remove what the gateway left in the owner's home for a task being purged."""
        area = "jobs" if task.kind == JOB_KIND else "transfers" if task.kind in TRANSFER_KINDS else None
        if area is None:
            return
        try:
            cluster = self.clusters(task.system)
        except SystemNotFound:
            return
        await cluster.run(task.owner, DiscardPrivateDir(area, task.id))

    def start_background(self) -> None:
        """Starts self.background inside the running event loop (the job tracker first reconciles
        job tasks left unfinished by a previous process)."""
        loop = asyncio.get_running_loop()
        for fn in self.background:
            self._running.append(loop.create_task(fn(), name=getattr(fn, "__qualname__", "background")))

    async def stop_background(self) -> None:
        self.task_store.release_waiters()  # long waits and watches must not hold the shutdown
        for t in self._running:
            t.cancel()
        for t in self._running:
            try:
                await t
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("background task %s failed", t.get_name())
        self._running.clear()

    async def close(self) -> None:
        await self.task_store.close()
        for c in self.clusters:
            c.pool.close()
        self.executor.shutdown(wait=False, cancel_futures=True)
