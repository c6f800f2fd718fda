"""The oracle: FirecREST v2 2.5.6 itself, started (once, under the stack's test lock) beside the
gateway on the same stack by `devstack.oracle` (its own venv, a CA-signed key per test user)."""

from __future__ import annotations

import fcntl
import subprocess
import sys

import pytest

from tests.conftest import LOCK, REPO


@pytest.fixture(scope="session")
def oracle(stack: dict[str, str]) -> str:
    """The base URL of FirecREST v2 2.5.6 running against this stack."""
    with LOCK.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        r = subprocess.run([sys.executable, "-m", "devstack.oracle", "up"], capture_output=True, text=True,
                           cwd=REPO, timeout=1200)
        fcntl.flock(fh, fcntl.LOCK_UN)
    if r.returncode != 0:
        pytest.fail(f"starting FirecREST v2 (the oracle) failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    out = subprocess.run([sys.executable, "-m", "devstack.oracle", "env"], capture_output=True, text=True,
                         cwd=REPO, check=True).stdout
    return out.strip().split("=", 1)[1]
