"""Under load, the gateway adds no SSH work of its own: a read that waits for a free worker is
not mistaken for a slow controller (no ping), concurrent calls share one ping and one uid/gid
lookup, and beyond a bound of waiting commands a new one is refused at once (503), not queued.
Against the stack's real sshd and Slurm; what is counted is the core's audit lines."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from core.adapters.certs import CertificateAuthority
from core.adapters.cluster import Cluster
from core.adapters.files import ShellFileSystem
from core.adapters.slurm.scheduler import SlurmScheduler
from core.adapters.ssh import CommandWorkers, SSHPool
from core.config import from_dict
from core.domain.errors import BackendUnavailable
from core.wiring import UserKeys


@pytest.fixture
def make_cluster(stack: dict[str, str]) -> Iterator:
    cfg = from_dict(yaml.safe_load((Path(stack["F7T_STACK_DIR"]) / "gateway/core.yaml").read_text()))
    made: list[tuple[SSHPool, CommandWorkers]] = []

    def make(workers: int = 4, max_queued: int = 1024) -> Cluster:
        ex = CommandWorkers(workers, max_queued)
        pool = SSHPool(cfg.systems[0].ssh, UserKeys(CertificateAuthority(cfg.certificate.ca_key, 600)), ex)
        made.append((pool, ex))
        return Cluster(cfg.systems[0], pool)

    yield make
    for pool, ex in made:
        pool.close()
        ex.shutdown(wait=False, cancel_futures=True)


@pytest.fixture
def commands(caplog: pytest.LogCaptureFixture) -> Iterator[list[str]]:
    """The SSH commands run from here on, as their audit lines name them."""
    caplog.set_level(logging.INFO, logger="core.audit")
    out: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            out.append(record.audit["command"])  # type: ignore[attr-defined]

    h = Grab()
    logging.getLogger("core.audit").addHandler(h)
    yield out
    logging.getLogger("core.audit").removeHandler(h)


def test_a_read_waiting_for_a_worker_is_not_taken_for_a_slow_controller(make_cluster, commands):
    cluster = make_cluster(workers=1)
    scheduler = SlurmScheduler(cluster)
    assert scheduler.ping_after <= 1.0

    async def scenario() -> list[object]:
        busy = asyncio.ensure_future(cluster.pool.run("alice", "sleep 2.5"))  # the only worker
        await asyncio.sleep(0.2)
        listed = await scheduler.jobs("alice")  # sacct and squeue wait 2.3 s for the worker
        await busy
        return list(listed)

    assert isinstance(asyncio.run(scenario()), list)
    assert not [c for c in commands if "scontrol ping" in c], commands
    assert any("squeue" in c for c in commands)


def test_concurrent_callers_share_one_ping(make_cluster, commands):
    scheduler = SlurmScheduler(make_cluster())

    async def many() -> list[None]:
        return list(await asyncio.gather(*(scheduler.ping(u) for u in ["alice", "bob"] * 5)))

    assert asyncio.run(many()) == [None] * 10  # the controller answers (else ping raises)
    assert [c for c in commands if "scontrol ping" in c] == ["scontrol ping"]


def test_concurrent_listings_name_their_ids_with_one_lookup(make_cluster, commands):
    fs = ShellFileSystem(make_cluster())

    async def many() -> list[list]:
        return list(await asyncio.gather(*(
            fs.list("alice", "/home/alice", show_hidden=True, numeric_ids=False, recursive=False, dereference=False)
            for _ in range(6)
        )))

    listings = asyncio.run(many())
    assert all(any(e.user == "alice" and e.group == "alice" for e in entries) for entries in listings)
    assert len([c for c in commands if c.startswith("id_names.sh ")]) == 1, commands  # getent, by the script's name


def test_beyond_the_queue_bound_a_command_is_refused_at_once(make_cluster):
    cluster = make_cluster(workers=1, max_queued=2)

    async def burst() -> tuple[list[object], float]:
        t0 = time.monotonic()
        runs = [asyncio.ensure_future(cluster.pool.run("alice", "sleep 0.5; id -un")) for _ in range(5)]
        await asyncio.wait(runs, return_when=asyncio.FIRST_EXCEPTION)
        refused_after = time.monotonic() - t0
        return list(await asyncio.gather(*runs, return_exceptions=True)), refused_after

    results, refused_after = asyncio.run(burst())
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BackendUnavailable)]
    # one runs, two wait, two are refused without waiting for the first to finish
    assert len(ok) == 3 and len(refused) == 2, results
    assert all(r.out.strip() == "alice" for r in ok)  # type: ignore[attr-defined]
    assert "busy" in refused[0].message and refused_after < 0.4
    assert cluster.pool._executor.waiting == 0  # type: ignore[attr-defined]
