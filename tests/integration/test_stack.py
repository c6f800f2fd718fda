"""Integration tests of the local stack (``firecrest-stack up``): sshd with the user CA, Slurm with
accounting and cgroup OOM detection, idempotent ``up``.

Needs root (the stack installs packages, creates users, runs daemons).  The ``stack`` fixture will
move into tests/conftest.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import ssh

from tests.helpers import s3_client

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local stack needs root")

STACK = [sys.executable, "-m", "devstack"]
REPO = Path(__file__).resolve().parents[2]
# F7T_STACK_INFRA_ONLY=1: test the infrastructure without the gateway (issuer, core, envoy)
INFRA_ONLY = ["--infra-only"] if os.environ.get("F7T_STACK_INFRA_ONLY") == "1" else []


def _stack(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*STACK, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )


@pytest.fixture(scope="session")
def stack() -> dict[str, str]:
    """Bring the stack up (idempotent) and return its environment (``firecrest-stack env``)."""
    t = time.monotonic()
    r = _stack("up", *INFRA_ONLY)
    elapsed = time.monotonic() - t
    assert r.returncode == 0, f"firecrest-stack up failed ({elapsed:.1f}s):\n{r.stdout}\n{r.stderr}"
    print(f"\nfirecrest-stack up took {elapsed:.1f}s")
    e = _stack("env")
    assert e.returncode == 0, e.stderr
    env: dict[str, str] = {}
    for line in e.stdout.splitlines():
        assert line.startswith("export "), line
        key, _, value = line[len("export ") :].partition("=")
        env[key] = shlex.split(value)[0] if value else ""
    return env


# ---------------------------------------------------------------- SSH helpers


def _user_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def _sign(stack: dict[str, str], key: ed25519.Ed25519PrivateKey, principal: str) -> bytes:
    ca = serialization.load_ssh_private_key(
        Path(stack["F7T_STACK_DIR"], "ca", "user_ca").read_bytes(), password=None
    )
    now = int(time.time())
    cert = (
        ssh.SSHCertificateBuilder()
        .public_key(key.public_key())
        .serial(int.from_bytes(os.urandom(8), "big"))
        .type(ssh.SSHCertificateType.USER)
        .key_id(f"test-{principal}".encode())
        .valid_principals([principal.encode()])
        .valid_after(now - 30)
        .valid_before(now + 300)
        .add_extension(b"permit-pty", b"")
        .sign(ca)  # type: ignore[arg-type]
    )
    return cert.public_bytes()


def _pkey(key: ed25519.Ed25519PrivateKey, cert: bytes | None) -> paramiko.PKey:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(pem))
    if cert is not None:
        pkey.load_certificate(cert.decode())
    return pkey


def _connect(stack: dict[str, str], username: str, pkey: paramiko.PKey) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    host_pub = Path(stack["F7T_SSH_HOST_KEY_PUB"]).read_text().split()
    port = int(stack["F7T_SSH_PORT"])
    client.get_host_keys().add(
        f"[127.0.0.1]:{port}", host_pub[0], paramiko.Ed25519Key(data=_b64(host_pub[1]))
    )
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        "127.0.0.1",
        port=port,
        username=username,
        pkey=pkey,
        allow_agent=False,
        look_for_keys=False,
        timeout=10,
    )
    return client


def _b64(s: str) -> bytes:
    import base64

    return base64.b64decode(s)


def _run(client: paramiko.SSHClient, cmd: str, timeout: float = 30) -> tuple[int, str, str]:
    _, out, err = client.exec_command(cmd, timeout=timeout)
    rc = out.channel.recv_exit_status()
    return rc, out.read().decode(), err.read().decode()


@pytest.fixture(scope="module")
def alice(stack: dict[str, str]) -> paramiko.SSHClient:
    key = _user_key()
    client = _connect(stack, "alice", _pkey(key, _sign(stack, key, "alice")))
    yield client
    client.close()


# ---------------------------------------------------------------- tests


def test_status_all_healthy(stack: dict[str, str]) -> None:
    r = _stack("status", *INFRA_ONLY, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_env_has_infrastructure_variables(stack: dict[str, str]) -> None:
    for key in (
        "F7T_S3_URL",
        "F7T_S3_ACCESS_KEY",
        "F7T_S3_SECRET_KEY",
        "F7T_STACK_DIR",
        "F7T_SSH_PORT",
        "SLURM_CONF",
    ):
        assert stack.get(key), key


def test_ssh_certificate_login(alice: paramiko.SSHClient) -> None:
    rc, out, err = _run(alice, "id -un; echo $SLURM_CONF")
    assert rc == 0, err
    user, slurm_conf = out.split()
    assert user == "alice"
    assert slurm_conf.endswith("slurm.conf")


def test_ssh_key_without_certificate_refused(stack: dict[str, str]) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        _connect(stack, "alice", _pkey(_user_key(), None))


def test_ssh_certificate_for_other_principal_refused(stack: dict[str, str]) -> None:
    key = _user_key()
    with pytest.raises(paramiko.AuthenticationException):
        _connect(stack, "bob", _pkey(key, _sign(stack, key, "alice")))


def test_ssh_certificate_from_other_ca_refused(stack: dict[str, str]) -> None:
    key = _user_key()
    rogue = ed25519.Ed25519PrivateKey.generate()
    now = int(time.time())
    cert = (
        ssh.SSHCertificateBuilder()
        .public_key(key.public_key())
        .serial(1)
        .type(ssh.SSHCertificateType.USER)
        .key_id(b"rogue")
        .valid_principals([b"alice"])
        .valid_after(now - 30)
        .valid_before(now + 300)
        .sign(rogue)
    )
    with pytest.raises(paramiko.AuthenticationException):
        _connect(stack, "alice", _pkey(key, cert.public_bytes()))


def _submit(client: paramiko.SSHClient, args: str) -> str:
    rc, out, err = _run(client, f"cd /tmp && sbatch --parsable {args}")
    assert rc == 0, err
    return out.strip().split(";")[0]


def _final(client: paramiko.SSHClient, job: str, timeout: float = 120) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        rc, out, _ = _run(client, f"sacct -X -P -n -j {job} -o State,ExitCode,End")
        last = out.strip()
        if rc == 0 and last:
            state, exit_code, end = last.splitlines()[0].split("|")
            if end and end != "Unknown":
                return state.split()[0], exit_code
        time.sleep(0.5)
    raise AssertionError(f"job {job} did not finish in {timeout}s (last sacct: {last!r})")


def test_failed_job_exit_code(alice: paramiko.SSHClient) -> None:
    job = _submit(alice, "--wrap 'exit 3'")
    assert _final(alice, job) == ("FAILED", "3:0")


def test_completed_job_in_long_partition(alice: paramiko.SSHClient) -> None:
    job = _submit(alice, "-p long --wrap 'true'")
    assert _final(alice, job) == ("COMPLETED", "0:0")
    # the Partition column can lag a moment behind the final state in slurmdbd
    deadline = time.monotonic() + 15
    while True:
        _, out, _ = _run(alice, f"sacct -X -P -n -j {job} -o Partition,Account,User")
        row = out.strip().splitlines()[0]
        if row == "long|f7t|alice" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert row == "long|f7t|alice"


def test_memory_hog_is_out_of_memory(alice: paramiko.SSHClient) -> None:
    # tail keeps a line without newlines in memory: about 300 MB against a 20 MB limit. The hog
    # makes itself the OOM killer's first choice: in a 20 MB cgroup slurmstepd's own few MB can
    # otherwise be the largest process, and a job whose stepd is killed never ends (seen once in
    # CI, where slurmstepd cannot lower its own score: no CAP_SYS_RESOURCE)
    job = _submit(
        alice,
        "--mem=20M --wrap 'echo 1000 > /proc/self/oom_score_adj; head -c 300000000 /dev/zero | tail > /dev/null'",
    )
    state, _ = _final(alice, job)
    assert state == "OUT_OF_MEMORY"


def test_second_up_is_harmless_and_fast(stack: dict[str, str]) -> None:
    before = _stack("status", *INFRA_ONLY, timeout=120).stdout
    t = time.monotonic()
    r = _stack("up", *INFRA_ONLY)
    elapsed = time.monotonic() - t
    assert r.returncode == 0, r.stdout + r.stderr
    assert elapsed < 15, f"second up took {elapsed:.1f}s"
    assert "started (pid" not in r.stdout, r.stdout
    after = _stack("status", *INFRA_ONLY, timeout=120)
    assert after.returncode == 0
    assert after.stdout == before
    # the S3 store answers, and it checks credentials
    with socket.create_connection(("127.0.0.1", int(stack["F7T_S3_URL"].rsplit(":", 1)[1])), timeout=5):
        pass


def test_s3_uses_the_stack_credentials(stack: dict[str, str]) -> None:
    from botocore.exceptions import ClientError

    good = s3_client(stack)
    bucket = "stack-test"
    with contextlib.suppress(ClientError):
        good.create_bucket(Bucket=bucket)  # already there on a second run
    good.put_object(Bucket=bucket, Key="hello.txt", Body=b"hello")
    url = good.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "hello.txt"}, ExpiresIn=600)
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.read() == b"hello"
    tampered = url.replace("hello.txt", "hello.txx")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(tampered, timeout=10)
    assert err.value.code == 403
    for access, secret in ((stack["F7T_S3_ACCESS_KEY"], "wrong-secret"), ("S3RVER", "S3RVER")):
        bad = s3_client(stack, access, secret)
        with pytest.raises(ClientError) as denied:
            bad.head_bucket(Bucket=bucket)
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    good.delete_object(Bucket=bucket, Key="hello.txt")
