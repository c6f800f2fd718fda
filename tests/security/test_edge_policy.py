"""What the edge and the core refuse, whoever the token names: tokens outside the Authorization
header, undeclared methods, malformed user names, certificates (and so SSH) for accounts the
centre does not allow, keys OpenSSH would not accept. One test per defect once found."""

from __future__ import annotations

import base64
import re
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.helpers import assert_firecrest_error
from tests.processes import process_children


def _bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


# ---------------------------------------------------------------- tokens and methods
def test_token_in_query_parameter_is_refused(api, token):
    """Was: `?access_token=` accepted (URLs end up in logs and histories)."""
    r = api(None).get("/status/{system}/userinfo", params={"access_token": token("alice")})
    assert_firecrest_error(r, 401)
    assert api("alice").get("/status/{system}/userinfo").status_code == 200  # the header still works


@pytest.mark.parametrize("method", ["TRACE", "PATCH", "PROPFIND"])
def test_undeclared_method_is_405(api, method):
    """Was: TRACE answered 404."""
    body = assert_firecrest_error(api("alice").request(method, "/status/systems"), 405)
    assert body["message"] == "Method not allowed"


def test_method_not_declared_on_a_path_is_405_with_allow(api):
    r = api("alice").delete("/status/systems")
    assert_firecrest_error(r, 405)
    assert r.headers["allow"] == "GET"
    r = api("alice").get("/tasks/0123456789abcdef0123456789abcdef:cancel")
    assert_firecrest_error(r, 405)
    assert r.headers["allow"] == "POST"


@pytest.mark.parametrize("name", ["alice\n", "alice\nbob", "Alice", "al ice", "-alice", "a" * 40])
def test_malformed_username_is_401(api, forge, name):
    """Was: a newline in the username answered 503."""
    r = api(None).get("/status/{system}/userinfo", headers=_bearer(forge(name)))
    assert_firecrest_error(r, 401)


# ---------------------------------------------------------------- accounts the centre allows
@pytest.mark.parametrize("user", ["daemon", "munge", "mysql", "nobody", "firecrest", "no-such-user"])
def test_no_certificate_for_accounts_outside_the_policy(api, forge, user):
    """Was: daemon, munge, mysql got certificates (daemon got SFTP); only root was refused."""
    key = ed25519.Ed25519PrivateKey.generate().public_key()
    pub = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    h = _bearer(forge(user))
    assert_firecrest_error(api(None).post("/certificate/{system}", headers=h, json={"publicKey": pub}), 403)
    assert_firecrest_error(api(None).post("/certificate/{system}", headers=h, json={}), 403)


@pytest.mark.parametrize(
    "path", ["/status/{system}/userinfo", "/status/{system}/nodes", "/compute/{system}/jobs",
             "/filesystem/{system}/ops/ls?path=/tmp"],
)
def test_no_ssh_backed_call_for_a_system_account(api, forge, path):
    assert_firecrest_error(api(None).get(path, headers=_bearer(forge("daemon"))), 403)


def test_allowed_users_still_get_certificates(alice, bob):
    for who in (alice, bob):
        assert who.post("/certificate/{system}", json={}).status_code == 201


# ---------------------------------------------------------------- key types and sizes
def _ssh_string(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def _mpint(n: int) -> bytes:
    raw = n.to_bytes((n.bit_length() + 8) // 8, "big")
    return _ssh_string(raw)


def _dsa_public_key() -> str:
    """An ssh-dss public key line (cryptography no longer writes DSA keys in OpenSSH form)."""
    blob = _ssh_string(b"ssh-dss") + b"".join(_mpint(x) for x in ((1 << 1023) + 1, (1 << 159) + 7, 5, 12345))
    return "ssh-dss " + base64.b64encode(blob).decode()


def _sk_public_key() -> str:
    blob = _ssh_string(b"sk-ssh-ed25519@openssh.com") + _ssh_string(b"\x01" * 32) + _ssh_string(b"ssh:")
    return "sk-ssh-ed25519@openssh.com " + base64.b64encode(blob).decode()


def _openssh(key) -> str:  # type: ignore[no-untyped-def]
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(_dsa_public_key, id="dsa"),
        pytest.param(lambda: _openssh(rsa.generate_private_key(65537, 1024).public_key()), id="rsa-1024"),
        pytest.param(lambda: _openssh(rsa.generate_private_key(65537, 2047).public_key()), id="rsa-2047"),
        pytest.param(_sk_public_key, id="sk-ed25519"),
        pytest.param(lambda: "ssh-foo AAAAB3NzaC1mb28=", id="unknown-type"),
        pytest.param(lambda: "not a key at all", id="garbage"),
    ],
)
def test_keys_openssh_refuses_are_400(alice, make):
    """Was: an unsupported key type answered 500, and RSA-1024 keys were certified."""
    assert_firecrest_error(alice.post("/certificate/{system}", json={"publicKey": make()}), 400)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: _openssh(rsa.generate_private_key(65537, 2048).public_key()), id="rsa-2048"),
        pytest.param(lambda: _openssh(ec.generate_private_key(ec.SECP256R1()).public_key()), id="ecdsa-p256"),
        pytest.param(lambda: _openssh(ed25519.Ed25519PrivateKey.generate().public_key()), id="ed25519"),
    ],
)
def test_keys_openssh_accepts_are_certified(alice, make):
    r = alice.post("/certificate/{system}", json={"publicKey": make()})
    assert r.status_code == 201, r.text
    assert r.json()["principal"] == "alice"


# ---------------------------------------------------------------- what listens where
def _stack_pids(stack: dict[str, str]) -> dict[int, str]:
    """The stack's daemons (from their pidfiles) and all their descendants."""
    state = Path(stack["F7T_STACK_DIR"])
    roots: dict[int, str] = {}
    for f in [*(state / "run").glob("*.pid"), *(state / "slurm" / "run").glob("*.pid")]:
        try:
            roots[int(f.read_text().split()[0])] = f.stem
        except (ValueError, IndexError):
            continue
    children = process_children()
    out = dict(roots)
    todo = list(roots)
    while todo:
        pid = todo.pop()
        for c in children.get(pid, []):
            if c not in out:
                out[c] = out[pid]
                todo.append(c)
    return out


def test_every_stack_service_listens_on_loopback_or_a_unix_socket(stack):
    """Was: slurmctld, slurmd and slurmdbd listened on every interface."""
    pids = _stack_pids(stack)
    assert {"slurmctld", "slurmd", "slurmdbd", "sshd", "mariadb", "s3rver", "core", "envoy", "issuer"} <= set(
        pids.values())
    out = subprocess.run(["ss", "-H", "-l", "-n", "-p", "-t", "-u"], capture_output=True, text=True, check=True).stdout
    seen, exposed = set(), []
    for line in out.splitlines():
        cols = line.split()
        local = cols[4]
        for pid in (int(p) for p in re.findall(r"pid=(\d+)", line)):
            if pid in pids:
                seen.add(pids[pid])
                host = local.rsplit(":", 1)[0].strip("[]")
                if not (host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1")):
                    exposed.append((pids[pid], local))
    assert {"slurmctld", "slurmd", "slurmdbd", "sshd", "core", "envoy"} <= seen
    assert exposed == []
