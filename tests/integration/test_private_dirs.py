"""The gateway removes exactly its own private directory for a task, as the task's owner."""

from __future__ import annotations

import asyncio
import os
import pwd
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from core.adapters.certs import CertificateAuthority
from core.adapters.cluster import Cluster
from core.adapters.commands import DiscardPrivateDir
from core.adapters.ssh import SSHPool
from core.config import from_dict
from core.wiring import UserKeys


@pytest.fixture
def cluster(stack):
    cfg = from_dict(yaml.safe_load((Path(stack["F7T_STACK_DIR"]) / "gateway/core.yaml").read_text()))
    ex = ThreadPoolExecutor(4)
    pool = SSHPool(cfg.systems[0].ssh, UserKeys(CertificateAuthority(cfg.certificate.ca_key, 600)), ex)
    yield Cluster(cfg.systems[0], pool)
    pool.close()
    ex.shutdown(wait=False)


def _mk(path: Path, user: str) -> None:
    pw = pwd.getpwnam(user)
    path.mkdir(parents=True, exist_ok=True)
    (path / "job.sh").write_text("#!/bin/bash\n")
    for p in (path, path / "job.sh"):
        os.chown(p, pw.pw_uid, pw.pw_gid)


def test_discard_removes_only_that_tasks_directory(cluster):
    home = Path(pwd.getpwnam("alice").pw_dir) / ".firecrest" / "jobs"
    mine, other = uuid.uuid4().hex, uuid.uuid4().hex
    _mk(home / mine, "alice")
    _mk(home / other, "alice")
    asyncio.run(cluster.run("alice", DiscardPrivateDir("jobs", mine)))
    assert not (home / mine).exists()
    assert (home / other / "job.sh").exists()
    asyncio.run(cluster.run("alice", DiscardPrivateDir("jobs", other)))


def test_discard_removes_a_jobs_script_file_and_nothing_else(cluster):
    """A job's script is ~/.firecrest/jobs/<task id>.sh (a directory per job before 2026-12-03)."""
    pw = pwd.getpwnam("alice")
    home = Path(pw.pw_dir) / ".firecrest" / "jobs"
    mine, other = uuid.uuid4().hex, uuid.uuid4().hex
    _mk(home / other, "alice")
    for name in (f"{mine}.sh", f"{other}.sh"):
        (home / name).write_text("#!/bin/bash\n")
        os.chown(home / name, pw.pw_uid, pw.pw_gid)
    asyncio.run(cluster.run("alice", DiscardPrivateDir("jobs", mine)))
    assert not (home / f"{mine}.sh").exists()
    assert (home / f"{other}.sh").exists() and (home / other / "job.sh").exists()
    asyncio.run(cluster.run("alice", DiscardPrivateDir("jobs", other)))
    assert not (home / f"{other}.sh").exists() and not (home / other).exists()


@pytest.mark.parametrize("area,ident", [("jobs", "../../x" + "0" * 24), ("..", "ab" * 16), ("jobs", "")])
def test_anything_but_a_task_id_in_a_known_area_is_refused(area, ident):
    with pytest.raises(ValueError):
        DiscardPrivateDir(area, ident)
