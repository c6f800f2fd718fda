"""pyfirecrest's `firecrest` CLI, unmodified, against the gateway: status, a job, files and an
upload/download, authenticating with client credentials at the issuer."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def cli(stack):
    exe = shutil.which("firecrest", path=str(Path(sys.executable).parent))
    assert exe, "pyfirecrest installs the firecrest CLI"
    env = dict(os.environ)
    env.update(
        FIRECREST_URL=stack["F7T_URL"],
        FIRECREST_CLIENT_ID=stack["F7T_ALICE_CLIENT_ID"],
        FIRECREST_CLIENT_SECRET=stack["F7T_ALICE_CLIENT_SECRET"],
        AUTH_TOKEN_URL=stack["F7T_TOKEN_URL"],
        FIRECREST_SYSTEM=stack["F7T_SYSTEM"],
        COLUMNS="200",
    )

    def run(*args: str) -> str:
        r = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, (args, r.stdout[-2000:], r.stderr[-2000:])
        return r.stdout

    return run


@pytest.fixture
def workdir():
    pw = pwd.getpwnam("alice")
    d = Path(pw.pw_dir) / f"cli-{uuid.uuid4().hex[:10]}"
    d.mkdir()
    os.chown(d, pw.pw_uid, pw.pw_gid)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_cli_status(cli, system):
    assert [s["name"] for s in json.loads(cli("systems"))] == [system]
    assert cli("id").strip().startswith(f"uid={pwd.getpwnam('alice').pw_uid}(alice)")
    assert "debug" in [p["name"] for p in json.loads(cli("get-partitions"))]


def test_cli_job(cli, workdir, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\necho cli-$(id -un)\nexit 3\n")
    job_id = json.loads(cli("submit", "--working-dir", str(workdir), str(script)))["jobId"]
    info = json.loads(cli("wait-for-job", job_id))
    job = info[0] if isinstance(info, list) else info
    assert job["status"]["state"] == "FAILED" and job["status"]["exitCode"] == 3
    assert (workdir / f"slurm-{job_id}.out").read_text() == "cli-alice\n"


def test_cli_files(cli, workdir, tmp_path):
    data = os.urandom(2048)
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    cli("upload", str(src), str(workdir))
    assert (workdir / "blob.bin").read_bytes() == data
    names = [e["name"] for e in json.loads(cli("ls", str(workdir)))]
    assert names == ["blob.bin"]
    assert json.loads(cli("checksum", str(workdir / "blob.bin")))["checksum"] == hashlib.sha256(data).hexdigest()
    back = tmp_path / "back.bin"
    cli("download", str(workdir / "blob.bin"), str(back))
    assert back.read_bytes() == data


def test_cli_job_info_filters_by_name_and_time_window(cli, workdir, api):
    """`firecrest job-info --name X --time-window 1h` (pyfirecrest sends both only to FirecREST
    2.6.0 and later, which f7t-appversion announces) lists the jobs named X, and only those."""
    alice = api("alice")
    tag = uuid.uuid4().hex[:8]
    ids = {}
    for name in (f"wanted-{tag}", f"other-{tag}"):
        job = {"name": name, "script": "#!/bin/bash\ntrue\n", "workingDirectory": str(workdir)}
        r = alice.post("/compute/{system}/jobs", json={"job": job})
        assert r.status_code == 201, r.text
        ids[name] = str(r.json()["jobId"])
    listed = json.loads(cli("job-info", "--name", f"wanted-{tag}", "--time-window", "1h"))
    assert [str(j["jobId"]) for j in listed] == [ids[f"wanted-{tag}"]]
    assert {j["name"] for j in listed} == {f"wanted-{tag}"}
    both = {str(j["jobId"]) for j in json.loads(cli("job-info", "--time-window", "1h"))}
    assert set(ids.values()) <= both
