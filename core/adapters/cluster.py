"""One system of the centre: its SSH pool and the commands run there as a user."""

from __future__ import annotations

import asyncio
import shlex
import socket
import time
from dataclasses import dataclass
from typing import TypeVar

from core.adapters import files, posix, slurm
from core.adapters.commands import RemoteCommand
from core.adapters.ssh import SSHPool
from core.config import SystemConfig

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
        self.id_names = files.IdNames()
        self._probe_lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.cfg.name

    async def run(self, user: str, cmd: RemoteCommand[T]) -> T:
        command = cmd.command()
        if self._env_prefix:
            command = "env " + self._env_prefix + command
        res = await self.pool.run(
            user, command, stdin=cmd.stdin, timeout=cmd.timeout, max_output=cmd.max_output
        )
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
        if lookup is not None:
            self.id_names.learn(lookup, await self.run(user, lookup))
        return self.id_names.named(entries, uids, gids)

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
    async def health(self, user: str | None, max_age: float = 30.0) -> list[Probe]:
        """SSH reachability (banner, no credentials) and the scheduler (scontrol ping as the
        caller), cached for max_age seconds."""
        async with self._probe_lock:
            if self._probes and time.time() - self._probes[0].checked_at < max_age:
                return self._probes
            probes = [await asyncio.to_thread(self._probe_ssh)]
            if user:
                probes.append(await self._probe_scheduler(user))
            self._probes = probes
            return probes

    def _probe_ssh(self) -> Probe:
        t0 = time.monotonic()
        try:
            with socket.create_connection((self.cfg.ssh.host, self.cfg.ssh.port), timeout=5) as s:
                s.settimeout(5)
                banner = s.recv(256).decode("ascii", "replace").strip()
            ok = banner.startswith("SSH-")
            msg = banner if ok else f"unexpected banner {banner!r}"
        except OSError as e:
            ok, msg = False, str(e)
        return Probe("ssh", ok, time.monotonic() - t0, msg, time.time())

    async def _probe_scheduler(self, user: str) -> Probe:
        t0 = time.monotonic()
        cmd = slurm.Ping()
        cmd.timeout = 10
        try:
            await self.run(user, cmd)
            ok, msg = True, "controller answers"
        except Exception as e:  # any failure is the answer of the probe
            ok, msg = False, str(e)
        return Probe("scheduler", ok, time.monotonic() - t0, msg, time.time())
