"""StatusService: the centre's systems with the health of their services, and per system what its
scheduler says (nodes, partitions, reservations, the caller's identity and accounts), through the
Scheduler port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from core.config import SystemConfig
from core.domain.errors import GatewayError
from core.domain.scheduler import Node, Partition, Reservation, Scheduler, UserInfo
from core.domain.systems import Probe, Systems


class StatusService:
    """Health is checked at most every `max_age` seconds per system: the login node's SSH service
    (`ssh_probe(system)`: its banner, no credentials) and, as the caller, the scheduler
    (Scheduler.ping), the latter only while the login node answers."""

    def __init__(
        self,
        systems: Sequence[SystemConfig],
        schedulers: Callable[[str], Scheduler],
        ssh_probe: Callable[[str], Awaitable[Probe]],
        *,
        max_age: float = 5.0,
        clock: Callable[[], float] = time.time,
    ):
        self.systems = tuple(systems)
        self._configs = Systems({s.name: s for s in systems})
        self._schedulers = schedulers
        self._ssh_probe = ssh_probe
        self.max_age = max_age
        self.clock = clock
        self._probes: dict[str, list[Probe]] = {}
        self._locks = {s.name: asyncio.Lock() for s in systems}

    def system(self, name: str) -> SystemConfig:
        """The system's configuration (SystemNotFound for an unknown name)."""
        return self._configs(name)

    # ---- health ------------------------------------------------------------------------------
    def last_probes(self, system: str) -> list[Probe]:
        """The most recent probes of a system (empty before its first check)."""
        return list(self._probes.get(self.system(system).name, ()))

    async def health(self, system: str, user: str | None) -> list[Probe]:
        name = self.system(system).name
        async with self._locks[name]:
            probes = self._probes.get(name)
            if probes and self.clock() - probes[0].checked_at < self.max_age:
                return probes
            probes = [replace(await self._ssh_probe(name), checked_at=self.clock())]
            if user and probes[0].healthy:
                probes.append(await self._probe_scheduler(name, user))
            elif user:
                probes.append(Probe("scheduler", False, None, "not checked: the login node is unreachable", self.clock()))
            self._probes[name] = probes
            return probes

    async def _probe_scheduler(self, system: str, user: str) -> Probe:
        t0 = time.monotonic()
        try:
            await self._schedulers(system).ping(user)
            ok, msg = True, "controller answers"
        except Exception as e:  # any failure is the answer of the probe
            ok, msg = False, e.message if isinstance(e, GatewayError) else str(e)
        return Probe("scheduler", ok, time.monotonic() - t0, msg, self.clock())

    # ---- the scheduler's view ----------------------------------------------------------------
    async def nodes(self, user: str, system: str) -> list[Node]:
        return await self._schedulers(system).nodes(user)

    async def partitions(self, user: str, system: str, show_hidden: bool) -> list[Partition]:
        return await self._schedulers(system).partitions(user, show_hidden)

    async def reservations(self, user: str, system: str) -> list[Reservation]:
        return await self._schedulers(system).reservations(user)

    async def user_info(self, user: str, system: str) -> UserInfo:
        return await self._schedulers(system).user_info(user)
