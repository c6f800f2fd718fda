"""The layers keep their shape: core.domain is rules, types and ports (no I/O, no event loop, no
outer layer); orchestration lives in core.services, the outside world in core.adapters, and the
API (core.api) reaches it only through the services. Slurm is one adapter package."""

from __future__ import annotations

import ast
import re
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


def test_the_api_reaches_the_outside_world_only_through_services() -> None:
    offenders = {
        f.name: sorted(m for m in imports(f) if m.startswith(("core.adapters", "core.wiring")))
        for f in sorted((CORE / "api").glob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def _code_strings(path: Path) -> list[str]:
    """The string constants of a module that are not docstrings."""
    tree = ast.parse(path.read_text())
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs
    ]


SLURM_WORDS = re.compile(r"\b(sbatch|squeue|sacct|sacctmgr|scontrol|scancel|srun|sinfo)\b|#SBATCH|SLURM_")


def test_slurm_lives_in_one_package() -> None:
    """Only the wiring (which chooses a system's scheduler) imports core.adapters.slurm, and no
    code outside it runs a Slurm client or writes a directive: a second scheduler is one more
    package beside it. (The configuration's descriptions of Slurm's settings are not code.)"""
    slurm = CORE / "adapters" / "slurm"
    importers, speakers = [], []
    for f in sorted(CORE.rglob("*.py")):
        if f.is_relative_to(slurm) or f.is_relative_to(CORE / "proto"):
            continue
        name = str(f.relative_to(CORE))
        if name != "wiring.py" and any(m.startswith("core.adapters.slurm") for m in imports(f)):
            importers.append(name)
        if name != "config.py" and any(SLURM_WORDS.search(s) for s in _code_strings(f)):
            speakers.append(name)
    assert importers == [] and speakers == []
