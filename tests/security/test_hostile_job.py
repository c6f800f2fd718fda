"""A cluster user on the gateway's host must never act for the gateway or for another user.

The hostile user is alice in a real batch job (sbatch as alice, run by slurmd on this host): the
job tries Envoy's admin interface, the staging S3 server without a signature, every file of the
gateway, and looks for anyone's token in files and processes. Bob has just used the gateway (his
token is in flight) and alice's staged object sits in the bucket. One test per defect once found.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError

from tests.helpers import s3_client

HERE = Path(__file__).resolve().parent
BUCKET = "firecrest-staging"
GATEWAY_LOGS = ("core", "envoy", "envoy-access", "issuer", "s3rver")


@pytest.fixture(scope="module")
def victim(stack):
    """An object of alice's in the staging bucket (what a staged download looks like)."""
    s3 = s3_client(stack)
    with contextlib.suppress(ClientError):
        s3.create_bucket(Bucket=BUCKET)  # the core usually made it already
    key = f"alice/{uuid.uuid4().hex}/result.dat"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"alice's bytes")
    yield key
    s3.delete_object(Bucket=BUCKET, Key=key)


@pytest.fixture(scope="module")
def bob_token(token, bob):
    tok = token("bob")
    assert bob.get("/status/{system}/userinfo").status_code == 200  # bob's token goes through the gateway
    return tok


@pytest.fixture(scope="module")
def hostile_report(stack, victim, bob_token, tmp_path_factory):
    """Run the probe as a batch job of alice's and return its report."""
    d = Path("/tmp") / f"f7t-hostile-{uuid.uuid4().hex}"
    d.mkdir(mode=0o755)
    try:
        probe = d / "probe.py"
        shutil.copy(HERE / "hostile_probe.py", probe)
        probe.chmod(0o755)
        needle = d / "needle"
        needle.write_text(bob_token[-40:])
        needle.chmod(0o644)
        home = Path(pwd.getpwnam("alice").pw_dir)
        out = home / f".f7t-hostile-{uuid.uuid4().hex}.json"
        envoy_port = urlsplit(stack["F7T_URL"]).port
        assert envoy_port
        s3_port = str(urlsplit(stack["F7T_S3_URL"]).port)
        argv = [
            "runuser", "-u", "alice", "--", "env", f"SLURM_CONF={stack['SLURM_CONF']}",
            "sbatch", "--wait", "--parsable", "--time=5", f"--output={out}", "--chdir=/tmp", str(probe),
            stack["F7T_STACK_DIR"], str(envoy_port + 1), s3_port, BUCKET, victim, str(needle),
            str(urlsplit(stack["F7T_ENVOY_STATS_URL"]).port),
        ]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd="/tmp")
        assert r.returncode == 0, (r.stdout, r.stderr, out.read_text() if out.exists() else "")
        text = out.read_text()
        out.unlink()
        return json.loads(text.strip().splitlines()[-1])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_the_probe_ran_as_alice_in_her_job(hostile_report):
    assert hostile_report["uid"] == pwd.getpwnam("alice").pw_uid


def test_envoy_admin_is_out_of_reach(hostile_report):
    """Was: loopback admin port, `POST /logging?level=debug` then bob's token in the log, and
    `POST /quitquitquit` stopped the gateway."""
    assert hostile_report["admin_tcp"].startswith("refused"), hostile_report["admin_tcp"]
    assert hostile_report["admin_socket"].startswith("refused"), hostile_report["admin_socket"]
    # the stats listener Prometheus scrapes answers nothing of the admin interface but its stats
    for path, answer in hostile_report["stats_admin"].items():
        assert answer.startswith("answered: HTTP/1.1 404"), (path, answer)


def test_unsigned_s3_requests_are_refused(stack, hostile_report, victim):
    """Was: any local user listed, read, overwrote and deleted every user's staged objects."""
    assert hostile_report["s3"] == {
        "list_buckets": 403, "list_objects": 403, "get_victim": 403,
        "put_victim": 403, "put_new": 403, "delete_victim": 403,
    }
    s3 = s3_client(stack)
    assert s3.get_object(Bucket=BUCKET, Key=victim)["Body"].read() == b"alice's bytes"  # untouched
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="alice-was-here").get("Contents", [])
    assert not [o for o in listed if o["Key"] == "alice-was-here"]


def test_no_gateway_file_is_readable(stack, hostile_report):
    """Was: core.yaml (the S3 keys), tasks.db, the logs world-readable under a 0755 directory."""
    state = Path(stack["F7T_STACK_DIR"])
    secret = [state / "gateway", state / "ca", state / "s3", state / "credentials.json",
              *(state / "log" / f"{n}.log" for n in GATEWAY_LOGS)]
    leaked = [p for p in hostile_report["readable"] if any(Path(p) == s or s in Path(p).parents for s in secret)]
    assert leaked == []


def test_no_token_is_visible_to_another_user(hostile_report):
    assert hostile_report["tokens"] == []


def test_gateway_state_is_the_gateway_users_alone(stack):
    """0700 directories, 0600 files, owned by the gateway's system user (not root, not a person)."""
    state = Path(stack["F7T_STACK_DIR"])
    owner = pwd.getpwnam("firecrest").pw_uid
    bad = []
    for top in (state / "gateway", state / "ca", state / "s3"):
        for root, _dirs, files in os.walk(top):
            for name in [".", *files]:
                p = Path(root) / name
                st = p.lstat()
                if p.is_socket() or p.is_symlink() or p.name == "user_ca.pub":
                    continue
                want = 0o700 if p.is_dir() else 0o600
                if st.st_uid != owner or st.st_mode & 0o777 != want:
                    bad.append((str(p), st.st_uid, oct(st.st_mode & 0o777)))
    for n in GATEWAY_LOGS:
        st = (state / "log" / f"{n}.log").stat()
        if st.st_uid != owner or st.st_mode & 0o077:
            bad.append((n, st.st_uid, oct(st.st_mode & 0o777)))
    assert bad == []


def test_gateway_processes_run_unprivileged(stack):
    """core, issuer, Envoy and the S3 server run as the gateway's system user, never root."""
    run = Path(stack["F7T_STACK_DIR"]) / "run"
    want = pwd.getpwnam("firecrest").pw_uid
    for name in ("core", "issuer", "envoy", "s3rver"):
        pid = int((run / f"{name}.pid").read_text().split()[0])
        uids = next(ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("Uid:"))
        assert {int(u) for u in uids.split()[1:]} == {want}, (name, uids)


def test_authorization_is_never_logged(stack, bob_token, alice):
    assert alice.get("/status/{system}/userinfo").status_code == 200
    logs = Path(stack["F7T_STACK_DIR"]) / "log"
    for n in GATEWAY_LOGS:
        text = (logs / f"{n}.log").read_text(errors="replace")
        assert bob_token[-40:] not in text, n  # its signature: the header is every token's
        assert "Bearer ey" not in text, n
