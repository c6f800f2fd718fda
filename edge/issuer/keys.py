"""Signing key handling: load or create the RSA key, publish it as a JWK."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

KEY_SIZE = 2048
SIGNING_ALG = "RS256"


def load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    """Load the PEM private key at ``path``; create an RSA-2048 key (mode 600) if absent.

    Creation uses O_EXCL, so two processes racing on the same path end up sharing one key.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
        pem = key.private_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # somebody else created it meanwhile: use theirs
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
            return key
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path}: not an RSA private key")
    if loaded.key_size < KEY_SIZE:
        raise ValueError(f"{path}: RSA key too small ({loaded.key_size} bits)")
    return loaded


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    """The public half of ``key`` as a JWK suitable for a JWKS document."""
    jwk: dict[str, Any] = dict(RSAAlgorithm.to_jwk(key.public_key(), as_dict=True))  # type: ignore[arg-type]
    jwk.update({"kid": kid, "use": "sig", "alg": SIGNING_ALG})
    return jwk


def jwk_thumbprint(key: rsa.RSAPrivateKey) -> str:
    """RFC 7638 thumbprint of the public key (used as kid when none is configured)."""
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
