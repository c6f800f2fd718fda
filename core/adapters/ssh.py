"""SSH to a cluster as the calling user, with a short-lived certificate from the centre's CA.

One pool per (system, user): bounded in connections, each connection multiplexing a bounded number
of channels; a dead connection is dropped and replaced; a connection whose certificate is about
to expire takes no new work and is closed once idle, so a fresh certificate is minted for the next
one. Sockets are opened with TCP_NODELAY (Paramiko's default socket costs ~40 ms per exec through
Nagle against delayed ACKs). All of it is blocking Paramiko, run in a bounded thread pool.

Command shells: a command runs in a long-lived `/bin/sh` on a channel of the
connection (started once, kept while it is used, closed after `shell_idle_timeout` idle seconds)
instead of an exec channel of its own. An exec costs sshd a session (fork, PAM, the login shell)
every time: about 3 ms of latency and 3 ms of the login node's CPU per command, more than many
commands themselves. Each command runs in a subshell (`(eval ...) </dev/null`), so nothing it
changes (directory, variables, `exit`) outlives it, and its end is framed on stdout and stderr by
a tag drawn at random for that command, followed by its exit status. Its input (`stdin`), if
any, is a quoted word of the same line; input with a NUL byte (no shell word holds one) or over
SHELL_STDIN_MAX gets an exec channel of its own, whose end of input is the end of the channel's.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import io
import logging
import re
import secrets
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import paramiko

from core.config import SSHConfig
from core.domain.certificates import UserKey
from core.domain.errors import BackendUnavailable, PayloadTooLarge, PermissionDenied, Timeout

log = logging.getLogger(__name__)

_RENEW_MARGIN = 60.0
# the most input a command may have to run in a command shell (more, or a NUL byte, which no shell
# word can hold: an exec channel of its own)
SHELL_STDIN_MAX = 1024 * 1024
_POLL = 0.05


class CommandWorkers(ThreadPoolExecutor):
    """The threads that run SSH commands (Paramiko blocks), with a bound on the commands waiting
    for one: beyond `max_queued` a new command is refused at once (BackendUnavailable, HTTP 503)
    instead of joining a queue whose wait no caller would sit through. Commands of a call that
    is cancelled while they wait never run (their future is cancelled, the slot freed)."""

    def __init__(self, max_workers: int, max_queued: int, thread_name_prefix: str = "ssh"):
        super().__init__(max_workers=max_workers, thread_name_prefix=thread_name_prefix)
        self.max_queued = max_queued
        self._waiting = 0
        self._count_lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Commands submitted and not yet picked up by a thread."""
        return self._waiting

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._count_lock:
            if self._waiting >= self.max_queued:
                raise BackendUnavailable(
                    f"the gateway is busy: {self._waiting} commands are waiting for an SSH worker; retry later",
                    metadata={"queued": str(self._waiting)},
                )
            self._waiting += 1
        started = False

        def leave_queue() -> None:
            nonlocal started
            with self._count_lock:
                if not started:
                    started = True
                    self._waiting -= 1

        def start() -> Any:
            leave_queue()
            return fn(*args, **kwargs)

        try:
            fut = super().submit(start)
        except BaseException:
            leave_queue()
            raise
        fut.add_done_callback(lambda _: leave_queue())  # cancelled before a thread took it
        return fut


@dataclass
class ExecResult:
    exit_status: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace").strip()


def _close(x: paramiko.Channel | paramiko.SSHClient) -> None:
    """Close a channel or connection that may already be dead (Paramiko then raises)."""
    with contextlib.suppress(Exception):
        x.close()


class _ShellEnded(Exception):
    """A command shell's channel closed before the command's end was framed."""


@dataclass(eq=False)
class _Shell:
    """A `/bin/sh` reading commands on one channel of a connection."""

    chan: paramiko.Channel
    idle_since: float = 0.0
    started: bool = False  # what the login shell's start printed has been skipped

    def usable(self) -> bool:
        return not (self.chan.closed or self.chan.eof_received or self.chan.exit_status_ready())


