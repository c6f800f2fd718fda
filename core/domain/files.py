"""The FileSystem port: every direct file operation of FirecREST's /filesystem/{system}/ops/* on one
system, as a given user, with the types it answers in. core.adapters.files is its adapter (POSIX
tools over SSH on the login node); core.services.files.FileService applies the rules (paths inside
the system's file systems, size limits) before calling it.

Every call runs as `user`, so the system's permissions decide. Paths arrive validated (absolute,
no NUL: core.domain.paths) and are used exactly as given. A missing path is NotFound, a denied
one PermissionDenied, anything else the tool refuses InvalidArgument or FailedPrecondition, an
operation that runs too long Timeout, an output beyond `limit` bytes PayloadTooLarge."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

from core.domain.paths import Slice, Split


class FileEntry(NamedTuple):
    """One `ls -l` entry (the spec's File): every field a string, as FirecREST returns them.
    A NamedTuple: a listing makes thousands, and a frozen dataclass costs three times as much."""

    name: str
    type: str
    link_target: str | None
    user: str
    group: str
    permissions: str
    last_modified: str
    size: str


@dataclass(frozen=True)
class FileStatus:
    """`stat` as os.stat_result (the spec's FileStat)."""

    mode: int
    ino: int
    dev: int
    nlink: int
    uid: int
    gid: int
    size: int
    atime: int
    mtime: int
    ctime: int

    @property
    def is_regular(self) -> bool:
        return (self.mode & 0o170000) == 0o100000

    @property
    def is_directory(self) -> bool:
        return (self.mode & 0o170000) == 0o040000


class FileSystem(Protocol):
    """One system's files, used as a given user."""

    name: str

    # ---- listing and metadata
    async def list(
        self, user: str, path: str, *, show_hidden: bool, numeric_ids: bool, recursive: bool, dereference: bool
    ) -> list[FileEntry]:
        """`ls -l`: a directory's entries (names relative to it, sorted), or the path itself;
        owners by name unless numeric_ids."""
        ...

    async def stat(self, user: str, path: str, dereference: bool) -> FileStatus: ...

    async def checksum(self, user: str, path: str) -> str:
        """The SHA-256 of the file's content, in hex."""
        ...

    async def file_type(self, user: str, path: str) -> str:
        """What `file -b` says about the path."""
        ...

    # ---- reading
    async def head(self, user: str, path: str, part: Slice, limit: int) -> bytes: ...

    async def tail(self, user: str, path: str, part: Slice, limit: int) -> bytes: ...

    async def read(self, user: str, path: str, limit: int, offset: int = 0, size: int | None = None) -> bytes:
        """`size` bytes (None: to the end) from byte `offset`."""
        ...

    # ---- changing (the four first answer the path as one listing entry afterwards)
    async def mkdir(self, user: str, path: str, parents: bool) -> FileEntry: ...

    async def symlink(self, user: str, target: str, link: str) -> FileEntry:
        """A symbolic link at `link` pointing to `target` (never overwrites)."""
        ...

    async def chmod(self, user: str, path: str, mode: str) -> FileEntry: ...

    async def chown(self, user: str, path: str, owner: str) -> FileEntry:
        """`owner` is chown's OWNER[:GROUP] (core.domain.paths.owner_spec)."""
        ...

    async def remove(self, user: str, path: str) -> None:
        """Recursive; a symlink is removed, not what it points to."""
        ...

    async def compress(
        self, user: str, source: Split, target: str, compression: str, dereference: bool, pattern: str
    ) -> None:
        """A tar archive at `target` of source.parent/source.name (members start with the name);
        with a pattern, only the regular files whose path matches it."""
        ...

    async def extract(self, user: str, archive: str, target: str, compression: str) -> None: ...

    async def write(self, user: str, path: str, data: bytes) -> None:
        """Replace `path` with `data` atomically (readers see the old file or the new one)."""
        ...
