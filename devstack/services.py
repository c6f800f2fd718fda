"""Start, stop and probe the stack's processes, tracked by pidfile."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Service:
    name: str
    argv: list[str]
    ready: Callable[[], bool]  # health probe, called repeatedly until True
    env: dict[str, str] = field(default_factory=dict)  # added to os.environ
    user: str | None = None  # run as this user if set
    daemonizes: bool = False  # True: the program forks itself and writes pidfile
    pidfile: Path | None = None  # required when daemonizes; otherwise the tool writes it
    log: Path | None = None  # stdout+stderr go here (tool opens it) unless daemonizes
    cwd: Path | None = None
    ready_timeout: float = 60.0
    umask: int | None = None  # the process's umask, if set (e.g. 0o077 for the gateway's services)


class ServiceError(RuntimeError):
    """A service failed to start or become ready; the message names it and tails its log."""


# ---------------------------------------------------------------- pid tracking


def read_pid(service: Service) -> int | None:
    if service.pidfile is None:
        return None
    try:
        text = service.pidfile.read_text().strip()
        return int(text.split()[0]) if text else None
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    parts = [p.decode(errors="replace") for p in raw.split(b"\0")]
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


def _matches(pid: int, argv0: str, argv: list[str] | None = None) -> bool:
    """Is process ``pid`` running the program ``argv0``?

    Compares the first word of /proc/<pid>/cmdline (programs such as sshd rewrite
    their title to "sshd: /usr/sbin/sshd -f ... [listener]") and /proc/<pid>/exe.
    """
    cmd = _cmdline(pid)
    if not cmd:
        return False
    want = os.path.basename(argv0)
    first = cmd[0]
    if first == argv0 or os.path.basename(first) == want:
        return True
    head = first.split()[0].rstrip(":") if first.split() else ""
    if head and os.path.basename(head) == want:
        # a rewritten title ("sshd: /usr/sbin/sshd -f <conf> ..."): insist on our arguments too,
        # so that another instance of the same program reusing a stale pid is not taken for ours
        title = " ".join(cmd)
        return all(a in title for a in argv[1:]) if argv else True
    # the same Python program run by another interpreter of the same kind (the venv's, the system's)
    if (
        argv is not None and len(cmd) == len(argv) and cmd[1:] == argv[1:]
        and os.path.basename(first).startswith("python") and os.path.basename(argv0).startswith("python")
    ):
        return True
    # a script run by its interpreter ("python /venv/bin/envoy ...") before it execs the real program
    if len(cmd) > 1 and (cmd[1] == argv0 or (os.path.isabs(argv0) and cmd[1] == os.path.realpath(argv0))):
        return True
    try:
        exe = os.path.realpath(f"/proc/{pid}/exe")
        resolved = shutil.which(argv0) or argv0
        if exe == os.path.realpath(resolved):
            return True
    except OSError:
        pass
    return False


def pid_of(service: Service) -> int | None:
    """The pid of the running service, or None (stale pidfiles are ignored)."""
    pid = read_pid(service)
    if pid is None or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    if _is_zombie(pid):
        return None
    return pid if _matches(pid, service.argv[0], service.argv) else None


def is_running(service: Service) -> bool:
    return pid_of(service) is not None


def is_healthy(service: Service) -> bool:
    try:
        return bool(service.ready())
    except Exception:
        return False


# ---------------------------------------------------------------- start / stop


def _tail(path: Path | None, lines: int = 25) -> str:
    if path is None:
        return "(no log)"
    try:
        data = path.read_bytes()[-8000:].decode(errors="replace")
    except FileNotFoundError:
        return f"(log {path} does not exist)"
    return "\n".join(data.splitlines()[-lines:])


def start(service: Service) -> int | None:
    """Start ``service`` unless it already runs; return its pid (None if a daemon's pidfile is late)."""
    pid = pid_of(service)
    if pid is not None:
        return pid
    if service.daemonizes and service.pidfile is None:
        raise ValueError(f"{service.name}: a daemonizing service needs a pidfile")
    if service.pidfile is not None:
        service.pidfile.unlink(missing_ok=True)  # stale
        service.pidfile.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    kwargs: dict = {}
    if service.user:
        pw = pwd.getpwnam(service.user)
        kwargs.update(user=pw.pw_uid, group=pw.pw_gid, extra_groups=[])
        env.update(HOME=pw.pw_dir, USER=pw.pw_name, LOGNAME=pw.pw_name)
    env.update(service.env)
    if service.log is not None:
        service.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(service.log, "ab")  # noqa: SIM115
        if service.user:
            pw = pwd.getpwnam(service.user)
            os.chown(service.log, pw.pw_uid, pw.pw_gid)
            os.chmod(service.log, 0o600)
        out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {service.argv}\n".encode())
        out.flush()
    else:
        out = open(os.devnull, "wb")  # noqa: SIM115
    status_r, status_w = (-1, -1) if service.daemonizes else os.pipe()
    argv = (
        service.argv
        if service.daemonizes
        else [_launcher_python(), "-c", _LAUNCHER, str(status_w), *service.argv]
    )
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(service.cwd) if service.cwd else None,
            start_new_session=True,
            close_fds=True,
            pass_fds=() if service.daemonizes else (status_w,),
            umask=-1 if service.umask is None else service.umask,
            **kwargs,
        )
    finally:
        out.close()
        if status_w >= 0:
            os.close(status_w)
    if service.daemonizes:
        # the parent exits after forking; reap it and wait for the daemon's pidfile
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            rc = None
        if rc not in (0, None):
            raise ServiceError(
                f"{service.name}: {service.argv[0]} exited with {rc}\n--- {service.log}:\n{_tail(service.log)}"
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid = pid_of(service)
            if pid is not None:
                return pid
            time.sleep(0.05)
        return None
    # the launcher forks the service, reports its pid and exits at once, so the service is re-parented
    # to init before it execs (some programs, e.g. the envoy wheel, set PR_SET_PDEATHSIG at start and
    # would otherwise die with the process that ran `up`)
    with os.fdopen(status_r, "rb") as fh:
        report = fh.read().decode().strip()
    proc.wait(timeout=30)
    if not report.isdigit():
        raise ServiceError(
            f"{service.name}: launcher failed ({report!r})\n--- {service.log}:\n{_tail(service.log)}"
        )
    pid = int(report)
    if service.pidfile is not None:
        tmp = service.pidfile.with_suffix(".pid.tmp")
        tmp.write_text(f"{pid}\n")
        os.replace(tmp, service.pidfile)
    deadline = time.monotonic() + 10  # until it has exec'd (or died)
    while time.monotonic() < deadline and _alive(pid) and not _matches(pid, service.argv[0], service.argv):
        time.sleep(0.01)
    return pid


# Run as ``python -c _LAUNCHER <status-fd> argv...``: fork; the child waits until its parent (this
# launcher) has exited, then execs argv; the launcher writes the child's pid to <status-fd> and exits.
_LAUNCHER = """
import os, sys, time
fd = int(sys.argv[1]); argv = sys.argv[2:]
me = os.getpid()
pid = os.fork()
if pid:
    os.write(fd, str(pid).encode()); os._exit(0)
os.close(fd)
deadline = time.monotonic() + 10
while os.getppid() == me and time.monotonic() < deadline:
    time.sleep(0.002)
try:
    os.execvp(argv[0], argv)
except OSError as exc:
    sys.stderr.write(f"cannot exec {argv[0]}: {exc}\\n"); sys.stderr.flush(); os._exit(127)
"""


def _launcher_python() -> str:
    # the system interpreter: readable by service users (munge, ...) whatever the venv's permissions
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def stop(service: Service, timeout: float = 15.0) -> bool:
    """SIGTERM the service, wait, then SIGKILL; remove the pidfile. True if something was stopped."""
    pid = pid_of(service)
    stopped = False
    if pid is not None:
        stopped = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _reap(pid)
            if not _alive(pid):
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _alive(pid):
                _reap(pid)
                time.sleep(0.05)
    if service.pidfile is not None:
        service.pidfile.unlink(missing_ok=True)
    return stopped


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def wait_ready(service: Service, timeout: float | None = None) -> None:
    """Poll ``service.ready`` until it is True; raise ServiceError (naming the service, tail of log)."""
    timeout = service.ready_timeout if timeout is None else timeout
    deadline = time.monotonic() + timeout
    delay = 0.05
    last_exc: Exception | None = None
    while True:
        try:
            if service.ready():
                return
        except Exception as exc:  # a probe that raises counts as "not yet"
            last_exc = exc
        pid = read_pid(service)
        if pid is not None and not _alive(pid):
            raise ServiceError(
                f"service {service.name} exited before becoming ready\n--- tail of {service.log}:\n"
                f"{_tail(service.log)}"
            )
        if time.monotonic() > deadline:
            extra = f" (last probe error: {last_exc})" if last_exc else ""
            raise ServiceError(
                f"service {service.name} not ready after {timeout:.0f}s{extra}\n--- tail of {service.log}:\n"
                f"{_tail(service.log)}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


# ---------------------------------------------------------------- probes


def tcp_banner(host: str, port: int, prefix: bytes = b"", timeout: float = 1.0) -> Callable[[], bool]:
    """Probe: a TCP connect succeeds and (if ``prefix``) the server's first bytes start with it."""

    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout) as s:
                if not prefix:
                    return True
                s.settimeout(timeout)
                return s.recv(len(prefix) + 64).startswith(prefix)
        except OSError:
            return False

    return probe


def http_answers(url: str, timeout: float = 2.0) -> Callable[[], bool]:
    """Probe: an HTTP GET gets any HTTP response (error statuses included)."""

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310
                return True
        except urllib.error.HTTPError:
            return True
        except (OSError, urllib.error.URLError):
            return False

    return probe


def http_unix_ok(socket_path: Path, path: str = "/ready", timeout: float = 2.0) -> Callable[[], bool]:
    """Probe: an HTTP GET over a Unix socket answers 200 (Envoy's admin interface)."""
    import http.client

    class _Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(str(socket_path))
            self.sock = s

    def probe() -> bool:
        conn = _Conn("localhost", timeout=timeout)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    return probe


def command_ok(
    argv: list[str] | str,
    env: dict[str, str] | None = None,
    check_output: Callable[[str], bool] | None = None,
    timeout: float = 10.0,
) -> Callable[[], bool]:
    """Probe: a command (list, or a shell string) exits 0 and optionally its stdout passes ``check_output``."""

    def probe() -> bool:
        full_env = dict(os.environ)
        full_env.update(env or {})
        try:
            r = subprocess.run(
                argv,
                shell=isinstance(argv, str),
                env=full_env,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        if r.returncode != 0:
            return False
        return check_output(r.stdout) if check_output else True

    return probe