class _Framed:
    """One stream (stdout or stderr) of a command in a shell: its bytes between the start mark (a
    new shell's first command only) and the end mark, which ends the stream (the shell waits for
    the next command), with what the end mark captured (the exit status on stdout)."""

    def __init__(self, start: re.Pattern[bytes] | None, end: re.Pattern[bytes]):
        self.buf = bytearray()
        self.start = start
        self.end = end
        self.begin = 0  # where the command's bytes begin (after the start mark)
        self.stop: int | None = None
        self.status = ""

    @property
    def done(self) -> bool:
        return self.stop is not None

    @property
    def size(self) -> int:
        """The command's bytes so far (at least: until the end, the last 64 may be the mark's)."""
        return (self.stop if self.stop is not None else len(self.buf) - 64) - self.begin

    def feed(self, data: bytes) -> None:
        seen = len(self.buf)
        self.buf += data
        if self.start is not None:  # what the login shell's start files printed comes first: skipped
            m = self.start.search(self.buf, max(0, seen - 64))
            if m is None:
                return
            self.begin = seen = m.end()
            self.start = None
        if self.stop is None:
            m = self.end.search(self.buf, max(self.begin, seen - 64))  # the mark may span two reads
            if m is not None:
                self.stop, self.status = m.start(), m.group(1).decode()

    def body(self) -> bytes:
        return bytes(self.buf[self.begin:self.stop])


@dataclass(eq=False)
class _Conn:
    client: paramiko.SSHClient
    expires_at: float
    in_use: int = 0  # commands running on it (each on a channel: its own, or a shell's)
    broken: bool = False
    shells: list[_Shell] = field(default_factory=list)  # idle command shells (each holds a channel)

    def alive(self) -> bool:
        t = self.client.get_transport()
        return not self.broken and t is not None and t.is_active()


@dataclass
class _UserPool:
    conns: list[_Conn] = field(default_factory=list)
    creating: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)


