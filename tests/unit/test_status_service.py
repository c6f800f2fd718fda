"""StatusService's health rules on an injected clock, with a system whose login node and scheduler
answer as told: probes are cached for max_age, the scheduler is asked (through the Scheduler
port's ping, as the caller) only while the login node answers, and a failing ping is an unhealthy
probe that says why."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from core.config import SSHConfig, SystemConfig
from core.domain.errors import BackendUnavailable, SystemNotFound
from core.domain.systems import Probe, Systems
from core.services.status import StatusService


@dataclass
class Login:
    up: bool = True
    probes: int = 0

    async def probe(self) -> Probe:
        self.probes += 1
        return Probe("ssh", self.up, 0.001, "SSH-2.0-OpenSSH" if self.up else "Connection refused", 0.0)


@dataclass
class Controller:
    name: str = "cluster"
    down: bool = False
    pinged_as: list[str] = field(default_factory=list)

    async def ping(self, user: str) -> None:
        self.pinged_as.append(user)
        if self.down:
            raise BackendUnavailable("the scheduler of cluster is not reachable: Slurmctld(primary) is DOWN")


def _service(now: list[float], login: Login, sched: Controller) -> StatusService:
    cfg = SystemConfig(name="cluster", ssh=SSHConfig(host="localhost"))
    return StatusService(
        [cfg], Systems({"cluster": sched}), lambda _: login.probe(), max_age=5.0, clock=lambda: now[0]
    )


async def test_health_is_cached_for_max_age_on_the_clock() -> None:
    now, login, sched = [1000.0], Login(), Controller()
    status = _service(now, login, sched)
    assert status.last_probes("cluster") == []
    first = await status.health("cluster", "alice")
    assert [(p.service_type, p.healthy) for p in first] == [("ssh", True), ("scheduler", True)]
    assert sched.pinged_as == ["alice"]
    now[0] += 4.9
    assert await status.health("Cluster", "bob") == first  # cached; names are case-insensitive
    assert login.probes == 1 and sched.pinged_as == ["alice"]
    now[0] += 0.2
    await status.health("cluster", "bob")
    assert login.probes == 2 and sched.pinged_as == ["alice", "bob"]
    assert status.last_probes("cluster")[1].checked_at == now[0]


async def test_the_scheduler_is_not_asked_while_the_login_node_is_down() -> None:
    now, login, sched = [1000.0], Login(up=False), Controller()
    probes = await _service(now, login, sched).health("cluster", "alice")
    assert [(p.service_type, p.healthy) for p in probes] == [("ssh", False), ("scheduler", False)]
    assert "login node is unreachable" in probes[1].message and sched.pinged_as == []


async def test_a_controller_that_does_not_answer_is_an_unhealthy_probe() -> None:
    now, login, sched = [1000.0], Login(), Controller(down=True)
    ssh, scheduler = await _service(now, login, sched).health("cluster", "alice")
    assert ssh.healthy and not scheduler.healthy and "DOWN" in scheduler.message


async def test_an_unknown_system_is_system_not_found() -> None:
    status = _service([0.0], Login(), Controller())
    with pytest.raises(SystemNotFound):
        await status.health("nope", "alice")
    with pytest.raises(SystemNotFound):
        status.last_probes("nope")
