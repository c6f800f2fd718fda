"""The layers keep their shape: core.domain is rules and types (no I/O, no event loop, no outer
layer); orchestration lives in core.services, the outside world in core.adapters."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"
# what only services (asyncio) and adapters (the rest) may use
NOT_IN_DOMAIN = {
    "asyncio", "threading", "concurrent", "subprocess", "socket", "select",
    "grpc", "grpc_health", "grpc_reflection", "paramiko", "sqlite3", "sqlite_utils",
    "psycopg", "psycopg_pool", "minio", "boto3", "botocore", "urllib3", "requests",
}


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_the_domain_imports_no_io_and_no_outer_layer() -> None:
    offenders = {}
    for f in sorted((CORE / "domain").glob("*.py")):
        bad = {
            m for m in imports(f)
            if m.split(".")[0] in NOT_IN_DOMAIN
            or m.startswith(("core.adapters", "core.api", "core.services", "core.wiring", "core.proto"))
        }
        if bad:
            offenders[f.name] = sorted(bad)
    assert offenders == {}


def test_services_use_ports_not_adapters() -> None:
    offenders = {
        f.name: sorted(m for m in imports(f) if m.startswith(("core.adapters", "core.api", "core.wiring")))
        for f in sorted((CORE / "services").glob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}
