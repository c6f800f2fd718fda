"""One system of the centre: its SSH pool and the commands run there as a user."""

from __future__ import annotations

import asyncio
import shlex
import socket
import time
from dataclasses import dataclass
from typing import TypeVar

from core.adapters import posix, slurm
from core.adapters.commands import RemoteCommand
from core.adapters.ssh import SSHPool
from core.config import SystemConfig
from core.domain.errors import BackendUnavailable

T = TypeVar("T")


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
        self._probe_lock = asyncio.Lock()
        # set when a call found the controller unreachable; cleared by the next ping that answers
        self._controller_down = False

    @property
    def name(self) -> str:
        return self.cfg.name

    async def run(self, user: str, cmd: RemoteCommand[T]) -> T:
        if cmd.controller:
            return await self._run_controller(user, cmd)
        return await self._run(user, cmd)

    async def controller_answers(self, user: str) -> bool:
        """`scontrol ping` as the user (fast, whether the controller is up or down)."""
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
        running = asyncio.ensure_future(self._run(user, cmd))
        try:
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

    async def _run(self, user: str, cmd: RemoteCommand[T]) -> T:
        command = cmd.command()
        if self._env_prefix:
            command = "env " + self._env_prefix + command
        res = await self.pool.run(
            user, command, stdin=cmd.stdin, timeout=cmd.timeout, max_output=cmd.max_output
        )
        cmd.check(res)
        return cmd.parse(res)

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
