"""The FileSystem port (core.domain.files) over SSH: POSIX tools on the login node run as the
calling user, one command object per operation, and ShellFileSystem, the adapter that runs them.

Rules every command here follows:
- caller values are argv elements, never parts of a shell string; paths come after `--` (every tool
  used here supports it) or as `if=`/`--reference=` operands; a shell, where one is needed, runs a
  fixed script of core/adapters/scripts/ with the caller's values as positional parameters
  (`sh -c SCRIPT sh arg1 arg2 ...`);
- paths are used exactly as given (validated absolute by core.domain.paths, never normalised), as
  the calling user over SSH, so the kernel and the user's permissions decide;
- listings are machine-readable: `find -printf` with NUL-terminated fields, so names with spaces,
  quotes, newlines or any other byte parse exactly;
- every remote tool runs under `timeout`: a slow operation ends with 408 (pyfirecrest then falls
  back to a transfer job), not with a process left behind on the login node.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import re
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import ClassVar, TypeVar

from core.adapters import scripts
from core.adapters.cluster import Cluster
from core.adapters.coalesce import Coalescer, retrieve
from core.adapters.commands import RemoteCommand, classify_error
from core.adapters.ssh import ExecResult
from core.domain import paths
from core.domain.errors import (
    FailedPrecondition,
    GatewayError,
    InvalidArgument,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    Reason,
    Timeout,
)
from core.domain.files import FileEntry, FileStatus

T = TypeVar("T")

# seconds a remote file tool may run before `timeout` stops it (FirecREST uses 5 s; a loaded login
# node needs more); the SSH call itself waits a little longer so the tool's own exit is seen
OPS_TIMEOUT = 30
_SSH_MARGIN = 10


# ---------------------------------------------------------------------------------------- errors

_EXTRA_RULES: tuple[tuple[re.Pattern[str], type[GatewayError]], ...] = (
    (re.compile(r"Directory nonexistent|No such file", re.I), NotFound),
    (re.compile(r"Read-only file system", re.I), PermissionDenied),
    (re.compile(r"No space left on device|Disk quota exceeded", re.I), FailedPrecondition),
    (
        re.compile(
            r"File exists|Too many levels of symbolic links|File name too long|Directory not empty|"
            r"refusing to remove|cannot overwrite|not in gzip format|not in the .* format|"
            r"unexpected end of (file|input)|does not look like a tar archive|Invalid (argument|regular "
            r"expression)|format violated|Cannot (open|create|stat)",
            re.I,
        ),
        InvalidArgument,
    ),
)


def file_error(result: ExecResult, ops_timeout: int = OPS_TIMEOUT) -> GatewayError:
    """Map a failed file tool to what the caller did: 404 missing, 403 denied, 400 anything else
    the tool refused, 408 when `timeout` stopped it. The remote text is the message."""
    text = result.err or result.out.strip() or f"exit status {result.exit_status}"
    if result.exit_status in (124, 137):  # timeout(1): timed out / had to be killed
        return Timeout(
            f"the operation did not finish within {ops_timeout} s; use the transfer endpoints "
            f"(/filesystem/{{system_name}}/transfer/...) for long operations ({text})"
        )
    if result.exit_status in (125, 126, 127):  # timeout itself failed, or the tool is missing
        return GatewayError(f"the login node cannot run the file tool: {text}")
    err = classify_error(text)
    if err.reason is not Reason.INTERNAL:  # denied, missing or invalid, in that order
        return err
    for pattern, cls in _EXTRA_RULES:
        if pattern.search(text):
            return cls(text)
    # the tool ran and refused the request for a reason not listed above: still the request's
    # problem on this system (400), never an internal error
    return FailedPrecondition(text)


class FileCommand(RemoteCommand[T]):
    """A file tool run under `timeout` as the caller; subclasses give tool_argv() and parse()."""

    timeout: float | None = OPS_TIMEOUT + _SSH_MARGIN
    ops_timeout: int = OPS_TIMEOUT  # the system's `ops_timeout` (ShellFileSystem sets it)

    @abstractmethod
    def tool_argv(self) -> list[str]: ...

    def argv(self) -> list[str]:
        # LC_ALL=C: the tools' messages in English whatever the user's profile sets, so that
        # file_error() can tell a missing path from a denied one
        return ["env", "LC_ALL=C", "timeout", "-k", "5", str(self.ops_timeout), *self.tool_argv()]

    def limited(self, ops_timeout: int) -> FileCommand[T]:
        """This command with the system's time limit (and the SSH call's, a margin above it)."""
        self.ops_timeout = ops_timeout
        self.timeout = ops_timeout + _SSH_MARGIN
        return self

    def error(self, result: ExecResult) -> GatewayError:
        return file_error(result, self.ops_timeout)


def _decode(raw: bytes) -> str:
    """A name or a text from the remote as a JSON-safe string (undecodable bytes as \\xNN)."""
    return raw.decode("utf-8", "backslashreplace")


# ------------------------------------------------------------------------------------- listings

# find -printf fields, each NUL-terminated: permissions with the type letter (as ls -l), user,
# group, size, mtime, link target, name. The time is `%T+` (2025-01-02+03:04:05.1234567890, local
# time on the login node): one strftime per entry where %TY-%Tm-%TdT%TH:%TM:%TS made six.
# Listings print numeric ids (%U %G) and the core names them (IdNames, cached per system): find's
# %u/%g looks each entry up in the user database again (about 15 ms of a 1,000-entry listing).
_NAMES = r"%M\0%u\0%g\0%s\0%T+\0%l\0"
_IDS = r"%M\0%U\0%G\0%s\0%T+\0%l\0"
_FIELDS = 7
_RELATIVE = r"%P\0"  # the name below the listed directory (sub/file for recursive listings)
_AS_GIVEN = r"%p\0"  # the path exactly as given (ls -l of a file argument prints that)


def listing_fields(out: bytes) -> list[str]:
    """A listing's fields, _FIELDS per entry, in find's order."""
    # one decode for the whole output: NUL is ASCII, so no field's bytes decode differently
    fields = _decode(out).split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    if len(fields) % _FIELDS:
        raise GatewayError(f"unexpected listing output ({len(fields)} fields)")
    return fields


# FileEntry's own constructor is a Python function around this (a listing makes thousands)
_new_entry = tuple.__new__


def listing_entries(
    fields: list[str], users: dict[str, str] | None = None, groups: dict[str, str] | None = None
) -> list[FileEntry]:
    """The entries of listing_fields() in its order, with the uids and gids replaced by their names
    in `users` and `groups`, which name every id of the listing (None: the ids stay as they are)."""
    it = iter(fields)
    rows = zip(it, it, it, it, it, it, it, strict=True)
    # ls --time-style=+%Y-%m-%dT%H:%M:%S: the date and time joined by T, the fraction cut
    if users is None and groups is None:
        return [
            _new_entry(FileEntry, (
                name, mode[:1], target if target and mode[:1] == "l" else None, user, group, mode[1:],
                mtime.split(".", 1)[0].replace("+", "T", 1), size,
            ))
            for mode, user, group, size, mtime, target, name in rows
        ]
    ids = listing_ids(fields)
    users = users if users is not None else dict(zip(ids[0], ids[0], strict=True))
    groups = groups if groups is not None else dict(zip(ids[1], ids[1], strict=True))
    return [
        _new_entry(FileEntry, (
            name, mode[:1], target if target and mode[:1] == "l" else None, users[user], groups[group], mode[1:],
            mtime.split(".", 1)[0].replace("+", "T", 1), size,
        ))
        for mode, user, group, size, mtime, target, name in rows
    ]


def listing_ids(fields: list[str]) -> tuple[set[str], set[str]]:
    """The uids and gids of listing_fields()."""
    return set(fields[1::_FIELDS]), set(fields[2::_FIELDS])


def parse_entries(out: bytes) -> list[FileEntry]:
    return listing_entries(listing_fields(out))


_by_name = itemgetter(0)  # FileEntry.name

# a listing larger than this is refused (413) instead of growing without bound in memory
MAX_LISTING = 64 * 1024 * 1024


class ListFiles(FileCommand[list[str]]):
    """`ls -l [-A] [-R] [-n] [-L] -- path`, with find: a directory lists its entries (names relative
    to it), anything else (a file, or a symlink unless dereferencing) lists itself (the path as
    given), like ls -l. Hidden entries (and, recursively, hidden directories) only with show_hidden."""

    def __init__(self, path: str, show_hidden: bool, numeric_ids: bool, recursive: bool, dereference: bool):
        self.path = path
        self.show_hidden = show_hidden
        self.numeric_ids = numeric_ids
        self.recursive = recursive
        self.dereference = dereference
        self.max_output = MAX_LISTING

    def tool_argv(self) -> list[str]:
        # always numeric: without numeric_ids the caller names the ids with IdNames
        flags = ("1" if b else "0" for b in (self.dereference, self.show_hidden, self.recursive))
        return scripts.argv("ls.sh", self.path, *flags, _IDS + _RELATIVE, _IDS + _AS_GIVEN)

    def parse(self, result: ExecResult) -> list[str]:
        """The listing's fields (listing_fields): the entries are made once their ids are named."""
        return listing_fields(result.stdout)

    @staticmethod
    def entries(
        fields: list[str], users: dict[str, str] | None = None, groups: dict[str, str] | None = None
    ) -> list[FileEntry]:
        """The listing sorted by name, its ids named as listing_entries() does."""
        return sorted(listing_entries(fields, users, groups), key=_by_name)


