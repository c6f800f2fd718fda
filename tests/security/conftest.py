"""Fixtures of the security tests: tokens forged with the issuer's real key, for user names the
issuer itself never hands out (a system account, a name with a newline)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest


@pytest.fixture(scope="module")
def forge(stack: dict[str, str]) -> Callable[[str], str]:
    """forge('daemon') -> a valid token (right issuer, audience, key) naming that user."""
    cfg = json.loads((Path(stack["F7T_STACK_DIR"]) / "gateway/issuer/config.json").read_text())
    key = Path(cfg["key_file"]).read_bytes()

    def make(username: str) -> str:
        now = int(time.time())
        claims = {"iss": cfg["issuer"], "aud": cfg["audience"], "sub": username, "preferred_username": username,
                  "iat": now, "nbf": now, "exp": now + 300, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": cfg["kid"]})

    return make
