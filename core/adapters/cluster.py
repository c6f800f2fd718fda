"""One system of the centre as the adapters reach it: its login node's SSH pool, on which a command
object runs as a user (one audit line and the metrics of every command), and the probe of its SSH
service. What the commands mean is the business of the adapters that use it (core.adapters.slurm,
core.adapters.files, core.adapters.transferjobs)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import TypeVar

from core.adapters import scripts
from core.adapters.commands import RemoteCommand, command_line, quote_argv, shell_line
from core.adapters.ssh import ExecResult, SSHPool
from core.config import SystemConfig
from core.domain.systems import Probe
from core.observability import Metrics, audit

T = TypeVar("T")


class Cluster:
    def __init__(self, cfg: SystemConfig, pool: SSHPool, metrics: Metrics | None = None):
        self.cfg = cfg
        self.pool = pool
        self.metrics = metrics
        # the environment of every command (scheduler.env: e.g. SLURM_CONF on a login node whose
        # sessions do not set it)
        self._env = dict(cfg.scheduler.env)

    @property
    def name(self) -> str:
        return self.cfg.name

    async def run(self, user: str, cmd: RemoteCommand[T], on_sent: Callable[[], object] | None = None) -> T:
        """Run the command as `user` on the login node; its check() and parse() read the result.
        on_sent is called (from the pool's thread) once the command has been sent, after any wait
        for a worker thread or an SSH channel."""
        argv = cmd.argv()
        # the audit line: the argv without the system's environment, a script by its name (scripts.shown)
        shown = scripts.shown(argv) or quote_argv(argv)
        command = command_line(argv, self._env)
        shell_command = shell_line(argv, self._env)  # a script, as a command shell runs it
        t0 = time.monotonic()
        res: ExecResult | None = None
        error = ""
        try:
            res = await self.pool.run(
                user, command, stdin=cmd.stdin, timeout=cmd.timeout, max_output=cmd.max_output, on_sent=on_sent,
                shell_command=shell_command, shell_input_var=cmd.stdin_var,
            )
        except Exception as e:
            error = type(e).__name__
            raise
        finally:  # one audit line per command, whatever its fate
            seconds = time.monotonic() - t0
            status = res.exit_status if res is not None else None
            audit(self.name, user, shown, status, seconds, error)
            if self.metrics is not None:
                outcome = "error" if res is None else "ok" if status == 0 else "nonzero"
                self.metrics.ssh_commands.labels(self.name, outcome).inc()
                self.metrics.ssh_seconds.labels(self.name).observe(seconds)
        cmd.check(res)
        return cmd.parse(res)

    async def probe(self) -> Probe:
        """Is the login node's SSH service there? (Its banner; no credentials are sent.)"""
        return await asyncio.to_thread(self._probe_ssh)

    def _probe_ssh(self) -> Probe:
        t0 = time.monotonic()
        try:
            timeout = min(5.0, self.cfg.ssh.connect_timeout)
            with socket.create_connection((self.cfg.ssh.host, self.cfg.ssh.port), timeout=timeout) as s:
                s.settimeout(timeout)
                banner = s.recv(256).decode("ascii", "replace").strip()
            ok = banner.startswith("SSH-")
            msg = banner if ok else f"unexpected banner {banner!r}"
        except OSError as e:
            ok, msg = False, str(e)
        return Probe("ssh", ok, time.monotonic() - t0, msg, time.time())