class LookupIds(RemoteCommand[tuple[dict[str, str], dict[str, str]]]):
    """`getent passwd UID...` and `getent group GID...` on the login node: {uid: name}, {gid: name}."""

    def __init__(self, uids: Iterable[str], gids: Iterable[str]):
        self.uids = sorted(u for u in uids if u.isdigit())
        self.gids = sorted(g for g in gids if g.isdigit())

    def argv(self) -> list[str]:
        return scripts.argv("id_names.sh", ",".join(self.uids), ",".join(self.gids))

    def check(self, result: ExecResult) -> None:
        return None  # an unknown id, or no getent at all: the ids stay numbers

    def parse(self, result: ExecResult) -> tuple[dict[str, str], dict[str, str]]:
        users: dict[str, str] = {}
        groups: dict[str, str] = {}
        for line in result.out.splitlines():
            parts = line.split(":")
            if len(parts) == 7:  # name:password:uid:gid:gecos:home:shell
                users[parts[2]] = parts[0]
            elif len(parts) == 4:  # name:password:gid:members
                groups[parts[2]] = parts[0]
        return users, groups


class IdNames:
    """uid and gid -> name on one system, for the listings, cached for `ttl` seconds (a renamed
    account shows its old name for at most that long; an id without a name stays a number)."""

    MAX_IDS = 100_000  # a bound on memory: beyond it the cache starts again

    def __init__(self, ttl: float = 120.0, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._clock = clock
        self._users: dict[str, tuple[str, float]] = {}
        self._groups: dict[str, tuple[str, float]] = {}

    def unknown(self, uids: set[str], gids: set[str]) -> LookupIds | None:
        """The lookup still needed to name these ids (None: all of them are cached)."""
        now = self._clock()
        uids = {u for u in uids if u.isdigit() and self._users.get(u, ("", 0.0))[1] <= now}
        gids = {g for g in gids if g.isdigit() and self._groups.get(g, ("", 0.0))[1] <= now}
        return LookupIds(uids, gids) if uids or gids else None

    def learn(self, lookup: LookupIds, found: tuple[dict[str, str], dict[str, str]]) -> None:
        until = self._clock() + self.ttl
        for cache, asked, names in ((self._users, lookup.uids, found[0]), (self._groups, lookup.gids, found[1])):
            if len(cache) > self.MAX_IDS:
                cache.clear()
            for i in asked:
                cache[i] = (names.get(i, i), until)

    def names(self, uids: set[str], gids: set[str]) -> tuple[dict[str, str] | None, dict[str, str] | None]:
        """uid -> name for every id of uids, gid -> name for every id of gids, from the cache (an id
        without a cached name stays itself); None where every id would stay itself."""
        users = {u: self._users[u][0] if u in self._users else u for u in uids}
        groups = {g: self._groups[g][0] if g in self._groups else g for g in gids}
        return (
            None if all(k == v for k, v in users.items()) else users,
            None if all(k == v for k, v in groups.items()) else groups,
        )


class _DescribeAfter(FileCommand[FileEntry]):
    path: str
    follow: ClassVar[bool] = False

    @abstractmethod
    def tool(self) -> list[str]: ...

    def tool_argv(self) -> list[str]:
        how = "-H" if self.follow else "-P"
        return scripts.argv("then_describe.sh", self.path, how, _NAMES + _AS_GIVEN, *self.tool())

    def parse(self, result: ExecResult) -> FileEntry:
        entries = parse_entries(result.stdout)
        if len(entries) != 1:
            raise GatewayError(f"expected one entry for {self.path!r}, got {len(entries)}")
        return entries[0]


class Mkdir(_DescribeAfter):
    def __init__(self, path: str, parents: bool):
        self.path = path
        self.parents = parents

    def tool(self) -> list[str]:
        return ["mkdir", *(["-p"] if self.parents else []), "--", self.path]


class Symlink(_DescribeAfter):
    """`ln -s -T -- source link`: -T so an existing directory at `link` is an error (File exists),
    not a place to put the link in; never overwrites."""

    def __init__(self, source: str, link: str):
        self.source = source
        self.path = link

    def tool(self) -> list[str]:
        return ["ln", "-s", "-T", "--", self.source, self.path]


class Chmod(_DescribeAfter):
    """chmod follows a symlink (as in a shell); the answer describes the file it changed."""

    follow = True

    def __init__(self, path: str, mode: str):
        self.path = path
        self.mode = mode

    def tool(self) -> list[str]:
        return ["chmod", "--", self.mode, self.path]


class Chown(_DescribeAfter):
    follow = True

    def __init__(self, path: str, spec: str):
        self.path = path
        self.spec = spec

    def tool(self) -> list[str]:
        return ["chown", "--", self.spec, self.path]


# ------------------------------------------------------------------------------ reading files


class Stat(FileCommand[FileStatus]):
    def __init__(self, path: str, dereference: bool):
        self.path = path
        self.dereference = dereference

    def tool_argv(self) -> list[str]:
        return [
            "stat",
            *(["-L"] if self.dereference else []),
            "-c",
            "%f %i %d %h %u %g %s %X %Y %Z",
            "--",
            self.path,
        ]

    def parse(self, result: ExecResult) -> FileStatus:
        parts = result.out.split()
        if len(parts) != 10:
            raise GatewayError(f"unexpected output of stat: {result.out!r}")
        mode, *rest = parts
        ino, dev, nlink, uid, gid, size, atime, mtime, ctime = (int(x) for x in rest)
        return FileStatus(int(mode, 16), ino, dev, nlink, uid, gid, size, atime, mtime, ctime)


class _Bytes(FileCommand[bytes]):
    def parse(self, result: ExecResult) -> bytes:
        return result.stdout


class _Part(_Bytes):
    def __init__(self, path: str, part: paths.Slice, max_output: int):
        self.path = path
        self.part = part
        self.max_output = max_output


class Head(_Part):
    """head: the first n lines/bytes, or with skip all but the last n."""

    def tool_argv(self) -> list[str]:
        flag = "-n" if self.part.unit == "lines" else "-c"
        n = f"-{self.part.n}" if self.part.skip else str(self.part.n)
        return ["head", flag, n, "--", self.path]


class Tail(_Part):
    """tail: the last n lines/bytes, or with skip from line/byte n on (`tail -n +n`, as FirecREST v2)."""

    def tool_argv(self) -> list[str]:
        flag = "-n" if self.part.unit == "lines" else "-c"
        n = f"+{self.part.n}" if self.part.skip else str(self.part.n)
        return ["tail", flag, n, "--", self.path]


class ReadRange(_Bytes):
    """`size` bytes (None: to the end) from byte `offset` of a file, with dd."""

    def __init__(self, path: str, offset: int, size: int | None, max_output: int):
        self.path = path
        self.offset = offset
        self.size = size
        self.max_output = max_output

    def tool_argv(self) -> list[str]:
        count = [] if self.size is None else [f"count={self.size}"]
        return [
            "dd",
            f"if={self.path}",
            "iflag=skip_bytes,count_bytes,fullblock",
            f"skip={self.offset}",
            *count,
            "bs=1M",
            "status=none",
        ]


class ReadFile(_Bytes):
    """The whole file (download), read as the user; output above max_output is refused."""

    def __init__(self, path: str, max_output: int):
        self.path = path
        self.max_output = max_output

    def tool_argv(self) -> list[str]:
        return ["cat", "--", self.path]


_SHA256 = re.compile(r"^\\?([0-9a-f]{64})\s")


class Checksum(FileCommand[str]):
    def __init__(self, path: str):
        self.path = path

    def tool_argv(self) -> list[str]:
        return ["sha256sum", "--", self.path]

    def parse(self, result: ExecResult) -> str:
        m = _SHA256.match(result.out)
        if not m:
            raise GatewayError(f"unexpected output of sha256sum: {result.out[:200]!r}")
        return m.group(1)


class FileType(FileCommand[str]):
    """`file -b -E`: -E makes a missing or unreadable path an error instead of a description."""

    def __init__(self, path: str):
        self.path = path

    def tool_argv(self) -> list[str]:
        return ["file", "-b", "-E", "--", self.path]

    def parse(self, result: ExecResult) -> str:
        return result.out.strip()


# ------------------------------------------------------------------------------ changing files


class _NoOutput(FileCommand[None]):
    max_output = 1024 * 1024

    def parse(self, result: ExecResult) -> None:
        return None


class Remove(_NoOutput):
    """`rm -r --interactive=never -- path`: a symlink is removed, not what it points to."""

    def __init__(self, path: str):
        self.path = path

    def tool_argv(self) -> list[str]:
        return ["rm", "-r", "--interactive=never", "--", self.path]


_COMPRESSION_FLAG = {"none": [], "gzip": ["-z"], "bzip2": ["-j"], "xz": ["-J"]}


class Compress(_NoOutput):
    """`tar -c -f target -C parent -- name` (member names start with the source's own name)."""

    def __init__(self, source: paths.Split, target: str, compression: str, dereference: bool, pattern: str):
        self.source = source
        self.target = target
        self.compression = compression
        self.dereference = dereference
        self.pattern = pattern

    def tool_argv(self) -> list[str]:
        tar = [
            "tar",
            "-c",
            *_COMPRESSION_FLAG[self.compression],
            *(["-h"] if self.dereference else []),
            "--force-local",
            "-f",
            self.target,
        ]
        if self.pattern:
            how = "-L" if self.dereference else "-P"
            source = self.source
            return scripts.argv("compress_matching.sh", source.parent, source.name, self.pattern, how, *tar)
        return [*tar, "-C", self.source.parent, "--", self.source.name]


class Extract(_NoOutput):
    """`tar -x -f archive -C target` (GNU tar drops leading '/' and members with '..')."""

    def __init__(self, archive: str, target: str, compression: str):
        self.archive = archive
        self.target = target
        self.compression = compression

    def tool_argv(self) -> list[str]:
        return [
            "tar",
            "-x",
            *_COMPRESSION_FLAG[self.compression],
            "--force-local",
            "--no-same-owner",
            "-f",
            self.archive,
            "-C",
            self.target,
        ]


class Upload(_NoOutput):
    """Write `data` to `target` atomically (a temporary file in the same directory, then mv -T).
    An existing file keeps its permission bits; a symlink at `target` is replaced, not followed."""

    def __init__(self, target: str, data: bytes):
        self.target = target
        self.stdin = data
        directory = target.rsplit("/", 1)[0] or "/"
        self.tmp = paths.join(directory, f".f7t-upload-{uuid.uuid4().hex}")

    def tool_argv(self) -> list[str]:
        return scripts.argv("upload.sh", self.target, self.tmp, str(len(self.stdin or b"")))


# ------------------------------------------------------------------------------ the port's adapter


class ShellFileSystem:
    """The FileSystem port for one system: the commands above, run over its SSH pool as the user."""

    def __init__(self, cluster: Cluster, id_names: IdNames | None = None, ops_timeout: int = OPS_TIMEOUT):
        self.cluster = cluster
        self.name = cluster.name
        self.ops_timeout = ops_timeout
        self.id_names = id_names or IdNames()
        # the uid/gid lookup in flight: concurrent listings wait for it instead of repeating it
        self._naming: asyncio.Future[None] | None = None
        self._listings: Coalescer[list[FileEntry]] = Coalescer()

    async def _run(self, user: str, cmd: FileCommand[T]) -> T:
        return await self.cluster.run(user, cmd.limited(self.ops_timeout))

    async def list(
        self, user: str, path: str, *, show_hidden: bool, numeric_ids: bool, recursive: bool, dereference: bool
    ) -> list[FileEntry]:
        """Without numeric_ids the listing's uids and gids are named from this system's user
        database (cached: at most one getent per listing, none once the ids are known). Callers
        asking for the same listing at the same time share one run that starts after they asked
        (core.adapters.coalesce)."""
        flags = (show_hidden, numeric_ids, recursive, dereference)
        entries = await self._listings.run((user, path, flags), lambda: self._list(user, path, *flags))
        return list(entries)

    async def _list(
        self, user: str, path: str, show_hidden: bool, numeric_ids: bool, recursive: bool, dereference: bool
    ) -> builtins.list[FileEntry]:
        try:
            fields = await self._run(user, ListFiles(path, show_hidden, numeric_ids, recursive, dereference))
        except PayloadTooLarge as e:
            raise PayloadTooLarge(
                f"the listing of '{path}' is larger than {MAX_LISTING} bytes; "
                "list its subdirectories separately (or without `recursive`)"
            ) from e
        if numeric_ids:
            return ListFiles.entries(fields)
        uids, gids = listing_ids(fields)
        lookup = self.id_names.unknown(uids, gids)
        pending = self._naming
        if lookup is not None and pending is not None and not pending.done():
            # another listing is naming ids (after a start or the cache's expiry, hundreds of
            # listings at once would each run the same getent): wait for it, then ask again
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)
            lookup = self.id_names.unknown(uids, gids)
        if lookup is not None:
            naming = self._naming = asyncio.ensure_future(self._learn_names(user, lookup))
            naming.add_done_callback(retrieve)
            await asyncio.shield(naming)
        return ListFiles.entries(fields, *self.id_names.names(uids, gids))  # named as they are made

    async def _learn_names(self, user: str, lookup: LookupIds) -> None:
        self.id_names.learn(lookup, await self.cluster.run(user, lookup))

    async def stat(self, user: str, path: str, dereference: bool) -> FileStatus:
        return await self._run(user, Stat(path, dereference))

    async def checksum(self, user: str, path: str) -> str:
        return await self._run(user, Checksum(path))

    async def file_type(self, user: str, path: str) -> str:
        return await self._run(user, FileType(path))

    async def head(self, user: str, path: str, part: paths.Slice, limit: int) -> bytes:
        return await self._run(user, Head(path, part, limit))

    async def tail(self, user: str, path: str, part: paths.Slice, limit: int) -> bytes:
        return await self._run(user, Tail(path, part, limit))

    async def read(self, user: str, path: str, limit: int, offset: int = 0, size: int | None = None) -> bytes:
        if offset == 0 and size is None:
            return await self._run(user, ReadFile(path, limit))
        return await self._run(user, ReadRange(path, offset, size, limit))

    async def mkdir(self, user: str, path: str, parents: bool) -> FileEntry:
        return await self._run(user, Mkdir(path, parents))

    async def symlink(self, user: str, target: str, link: str) -> FileEntry:
        return await self._run(user, Symlink(target, link))

    async def chmod(self, user: str, path: str, mode: str) -> FileEntry:
        return await self._run(user, Chmod(path, mode))

    async def chown(self, user: str, path: str, owner: str) -> FileEntry:
        return await self._run(user, Chown(path, owner))

    async def remove(self, user: str, path: str) -> None:
        await self._run(user, Remove(path))

    async def compress(
        self, user: str, source: paths.Split, target: str, compression: str, dereference: bool, pattern: str
    ) -> None:
        await self._run(user, Compress(source, target, compression, dereference, pattern))

    async def extract(self, user: str, archive: str, target: str, compression: str) -> None:
        await self._run(user, Extract(archive, target, compression))

    async def write(self, user: str, path: str, data: bytes) -> None:
        await self._run(user, Upload(path, data))
