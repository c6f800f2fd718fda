"""Gateway processes a test starts for itself (an Envoy, a core, an sshd), from the stack's own
configuration with a few overrides, so that a test may stop, kill or throttle them without
touching the shared stack that other tests use at the same time."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edge.envoy_config import EdgeConfig, render

REPO = Path(__file__).resolve().parents[1]


def process_children() -> dict[int, list[int]]:
    """Every process's children, from /proc: parent pid -> child pids."""
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    return children


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unix_http_get(sock_path: Path, path: str, timeout: float = 2.0) -> int:
    """Status of an HTTP GET over a Unix socket (raises OSError when nothing listens)."""
    return unix_http(sock_path, path, timeout)[0]


def unix_http(sock_path: Path, path: str, timeout: float = 2.0) -> tuple[int, str]:
    """Status and body of an HTTP GET over a Unix socket (e.g. Envoy's admin interface)."""

    class _Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(str(sock_path))
            self.sock = s

    conn = _Conn("localhost", timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def wait_until(check: Any, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None,
               log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what} exited ({proc.returncode}): {log.read_text()[-3000:] if log else ''}")
        time.sleep(0.1)
    raise AssertionError(f"{what} not ready after {timeout:.0f}s: {log.read_text()[-3000:] if log else ''}")


@dataclass
class Proc:
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def _popen(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Proc:
    fh = open(log, "ab")  # noqa: SIM115
    try:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=REPO, env={**os.environ, **(env or {})}, start_new_session=True)
    finally:
        fh.close()
    return Proc(proc, log)


@dataclass
class Envoy(Proc):
    port: int
    admin_socket: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_envoy(stack: dict[str, str], d: Path, **overrides: Any) -> Envoy:
    """An Envoy rendered from the stack's edge config (plus overrides) on a free port."""
    edge = yaml.safe_load((Path(stack["F7T_STACK_DIR"]) / "gateway/edge.yaml").read_text())
    port = free_port()
    admin = d / "admin.sock"
    edge.update(listen_port=port, admin_socket=str(admin), admin_port=0, stats_port=0,
                lua_out=str(d / "filter.lua"), access_log=str(d / "access.log"), core_addresses=[])
    edge.update(overrides)
    (d / "envoy.yaml").write_text(render(EdgeConfig(**edge)))
    envoy = shutil.which("envoy", path=str(Path(sys.executable).parent))
    assert envoy
    p = _popen([envoy, "-c", str(d / "envoy.yaml"), "--disable-hot-restart", "--log-level", "warn"], d / "envoy.log")
    wait_until(lambda: unix_http_get(admin, "/ready") == 200, 60, "envoy", p.proc, p.log)
    return Envoy(p.proc, p.log, port, admin)


@dataclass
class Core(Proc):
    port: int
    config: Path


def core_config(stack: dict[str, str], d: Path, **overrides: Any) -> tuple[dict[str, Any], int]:
    """The stack's core config with its own port and task database (and overrides)."""
    cfg = yaml.safe_load((Path(stack["F7T_STACK_DIR"]) / "gateway/core.yaml").read_text())
    port = free_port()
    cfg.pop("task_db", None)
    cfg.pop("metrics", None)  # the stack's core has the metrics port
    cfg.update(listen=f"127.0.0.1:{port}", task_store={"type": "sqlite", "path": str(d / "tasks.db")})
    cfg.update(overrides)
    return cfg, port


def start_core(d: Path, cfg: dict[str, Any], port: int, name: str = "core") -> Core:
    """A core process (as root: the test reads its files) from ``cfg``, listening on ``port``."""
    path = d / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    p = _popen([sys.executable, "-m", "core", "--config", str(path)], d / f"{name}.log")

    def listening() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    wait_until(listening, 60, "core", p.proc, p.log)
    return Core(p.proc, p.log, port, path)


@contextlib.contextmanager
def gateway(stack: dict[str, str], d: Path, core_overrides: dict[str, Any] | None = None,
            **edge_overrides: Any) -> Iterator[tuple[Core, Envoy]]:
    """A core and an Envoy in front of it, both the test's own."""
    cfg, port = core_config(stack, d, **(core_overrides or {}))
    core = start_core(d, cfg, port)
    try:
        envoy = start_envoy(stack, d, core_address=f"127.0.0.1:{port}", **edge_overrides)
        try:
            yield core, envoy
        finally:
            envoy.stop()
    finally:
        core.stop()
