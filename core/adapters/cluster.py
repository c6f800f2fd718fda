"""One system of the centre: its SSH pool and the commands run there as a user."""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from core.adapters import files, posix, slurm
from core.adapters.commands import RemoteCommand
from core.adapters.ssh import ExecResult, SSHPool
from core.config import SystemConfig
from core.domain.errors import BackendUnavailable
from core.observability import Metrics, audit

T = TypeVar("T")


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """A shared future's exception is its callers' to handle; when they have all gone (cancelled
    calls), it must not be logged as never retrieved."""
    if not fut.cancelled():
        fut.exception()


def _answered_up(ping: asyncio.Future[bool]) -> bool:
    return ping.done() and not ping.cancelled() and ping.exception() is None and ping.result()


@dataclass
class Probe:
    service_type: str
    healthy: bool
    latency: float | None
    message: str
    checked_at: float


class Cluster:
    def __init__(self, cfg: SystemConfig, pool: SSHPool):
        self.cfg = cfg
        self.pool = pool
        self._env_prefix = "".join(
            f"{k}={shlex.quote(v)} " for k, v in sorted(cfg.scheduler.env.items())
        )
        self._probes: list[Probe] = []
        self.id_names = files.IdNames()
        self._probe_lock = asyncio.Lock()
        # set when a call found the controller unreachable; cleared by the next ping that answers
        self._controller_down = False
        # the ping in flight (or the last one, with when it was sent): callers share it
        self._ping: asyncio.Future[bool] | None = None
        self._ping_sent = 0.0
        # the uid/gid lookup in flight: concurrent listings wait for it instead of repeating it
        self._naming: asyncio.Future[None] | None = None
        self.metrics: Metrics | None = None  # set by the wiring

    @property
    def name(self) -> str:
        return self.cfg.name

    async def run(self, user: str, cmd: RemoteCommand[T]) -> T:
        if cmd.controller:
            return await self._run_controller(user, cmd)
        return await self._run(user, cmd)

    async def controller_answers(self, user: str) -> bool:
        """`scontrol ping` (fast, whether the controller is up or down). One ping at a time per
        system: callers that ask while one is in flight share its answer (it is about the
        controller, not the user who ran it), and an "up" is reused for ping_after seconds (a
        "down" never: the next call checks again). Without that, every read waiting its turn
        under load queued a ping of its own (a third of the SSH commands of the mixed benchmark)."""
        now = time.monotonic()
        ping = self._ping
        fresh_up = ping is not None and _answered_up(ping) and now - self._ping_sent < self.cfg.scheduler.ping_after
        if ping is None or (ping.done() and not fresh_up):
            ping = self._ping = asyncio.ensure_future(self._ping_as(user))
            self._ping_sent = now
            ping.add_done_callback(_retrieve)
        return await asyncio.shield(ping)

    async def _ping_as(self, user: str) -> bool:
        ping = slurm.ControllerUp()
        ping.timeout = self.cfg.scheduler.ping_timeout
        up = await self._run(user, ping)
        self._controller_down = not up
        return up

    def _unreachable(self) -> BackendUnavailable:
        return BackendUnavailable(
            f"the scheduler of {self.name} is not reachable: its controller does not answer (scontrol ping)",
            metadata={"system": self.name},
        )

    async def _run_controller(self, user: str, cmd: RemoteCommand[T]) -> T:
        """A command that needs the controller: refused at once while the controller is known to be
        down; a read-only one is abandoned as soon as a ping finds the controller down (Slurm's
        clients would retry for MessageTimeout first). A command that changes something (sbatch,
        scancel) always runs to its end, so its outcome is never unknown."""
        if self._controller_down and not await self.controller_answers(user):
            raise self._unreachable()
        loop = asyncio.get_running_loop()
        sent = asyncio.Event()
        running = asyncio.ensure_future(self._run(user, cmd, on_sent=lambda: loop.call_soon_threadsafe(sent.set)))
        try:
            if cmd.read_only:
                # the watch starts once the command runs on the login node: its wait for a free
                # thread or SSH channel here says nothing about the controller
                started = asyncio.ensure_future(sent.wait())
                try:
                    await asyncio.wait({running, started}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    started.cancel()
            while cmd.read_only and not running.done():
                done, _ = await asyncio.wait({running}, timeout=self.cfg.scheduler.ping_after)
                if not done and not await self.controller_answers(user):
                    raise self._unreachable()
            return await running
        except BackendUnavailable:
            if not running.done() or self._scheduler_failed(running):
                self._controller_down = True
            raise
        finally:
            if not running.done():
                running.cancel()

    @staticmethod
    def _scheduler_failed(running: asyncio.Future[T]) -> bool:
        exc = running.exception() if not running.cancelled() else None
        return isinstance(exc, BackendUnavailable) and "scheduler" in exc.message and "not reachable" in exc.message

    async def _run(self, user: str, cmd: RemoteCommand[T], on_sent: Callable[[], object] | None = None) -> T:
        shown = cmd.command()
        command = "env " + self._env_prefix + shown if self._env_prefix else shown
        t0 = time.monotonic()
        res: ExecResult | None = None
        error = ""
        try:
            res = await self.pool.run(
                user, command, stdin=cmd.stdin, timeout=cmd.timeout, max_output=cmd.max_output, on_sent=on_sent
            )
        except Exception as e:
            error = type(e).__name__
            raise
        finally:  # one audit line per command, whatever its fate
            seconds = time.monotonic() - t0
            status = res.exit_status if res is not None else None
            audit(self.name, user, shown, status, seconds, error)
            if self.metrics is not None:
                outcome = "error" if res is None else "ok" if status == 0 else "nonzero"
                self.metrics.ssh_commands.labels(self.name, outcome).inc()
                self.metrics.ssh_seconds.labels(self.name).observe(seconds)
        cmd.check(res)
        return cmd.parse(res)

    async def list_files(self, user: str, cmd: files.ListFiles) -> list[files.FileEntry]:
        """A listing; without numeric_ids its uids and gids are named from this system's user
        database (cached: at most one getent per listing, none once the ids are known)."""
        entries = await self.run(user, cmd)
        if cmd.numeric_ids:
            return entries
        uids = {e.user for e in entries}
        gids = {e.group for e in entries}
        lookup = self.id_names.unknown(uids, gids)
        pending = self._naming
        if lookup is not None and pending is not None and not pending.done():
            # another listing is naming ids (after a start or the cache's expiry, hundreds of
            # listings at once would each run the same getent): wait for it, then ask again
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)
            lookup = self.id_names.unknown(uids, gids)
        if lookup is not None:
            naming = self._naming = asyncio.ensure_future(self._learn_names(user, lookup))
            naming.add_done_callback(_retrieve)
            await asyncio.shield(naming)
        return self.id_names.named(entries, uids, gids)

    async def _learn_names(self, user: str, lookup: files.LookupIds) -> None:
        self.id_names.learn(lookup, await self.run(user, lookup))

    # ---- status ----------------------------------------------------------------------------
    async def nodes(self, user: str) -> list[slurm.Node]:
        return await self.run(user, slurm.ShowNodes())

    async def partitions(self, user: str, show_hidden: bool) -> list[slurm.Partition]:
        return await self.run(user, slurm.ShowPartitions(show_hidden))

    async def reservations(self, user: str) -> list[slurm.Reservation]:
        return await self.run(user, slurm.ShowReservations())

    async def whoami(self, user: str) -> posix.Identity:
        return await self.run(user, posix.WhoAmI())

    @property
    def last_probes(self) -> list[Probe]:
        """The most recent health probes (empty before the first check)."""
        return list(self._probes)

    # ---- health ----------------------------------------------------------------------------
    async def health(self, user: str | None, max_age: float = 5.0) -> list[Probe]:
        """SSH reachability (banner, no credentials) and the scheduler (scontrol ping as the
        caller), cached for max_age seconds."""
        async with self._probe_lock:
            if self._probes and time.time() - self._probes[0].checked_at < max_age:
                return self._probes
            probes = [await asyncio.to_thread(self._probe_ssh)]
            if user and probes[0].healthy:
                probes.append(await self._probe_scheduler(user))
            elif user:
                probes.append(Probe("scheduler", False, None, "not checked: the login node is unreachable", time.time()))
            self._probes = probes
            return probes

    def _probe_ssh(self) -> Probe:
        t0 = time.monotonic()
        try:
            timeout = min(5.0, self.cfg.ssh.connect_timeout)
            with socket.create_connection((self.cfg.ssh.host, self.cfg.ssh.port), timeout=timeout) as s:
                s.settimeout(timeout)
                banner = s.recv(256).decode("ascii", "replace").strip()
            ok = banner.startswith("SSH-")
            msg = banner if ok else f"unexpected banner {banner!r}"
        except OSError as e:
            ok, msg = False, str(e)
        return Probe("ssh", ok, time.monotonic() - t0, msg, time.time())

    async def _probe_scheduler(self, user: str) -> Probe:
        t0 = time.monotonic()
        cmd = slurm.Ping()
        cmd.timeout = self.cfg.scheduler.ping_timeout
        try:
            await self.run(user, cmd)
            ok, msg = True, "controller answers"
        except Exception as e:  # any failure is the answer of the probe
            ok, msg = False, str(e)
        return Probe("scheduler", ok, time.monotonic() - t0, msg, time.time())
