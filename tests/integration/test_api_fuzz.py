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
import requests

from tests.conftest import client_credentials

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "tests" / "fuzz" / "schemathesis.toml"
USER = "carol"
EXAMPLES = int(os.environ.get("F7T_FUZZ_EXAMPLES", "10"))
SEED = 20261202

# every operation, in groups small enough to finish well within one access token's lifetime (the
# local issuer's are valid 5 minutes); each group gets a fresh token
GROUPS = {
    "status-compute-certificate": "^/(status|compute|certificate)",
    "filesystem-ops": "^/filesystem/[^/]+/ops/",
    "transfers-tasks": "^/(filesystem/[^/]+/transfer/|tasks)",
}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the stack runs as root")


def fresh_token(stack: dict[str, str]) -> str:
    return str(client_credentials(stack, USER)["access_token"])


def test_every_operation_is_covered_by_a_group(stack):
    import re

    doc = requests.get(f"{stack['F7T_URL']}/openapi.json", timeout=10).json()
    for path in doc["paths"]:
        assert sum(bool(re.search(rx, path)) for rx in GROUPS.values()) == 1, path


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_schemathesis_finds_nothing(stack, tmp_path, group):
    url = stack["F7T_URL"]
    r = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "--config-file", str(CONFIG),
            "run", f"{url}/openapi.json",
            "--include-path-regex", GROUPS[group],
            "--header", f"Authorization: Bearer {fresh_token(stack)}",
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
    summary = out.rsplit("SUMMARY", 1)[-1]
    assert " passed" in summary and "failures" not in summary.lower(), out[-5000:]
    assert "Authentication failed" not in summary, out[-5000:]  # the token lasted the whole run