class SSHPool:
    """Runs commands on one system's login node as a given user."""

    def __init__(
        self,
        cfg: SSHConfig,
        keys: Callable[[str], UserKey],
        executor: Executor,
        on_wait: Callable[[float], None] | None = None,
    ):
        self.cfg = cfg
        self.on_wait = on_wait  # told how long each command waited for a connection (metrics)
        self._keys = keys
        self._executor = executor
        self._pools: dict[str, _UserPool] = {}
        self._lock = threading.Lock()
        self._closed = False

    # ---- public API -------------------------------------------------------------------------
    async def run(
        self,
        user: str,
        command: str,
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        max_output: int | None = None,
        on_sent: Callable[[], object] | None = None,
        shell_command: str | None = None,
        shell_input_var: str | None = None,
    ) -> ExecResult:
        """`command` as `user`. on_sent, if given, is called (from the pool's thread) once the
        command has been sent, i.e. after any wait for a thread, a connection or a channel.
        shell_command, if given, is the same command as a command shell's /bin/sh runs it (a
        script's text rather than `sh -c` of it: commands.shell_line); an exec channel runs
        `command`. shell_input_var, with a shell_command that reads it: in a command shell, stdin
        is given to the script as that (unexported) shell variable instead of on its standard
        input, which saves the login node a process or two; an exec channel still sends stdin."""
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()  # the call's request id for log lines of the thread
        return await loop.run_in_executor(
            self._executor, ctx.run, self.run_blocking, user, command, stdin, timeout, max_output, on_sent,
            shell_command, shell_input_var,
        )

    def run_blocking(
        self,
        user: str,
        command: str,
        stdin: bytes | None = None,
        timeout: float | None = None,
        max_output: int | None = None,
        on_sent: Callable[[], object] | None = None,
        shell_command: str | None = None,
        shell_input_var: str | None = None,
    ) -> ExecResult:
        """Runs `command` (in a command shell, shell_command if given: run()) once. Only what
        cannot have run is retried: a pooled connection that turns out dead when a session is
        opened on it is replaced once. A connection lost after the command was sent is an error
        that says so (sbatch, rm or mv must not run twice)."""
        deadline = time.monotonic() + (timeout or self.cfg.command_timeout)
        # input goes to a shell's command as a quoted word (see _send_to_shell): text of a bounded size
        in_shell = self.cfg.shell_idle_timeout > 0 and (
            stdin is None or (len(stdin) <= SHELL_STDIN_MAX and b"\0" not in stdin)
        )
        for attempt in (1, 2):
            t0 = time.monotonic()
            conn = self._acquire(user, deadline)
            if self.on_wait is not None:
                self.on_wait(time.monotonic() - t0)
            shell: _Shell | None = None
            tag = ""
            try:
                try:
                    shell = self._idle_shell(user, conn) if in_shell else None
                    if shell is None:
                        self._make_room(user, conn)
                        chan = self._open_session(conn, deadline)
                        if in_shell:
                            shell = _Shell(chan)
                            chan.exec_command("exec /bin/sh")
                    if shell is not None:
                        # the shell runs nothing before the whole line has arrived: a send that fails
                        # has run nothing either, so it is tried again like a session that failed
                        tag = self._send_to_shell(
                            shell, shell_command or command, stdin, deadline,
                            shell_input_var if shell_command else None,
                        )
                except (paramiko.SSHException, OSError, EOFError) as e:
                    conn.broken = True
                    if attempt == 2 or time.monotonic() >= deadline:
                        raise BackendUnavailable(f"lost the SSH connection to {self.cfg.host}: {e}") from e
                    log.info("ssh connection for %s broke (%s); opening the session on a new one", user, e)
                    continue
                try:
                    if shell is None:
                        return self._exec(chan, command, stdin, deadline, max_output, on_sent)
                    if on_sent is not None:
                        on_sent()
                    result = self._shell_result(shell, tag, deadline, max_output)
                    self._keep_shell(user, conn, shell)
                    shell = None
                    return result
                except (_ShellEnded, paramiko.SSHException, OSError, EOFError) as e:
                    if isinstance(e, _ShellEnded) and conn.alive():  # the shell died, not the connection
                        raise BackendUnavailable(f"{e}: it may or may not have taken effect") from e
                    conn.broken = True
                    raise BackendUnavailable(
                        f"lost the SSH connection to {self.cfg.host} while the command ran: it may or "
                        f"may not have taken effect ({e})"
                    ) from e
            finally:
                if shell is not None:  # a command that failed, timed out or overflowed: its shell goes
                    _close(shell.chan)
                self._release(user, conn)
        raise AssertionError("unreachable")

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {u: len(p.conns) for u, p in self._pools.items()}

    def usage(self) -> tuple[int, int]:
        """(open connections, exec channels in use) over all users of this system."""
        with self._lock:
            pools = list(self._pools.values())
        conns = busy = 0
        for p in pools:
            with p.cond:
                conns += len(p.conns)
                busy += sum(c.in_use for c in p.conns)
        return conns, busy

    def idle_shells(self) -> int:
        """Command shells open and waiting for a command, over all users of this system."""
        with self._lock:
            pools = list(self._pools.values())
        n = 0
        for p in pools:
            with p.cond:
                n += sum(len(c.shells) for c in p.conns)
        return n

    def sweep(self) -> None:
        """Close what nobody uses: command shells idle for longer than shell_idle_timeout, and idle
        connections whose certificate has expired (a user who does not come back holds nothing)."""
        with self._lock:
            pools = list(self._pools.values())
        now = time.monotonic()
        closing: list[Any] = []
        for p in pools:
            with p.cond:
                for c in list(p.conns):
                    idle = [sh for sh in c.shells if now - sh.idle_since > self.cfg.shell_idle_timeout]
                    for sh in idle:
                        c.shells.remove(sh)
                        closing.append(sh.chan)
                    if c.in_use == 0 and (not c.alive() or c.expires_at <= time.time()):
                        p.conns.remove(c)
                        c.shells.clear()
                        closing.append(c.client)
        for x in closing:
            _close(x)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for p in pools:
            with p.cond:
                for c in p.conns:
                    c.client.close()
                p.conns.clear()

    # ---- pool -------------------------------------------------------------------------------
    def _pool(self, user: str) -> _UserPool:
        with self._lock:
            p = self._pools.get(user)
            if p is None:
                p = self._pools[user] = _UserPool()
            return p

    def _acquire(self, user: str, deadline: float) -> _Conn:
        pool = self._pool(user)
        with pool.cond:
            while True:
                now = time.time()
                for c in list(pool.conns):
                    if (not c.alive() or c.expires_at <= now) and c.in_use == 0:
                        pool.conns.remove(c)
                        c.client.close()
                usable = [
                    c
                    for c in pool.conns
                    if c.alive() and c.expires_at > now and c.in_use < self.cfg.channels_per_connection
                ]
                if usable:
                    conn = min(usable, key=lambda c: c.in_use)
                    # open a further connection instead of stacking channels when there is room
                    if conn.in_use == 0 or len(pool.conns) + pool.creating >= self.cfg.pool_size:
                        conn.in_use += 1
                        return conn
                if len(pool.conns) + pool.creating < self.cfg.pool_size:
                    pool.creating += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Timeout(f"no SSH connection to {self.cfg.host} became free in time")
                pool.cond.wait(min(remaining, 1.0))
        try:
            conn = self._connect(user, deadline)
        finally:
            with pool.cond:
                pool.creating -= 1
                pool.cond.notify_all()
        with pool.cond:
            conn.in_use = 1
            pool.conns.append(conn)
        return conn

    def _release(self, user: str, conn: _Conn) -> None:
        pool = self._pool(user)
        with pool.cond:
            conn.in_use -= 1
            if conn.broken and conn.in_use == 0:
                if conn in pool.conns:
                    pool.conns.remove(conn)
                conn.client.close()
            pool.cond.notify_all()

    def _idle_shell(self, user: str, conn: _Conn) -> _Shell | None:
        """A command shell of this connection waiting for work (the most recently used one: the
        others then grow idle and are swept)."""
        pool = self._pool(user)
        with pool.cond:
            while conn.shells:
                shell = conn.shells.pop()
                if shell.usable():
                    return shell
                _close(shell.chan)  # it ended while idle (killed on the login node, say)
        return None

    def _make_room(self, user: str, conn: _Conn) -> None:
        """Before a new channel: close the connection's oldest idle shell if it holds the last one."""
        pool = self._pool(user)
        with pool.cond:
            surplus = conn.in_use + len(conn.shells) - self.cfg.channels_per_connection
            closing = conn.shells[:max(0, surplus)]
            del conn.shells[:max(0, surplus)]
        for shell in closing:
            _close(shell.chan)

    def _keep_shell(self, user: str, conn: _Conn, shell: _Shell) -> None:
        shell.idle_since = time.monotonic()
        pool = self._pool(user)
        with pool.cond:
            if conn.alive():
                conn.shells.append(shell)
                return
        _close(shell.chan)

    def _connect(self, user: str, deadline: float) -> _Conn:
        if self._closed:
            raise BackendUnavailable("the gateway is shutting down")
        key = self._keys(user)
        pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(key.private_openssh))
        pkey.load_certificate(key.cert.certificate)
        timeout = max(0.5, min(self.cfg.connect_timeout, deadline - time.monotonic()))
        try:
            sock = socket.create_connection((self.cfg.host, self.cfg.port), timeout=timeout)
        except OSError as e:
            raise BackendUnavailable(f"cannot reach {self.cfg.host}:{self.cfg.port}: {e}") from e
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client = paramiko.SSHClient()
        if self.cfg.known_hosts:
            client.load_host_keys(str(self.cfg.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                self.cfg.host,
                port=self.cfg.port,
                username=user,
                pkey=pkey,
                sock=sock,
                look_for_keys=False,
                allow_agent=False,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
            )
        except paramiko.AuthenticationException as e:
            client.close()
            raise PermissionDenied(f"user '{user}' may not log in to {self.cfg.host}") from e
        except paramiko.BadHostKeyException as e:
            client.close()
            raise BackendUnavailable(f"host key of {self.cfg.host} does not match: refusing") from e
        except paramiko.SSHException as e:
            client.close()
            if "not found in known_hosts" in str(e):
                raise BackendUnavailable(f"host key of {self.cfg.host} is unknown: refusing") from e
            raise BackendUnavailable(f"SSH to {self.cfg.host} failed: {e}") from e
        except (OSError, EOFError) as e:
            client.close()
            raise BackendUnavailable(f"SSH to {self.cfg.host} failed: {e}") from e
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(30)
        margin = min(_RENEW_MARGIN, (key.cert.valid_before - time.time()) / 5)
        return _Conn(client=client, expires_at=key.cert.valid_before - margin)

    # ---- exec -------------------------------------------------------------------------------
    @staticmethod
    def _open_session(conn: _Conn, deadline: float) -> paramiko.Channel:
        transport = conn.client.get_transport()
        if transport is None or not transport.is_active():
            raise paramiko.SSHException("no transport")
        return transport.open_session(timeout=max(0.5, deadline - time.monotonic()))

    def _exec(
        self,
        chan: paramiko.Channel,
        command: str,
        stdin: bytes | None,
        deadline: float,
        max_output: int | None,
        on_sent: Callable[[], object] | None = None,
    ) -> ExecResult:
        try:
            chan.exec_command(command)
            if on_sent is not None:
                on_sent()
            if stdin:
                chan.settimeout(max(0.5, deadline - time.monotonic()))
                try:
                    chan.sendall(stdin)
                except TimeoutError as e:
                    raise Timeout("the command did not read its input in time") from e
                chan.settimeout(None)
            chan.shutdown_write()
            out: list[bytes] = []
            err: list[bytes] = []
            size = 0
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Timeout(f"the command did not finish within {self.cfg.command_timeout:g} s")
                # ready when stdout *or* stderr has data: read only what is there (a recv on an empty
                # stdout blocked, past the deadline, a command that wrote to stderr and then hung)
                select.select([chan], [], [], min(_POLL, remaining))
                while chan.recv_stderr_ready():
                    err.append(chan.recv_stderr(65536))
                while chan.recv_ready():
                    data = chan.recv(262144)
                    out.append(data)
                    size += len(data)
                    if max_output is not None and size > max_output:
                        raise PayloadTooLarge(f"output is larger than {max_output} bytes")
                if (chan.eof_received or chan.closed) and not chan.recv_ready():
                    break
            if not chan.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise Timeout("the command did not report its exit status in time")
            transport = chan.get_transport()
            if chan.exit_status == -1 and (transport is None or not transport.is_active()):
                # the channel closed because the connection did, not because the command ended
                raise paramiko.SSHException("the connection closed before the command reported its exit status")
            while chan.recv_stderr_ready():
                err.append(chan.recv_stderr(65536))
            return ExecResult(chan.recv_exit_status(), b"".join(out), b"".join(err))
        finally:
            chan.close()

    def _send_to_shell(
        self, shell: _Shell, command: str, stdin: bytes | None, deadline: float, input_var: str | None = None
    ) -> str:
        """Send `command` to the shell, framed: a subshell, then a tag (random, this command's own)
        and the exit status on stdout, the tag alone on stderr; one line, which the shell runs once
        it has all of it. The subshell's input is `stdin`, written into the line as one quoted word
        by the shell's printf (no process started), or nothing; with `input_var`, that word is
        instead the value of the subshell's variable of that name (not exported), and its input is
        nothing. A shell's first command also marks its start on both streams, so that what the
        login shell's start files printed is not taken for the command's output. Returns the tag."""
        tag = secrets.token_hex(16)
        run = f"(eval {shlex.quote(command)})"
        if stdin is None:
            run += " </dev/null"
        else:
            # one quoted word; bytes that are not UTF-8 travel as they are (surrogateescape both ways)
            data = shlex.quote(stdin.decode("utf-8", "surrogateescape"))
            if not input_var:
                run = f"printf '%s' {data} | {run}"
            elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", input_var):
                run = f"({input_var}={data}; eval {shlex.quote(command)}) </dev/null"
            else:
                raise ValueError(f"not a shell variable name: {input_var!r}")
        script = f"{run}; printf '%s %d\\n' {tag} \"$?\"; printf '%s\\n' {tag} >&2\n"
        if not shell.started:
            script = f"printf '%s\\n' {tag}-start; printf '%s\\n' {tag}-start >&2; " + script
        chan = shell.chan
        chan.settimeout(max(0.5, deadline - time.monotonic()))
        try:
            chan.sendall(script.encode("utf-8", "surrogateescape"))
        except TimeoutError as e:
            raise Timeout("the login node did not take the command in time") from e
        chan.settimeout(None)
        return tag

    def _shell_result(self, shell: _Shell, tag: str, deadline: float, max_output: int | None) -> ExecResult:
        """What the command sent with `tag` printed, once both of its streams are framed."""
        chan = shell.chan
        t = re.escape(tag.encode())
        start = None if shell.started else re.compile(t + rb"-start\n")
        out = _Framed(start, re.compile(t + rb" (\d+)\n"))
        err = _Framed(start, re.compile(t + rb"\n()"))
        while not (out.done and err.done):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout(f"the command did not finish within {self.cfg.command_timeout:g} s")
            # the channel's fileno is ready when stdout or stderr has data: read what is there
            select.select([chan], [], [], min(_POLL, remaining))
            while chan.recv_stderr_ready():
                err.feed(chan.recv_stderr(65536))
            while chan.recv_ready():
                out.feed(chan.recv(262144))
                if max_output is not None and out.size > max_output:
                    raise PayloadTooLarge(f"output is larger than {max_output} bytes")
            ended = (chan.eof_received or chan.closed) and not (chan.recv_ready() or chan.recv_stderr_ready())
            if ended and not (out.done and err.done):
                raise _ShellEnded("the shell the command ran in ended before the command did")
        shell.started = True
        return ExecResult(int(out.status), out.body(), err.body())
