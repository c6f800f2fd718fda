"""Shared fixtures: the real local stack (started once, even under xdist), tokens from the real
issuer, a REST client through Envoy, native gRPC through Envoy, and pyfirecrest."""

from __future__ import annotations

import fcntl
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
STACK = [sys.executable, "-m", "devstack"]
LOCK = Path(os.environ.get("F7T_TEST_LOCK", "/tmp/firecrest-stack-tests.lock"))


def _stack_env(profile: str | None = None) -> dict[str, str]:
    args = ["env", "--profile", profile] if profile else ["env"]
    out = subprocess.run([*STACK, *args], check=True, capture_output=True, text=True, cwd=REPO).stdout
    env = {}
    for line in out.splitlines():
        if line.startswith("export "):
            k, _, v = line[len("export ") :].partition("=")
            env[k] = shlex.split(v)[0] if v else ""
    return env


@pytest.fixture(scope="session")
def stack() -> dict[str, str]:
    """`firecrest-stack up` once per machine (a file lock serialises xdist workers); the env."""
    with LOCK.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        r = subprocess.run([*STACK, "up"], capture_output=True, text=True, cwd=REPO, timeout=1500)
        if r.returncode != 0:
            pytest.fail(f"firecrest-stack up failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        fcntl.flock(fh, fcntl.LOCK_UN)
    return _stack_env()


def profile_up(profile: str) -> dict[str, str]:
    """`firecrest-stack up --profile P` (under the stack's lock): a gateway of its own (its Envoy,
    its cores, its task store) on the shared infrastructure, for tests that kill or restart cores;
    its environment."""
    with LOCK.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            r = subprocess.run(
                [*STACK, "up", "--profile", profile], capture_output=True, text=True, cwd=REPO, timeout=1500
            )
            if r.returncode != 0:
                pytest.fail(f"firecrest-stack up --profile {profile} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    return _stack_env(profile)


_tokens: dict[str, tuple[str, float]] = {}


def client_credentials(stack: dict[str, str], user: str) -> dict[str, Any]:
    """A new token response for the user from the stack's issuer (client credentials)."""
    u = user.upper()
    r = requests.post(
        stack["F7T_TOKEN_URL"],
        data={
            "grant_type": "client_credentials",
            "client_id": stack[f"F7T_{u}_CLIENT_ID"],
            "client_secret": stack[f"F7T_{u}_CLIENT_SECRET"],
        },
        timeout=10,
    )
    r.raise_for_status()
    return dict(r.json())


@pytest.fixture(scope="session")
def token(stack: dict[str, str]) -> Callable[[str], str]:
    """token('alice') -> a fresh access token from the issuer (client credentials)."""

    def get(user: str) -> str:
        cached = _tokens.get(user)
        if cached and cached[1] > time.time() + 60:
            return cached[0]
        body = client_credentials(stack, user)
        _tokens[user] = (body["access_token"], time.time() + body.get("expires_in", 300))
        return str(body["access_token"])

    return get


@dataclass
class Api:
    """A REST caller through Envoy: api.get('/status/systems') -> requests.Response."""

    base: str
    user: str | None
    system: str
    tokens: Callable[[str], str]

    @property
    def token(self) -> str | None:
        """A valid token for the user (renewed before it expires, so long suites stay signed in)."""
        return self.tokens(self.user) if self.user else None

    def request(self, method: str, path: str, **kw: Any) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if self.user is not None:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        kw.setdefault("timeout", 120)
        return requests.request(method, self.base + path.replace("{system}", self.system), headers=headers, **kw)

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)


@pytest.fixture(scope="session")
def api(stack: dict[str, str], token: Callable[[str], str]) -> Callable[[str | None], Api]:
    """api('alice') -> REST client with alice's token; api(None) -> no token."""

    def make(user: str | None) -> Api:
        return Api(stack["F7T_URL"], user, stack["F7T_SYSTEM"], token)

    return make


@pytest.fixture(scope="session")
def alice(api: Callable[[str | None], Api]) -> Api:
    return api("alice")


@pytest.fixture(scope="session")
def bob(api: Callable[[str | None], Api]) -> Api:
    return api("bob")


@pytest.fixture(scope="session")
def system(stack: dict[str, str]) -> str:
    return stack["F7T_SYSTEM"]


@pytest.fixture(scope="session")
def channel(stack: dict[str, str]) -> Iterator[grpc.Channel]:
    """A native gRPC channel to Envoy (not to the core)."""
    ch = grpc.insecure_channel(stack["F7T_GRPC_TARGET"])
    yield ch
    ch.close()


@pytest.fixture(scope="session")
def auth(token: Callable[[str], str]) -> Callable[[str], tuple[tuple[str, str], ...]]:
    """auth('alice') -> gRPC call metadata carrying alice's token."""
    return lambda user: (("authorization", f"Bearer {token(user)}"),)


@pytest.fixture(scope="session")
def pyfirecrest(stack: dict[str, str]) -> Callable[[str], Any]:
    """pyfirecrest('alice') -> firecrest.v2.Firecrest, unmodified, authenticating at the issuer."""
    import firecrest
    from firecrest.v2 import Firecrest

    def make(user: str) -> Any:
        u = user.upper()
        auth = firecrest.ClientCredentialsAuth(
            stack[f"F7T_{u}_CLIENT_ID"], stack[f"F7T_{u}_CLIENT_SECRET"], stack["F7T_TOKEN_URL"]
        )
        return Firecrest(firecrest_url=stack["F7T_URL"], authorization=auth)

    return make
