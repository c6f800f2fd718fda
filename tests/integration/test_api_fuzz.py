"""schemathesis against the live stack, through Envoy, as carol (a user no other test uses, so
whatever the fuzzer creates, moves or deletes cannot disturb another test). The OpenAPI document is
the one Envoy serves. Bounded and repeatable: a fixed number of cases per operation and a fixed
seed. Every operation is fuzzed; tests/fuzz/schemathesis.toml says what the schema cannot.

Checked on every response: no 5XX, status code, content type, headers and body as described, data
the schema allows is accepted and data it forbids refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "tests" / "fuzz" / "schemathesis.toml"
USER = "carol"
EXAMPLES = int(os.environ.get("F7T_FUZZ_EXAMPLES", "10"))
SEED = 20261202

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the stack runs as root")


def test_schemathesis_finds_nothing(stack, token, tmp_path):
    url = stack["F7T_URL"]
    r = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "--config-file", str(CONFIG),
            "run", f"{url}/openapi.json",
            "--header", f"Authorization: Bearer {token(USER)}",
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", str(EXAMPLES),
            "--seed", str(SEED),
            "--generation-database", "none",
            "--no-shrink",
            "--workers", "1",
            "--continue-on-failure",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # schemathesis writes its cache and reports next to it
        timeout=1200,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-20000:]
    assert " passed" in out and "failures" not in out.rsplit("SUMMARY", 1)[-1].lower(), out[-5000:]
