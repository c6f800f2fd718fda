"""The centre's SSH user CA: signs short-lived certificates for one principal (the caller)."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import ssh

# the extensions OpenSSH grants by default to a user certificate, minus agent/X11/port forwarding
_EXTENSIONS = (b"permit-pty",)
_CLOCK_SKEW = 60


@dataclass(frozen=True)
class SignedCertificate:
    principal: str
    certificate: str  # OpenSSH one-line form: "ssh-ed25519-cert-v01@openssh.com AAAA... key-id"
    key_id: str
    serial: int
    valid_after: int
    valid_before: int


@dataclass(frozen=True)
class UserKey:
    """A private key made for one user, and its certificate (both in OpenSSH text forms)."""

    private_openssh: str
    cert: SignedCertificate


class CertificateAuthority:
    def __init__(self, ca_key_path: Path, lifetime: int, key_id_prefix: str = "firecrest"):
        data = Path(ca_key_path).read_bytes()
        key = serialization.load_ssh_private_key(data, password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
            raise ValueError("the SSH CA key must be ed25519 or RSA")
        self._key = key
        self.lifetime = lifetime
        self.key_id_prefix = key_id_prefix

    def public_key(self) -> str:
        return (
            self._key.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )

    def sign(self, principal: str, public_key_openssh: str, lifetime: int | None = None) -> SignedCertificate:
        pub = ssh.load_ssh_public_identity(public_key_openssh.encode())
        if isinstance(pub, ssh.SSHCertificate):
            raise ValueError("expected a public key, got a certificate")
        if not isinstance(pub, ed25519.Ed25519PublicKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise ValueError("only ed25519, ECDSA and RSA keys can be certified")
        now = int(time.time())
        life = min(lifetime or self.lifetime, self.lifetime)
        serial = secrets.randbits(63)
        key_id = f"{self.key_id_prefix}:{principal}:{serial:x}"
        cert = (
            ssh.SSHCertificateBuilder()
            .public_key(pub)
            .serial(serial)
            .type(ssh.SSHCertificateType.USER)
            .key_id(key_id.encode())
            .valid_principals([principal.encode()])
            .valid_after(now - _CLOCK_SKEW)
            .valid_before(now + life)
        )
        for ext in _EXTENSIONS:
            cert = cert.add_extension(ext, b"")
        signed = cert.sign(self._key)
        return SignedCertificate(
            principal=principal,
            certificate=signed.public_bytes().decode() + f" {key_id}",
            key_id=key_id,
            serial=serial,
            valid_after=now - _CLOCK_SKEW,
            valid_before=now + life,
        )

    def new_user_key(self, principal: str) -> UserKey:
        key = ed25519.Ed25519PrivateKey.generate()
        pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        priv = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ).decode()
        return UserKey(private_openssh=priv, cert=self.sign(principal, pub.decode()))
