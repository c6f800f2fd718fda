"""Certificate service: a short-lived certificate for the caller's own Unix user, which the
centre's sshd accepts for that user and no other."""

from __future__ import annotations

import io
import socket
from datetime import UTC, datetime
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.helpers import assert_firecrest_error


def _ssh(stack, user: str, key: paramiko.PKey) -> str:
    sock = socket.create_connection(("127.0.0.1", int(stack["F7T_SSH_PORT"])), timeout=10)
    c = paramiko.SSHClient()
    c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    try:
        c.connect("127.0.0.1", username=user, pkey=key, sock=sock, look_for_keys=False, allow_agent=False,
                  timeout=10)
        _, out, _ = c.exec_command("id -un")
        return out.read().decode().strip()
    finally:
        c.close()


def test_ca_public_key_is_the_one_sshd_trusts(alice, stack):
    r = alice.get("/certificate/{system}/ca")
    assert r.status_code == 200, r.text
    ca_pub = (Path(stack["F7T_STACK_DIR"]) / "ca/user_ca.pub").read_text().split()[:2]
    assert r.json()["publicKey"].split()[:2] == ca_pub


def test_certificate_for_own_key_logs_in_as_the_caller_only(alice, stack):
    key = ed25519.Ed25519PrivateKey.generate()
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    r = alice.post("/certificate/{system}", json={"publicKey": pub})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["principal"] == "alice"
    assert body["privateKey"] == ""
    after = datetime.fromisoformat(body["validAfter"].replace("Z", "+00:00"))
    before = datetime.fromisoformat(body["validBefore"].replace("Z", "+00:00"))
    assert 0 < (before - after).total_seconds() <= 3600
    assert before > datetime.now(UTC)

    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                            serialization.NoEncryption()).decode()
    pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(pem))
    pkey.load_certificate(body["certificate"])
    assert _ssh(stack, "alice", pkey) == "alice"
    with pytest.raises(paramiko.AuthenticationException):
        _ssh(stack, "bob", pkey)


def test_generated_key_pair(bob, stack):
    r = bob.post("/certificate/{system}", json={})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["principal"] == "bob"
    pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(body["privateKey"]))
    pkey.load_certificate(body["certificate"])
    assert _ssh(stack, "bob", pkey) == "bob"


def test_bad_public_key_is_400(alice):
    r = alice.post("/certificate/{system}", json={"publicKey": "ssh-ed25519 AAAAnotakey"})
    assert_firecrest_error(r, 400)
    assert r.headers["f7t-error-reason"] == "INVALID_ARGUMENT"


def test_unknown_system_is_404(alice):
    assert_firecrest_error(alice.post("/certificate/nowhere", json={}), 404)
