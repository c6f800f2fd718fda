"""Remote commands as small objects: arguments are quoted in exactly one place, output is parsed
in exactly one place, and a failure becomes a domain error with the remote text."""

from __future__ import annotations

import re
import shlex
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar

from core.adapters import scripts
from core.adapters.ssh import ExecResult
from core.domain.errors import GatewayError, InvalidArgument, NotFound, PermissionDenied

T = TypeVar("T")


def quote_argv(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def command_line(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """argv as one POSIX shell command line that execs it, with `env` (and a leading `env K=V...`
    of argv) as the shell's own assignments: `K='v' exec cmd args`. The same as `env K=v cmd
    args` without starting env (one exec of the login node less per command); a leading env
    whose names are not all shell names, or that has options, stays as it is."""
    words = [f"{k}={shlex.quote(v)}" for k, v in sorted((env or {}).items())]
    rest = list(argv)
    if rest and rest[0] == "env":
        i = 1
        pairs: list[tuple[str, str]] = []
        while i < len(rest) and "=" in rest[i]:
            name, value = rest[i].split("=", 1)
            if not _NAME.fullmatch(name):
                break
            pairs.append((name, value))
            i += 1
        if i < len(rest) and "=" not in rest[i] and not rest[i].startswith("-"):
            words += [f"{k}={shlex.quote(v)}" for k, v in pairs]
            rest = rest[i:]
    return " ".join([*words, "exec", quote_argv(rest)])


def shell_line(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str | None:
    """A script's argv (`sh -c SCRIPT NAME ARG...`, scripts.argv) as the lines a POSIX sh runs
    itself: `export K='v'; set -- 'ARG'...; SCRIPT`. For the pool's command shells (/bin/sh, each
    command in a subshell of its own), where it does what command_line's `exec sh -c` does without
    starting a second shell. None for any other argv. Never for an exec channel: that line is read
    by the user's login shell, which need not be a POSIX sh."""
    if len(argv) < 4 or argv[0] != "sh" or argv[1] != "-c":
        return None
    lines = []
    if env:
        lines.append("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())))
    lines.append(" ".join(["set --", *(shlex.quote(a) for a in argv[4:])]))
    return "; ".join(lines) + "\n" + argv[2]


class RemoteCommand(ABC, Generic[T]):
    """A command run on the login node. Subclasses give argv() (never a shell string built from
    caller input) and parse(); the environment prefix, if any, is added by the runner."""

    timeout: float | None = None
    stdin: bytes | None = None
    # a script that can take its input as this shell variable instead of on stdin (SSHPool.run's
    # shell_input_var: in a command shell, no process to feed it)
    stdin_var: str | None = None
    max_output: int | None = None

    @abstractmethod
    def argv(self) -> list[str]: ...

    def command(self) -> str:
        return quote_argv(self.argv())

    @abstractmethod
    def parse(self, result: ExecResult) -> T: ...

    def check(self, result: ExecResult) -> None:
        if result.exit_status != 0:
            raise self.error(result)

    def error(self, result: ExecResult) -> GatewayError:
        return classify_error(result.err or result.out.strip() or f"exit status {result.exit_status}")


_NOT_FOUND = re.compile(r"No such file or directory|Directory nonexistent|cannot access|not found|does not exist", re.I)
_DENIED = re.compile(r"Permission denied|Operation not permitted|Access/permission denied", re.I)
_INVALID = re.compile(r"invalid|unrecognized option|illegal|missing operand|Not a directory|Is a directory", re.I)


# "sh: 5: " / "bash: line 1: ": where in our own fixed scripts a message came from, which means
# nothing to the caller (the rest of the line names the file and the problem)
_SHELL_LOCATION = re.compile(r"^(?:ba|da)?sh: (?:line )?\d+: ", re.M)


def classify_error(text: str) -> GatewayError:
    """Map a remote tool's error text to what the caller did wrong (or to a backend error)."""
    text = _SHELL_LOCATION.sub("", text).strip() or text
    if _DENIED.search(text):
        return PermissionDenied(text)
    if _NOT_FOUND.search(text):
        return NotFound(text)
    if _INVALID.search(text):
        return InvalidArgument(text)
    return GatewayError(text)


_PRIVATE_ID = re.compile(r"[0-9a-f]{32}")
PRIVATE_AREAS = ("jobs", "transfers")


def _private_dir(area: str, ident: str) -> None:
    if area not in PRIVATE_AREAS or not _PRIVATE_ID.fullmatch(ident):
        raise ValueError("a private directory is an area and a task id")


class WritePrivateScript(RemoteCommand[None]):
    """A fresh ~/.firecrest/<area>/<id>/ (mode 700) with a job script `job.sh` (mode 600) written
    from stdin: the directory of one task (e.g. a transfer's data-mover job)."""

    timeout = 30.0

    def __init__(self, area: str, ident: str, script: str):
        _private_dir(area, ident)
        self.area = area
        self.ident = ident
        self.stdin = script.encode("utf-8", "surrogatepass")

    def argv(self) -> list[str]:
        return scripts.argv("write_private_script.sh", self.area, self.ident)

    def check(self, result: ExecResult) -> None:
        if result.exit_status != 0:
            raise GatewayError(
                f"could not prepare the private directory ~/.firecrest/{self.area}/{self.ident}: "
                f"{result.err.strip() or result.exit_status}"
            )

    def parse(self, result: ExecResult) -> None:
        return None


class DiscardPrivateDir(RemoteCommand[None]):
    """rm -rf ~/.firecrest/<area>/<id>: the private directory the gateway made for one task (a job
    script, a transfer's script and logs). The id is a task id; nothing else is ever removed."""

    def __init__(self, area: str, ident: str):
        _private_dir(area, ident)
        self.area = area
        self.ident = ident

    def argv(self) -> list[str]:
        return scripts.argv("discard_private_dir.sh", self.area, self.ident)

    def parse(self, result: ExecResult) -> None:
        return None
