"""The centre's SSH user CA (the domain's CertificateIssuer): signs short-lived certificates for one
principal (the caller)."""

from __future__ import annotations

import base64
import secrets
import struct
import time
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import ssh

from core.domain.certificates import SignedCertificate, UserKey

# the extensions OpenSSH grants by default to a user certificate, minus agent/X11/port forwarding
_EXTENSIONS = (b"permit-pty",)
_CLOCK_SKEW = 60
MIN_RSA_BITS = 2048  # OpenSSH's own floor (RequiredRSASize, since 9.1)


def _blob_type(line: str) -> str:
    """The key type named inside the key's blob (the first field of the line can say anything)."""
    try:
        blob = base64.b64decode(line.split()[1])
        (n,) = struct.unpack(">I", blob[:4])
        return blob[4 : 4 + n].decode("ascii", "replace")
    except (IndexError, ValueError, struct.error):
        return ""


def acceptable_public_key(
    public_key_openssh: str,
) -> ed25519.Ed25519PublicKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    """The key, if OpenSSH's defaults accept its type and size: ed25519, ECDSA (P-256/384/521) and
    RSA of at least 2048 bits. DSA (off since OpenSSH 7.0), short RSA, security-key types and
    anything unparsable are a ValueError, which the API reports as a 400."""
    try:
        pub = ssh.load_ssh_public_identity(public_key_openssh.encode())
    except UnsupportedAlgorithm as e:
        kind = public_key_openssh.split(maxsplit=1)[0] if public_key_openssh.split() else "?"
        raise ValueError(f"key type {kind[:40]!r} is not accepted (use ed25519, ECDSA or RSA >= 2048)") from e
    except (ValueError, TypeError, IndexError) as e:
        raise ValueError(f"not an OpenSSH public key ({e})") from e
    if isinstance(pub, ssh.SSHCertificate):
        raise ValueError("expected a public key, got a certificate")
    if _blob_type(public_key_openssh).startswith("sk-"):
        # cryptography reads a FIDO key as its plain counterpart: a certificate for that would
        # never match the caller's security key
        raise ValueError("security-key (FIDO) keys cannot be certified here: use ed25519, ECDSA or RSA")
    if isinstance(pub, rsa.RSAPublicKey):
        if pub.key_size < MIN_RSA_BITS:
            raise ValueError(f"an RSA key of {pub.key_size} bits is too short (at least {MIN_RSA_BITS})")
        return pub
    if isinstance(pub, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        return pub
    raise ValueError("only ed25519, ECDSA and RSA keys can be certified")


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
        pub = acceptable_public_key(public_key_openssh)
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
