"""Pure validation of what a caller may ask of the file operations: paths, names, modes, owners,
counts, compression types. Nothing here touches a file system or builds a command; it only refuses
input that no careful shell user would pass, with a message saying why (InvalidArgument -> 400).

Paths are never normalised: `/home/alice/a/../b` reaches the login node exactly as given, and the
kernel resolves it there, as the calling user, like a shell would.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.domain.errors import InvalidArgument, PayloadTooLarge

# Linux PATH_MAX, NAME_MAX
MAX_PATH = 4096
MAX_NAME = 255

_OCTAL_MODE = re.compile(r"^[0-7]{1,4}$")
# chmod's symbolic modes: [ugoa]*([-+=]([rwxXst]*|[ugo]))+ joined by commas
_SYMBOLIC_CLAUSE = re.compile(r"^[ugoa]*(?:[-+=](?:[rwxXst]*|[ugo]))+$")
# POSIX portable user/group names, or numeric ids; never starting with '-'
_PRINCIPAL = re.compile(r"^(?:[0-9]+|[A-Za-z_][A-Za-z0-9_.-]{0,63}\$?)$")

COMPRESSION_TYPES = ("none", "gzip", "bzip2", "xz")


def require_path(value: str, field: str = "path") -> str:
    """An absolute path, as given: non-empty, starting with '/', no NUL, at most PATH_MAX bytes."""
    if not value:
        raise InvalidArgument(f"`{field}` is required", metadata={"field": field})
    if "\x00" in value:
        raise InvalidArgument(f"`{field}` contains a NUL byte", metadata={"field": field})
    if not value.startswith("/"):
        raise InvalidArgument(f"`{field}` must be an absolute path, got {value!r}", metadata={"field": field})
    if len(value.encode("utf-8", "surrogatepass")) >= MAX_PATH:
        raise InvalidArgument(f"`{field}` is longer than {MAX_PATH} bytes", metadata={"field": field})
    return value


def in_file_systems(path: str, roots: Sequence[str], system: str) -> str:
    """`path` (already absolute) if, once normalised, it lies in one of the system's file systems:
    FirecREST v2 refuses any other path of a filesystem request (400) before running anything."""
    norm = posixpath.normpath(path)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    for root in roots:
        base = root.rstrip("/") or "/"
        if norm == base or norm.startswith(base.rstrip("/") + "/"):
            return path
    raise InvalidArgument(
        f"The provided path ({norm}) does not match any of the defined filesystem paths for the "
        f"requested system ({system}).",
        metadata={"path": norm},
    )


def require_name(value: str, field: str = "filename") -> str:
    """A single path component (a file name inside a directory): no '/', no NUL, not '.' or '..'."""
    if not value:
        raise InvalidArgument(f"`{field}` is required", metadata={"field": field})
    if "/" in value or "\x00" in value or value in (".", ".."):
        raise InvalidArgument(
            f"`{field}` must be a plain file name (no '/', not '.' or '..'), got {value!r}",
            metadata={"field": field},
        )
    if len(value.encode("utf-8", "surrogatepass")) > MAX_NAME:
        raise InvalidArgument(f"`{field}` is longer than {MAX_NAME} bytes", metadata={"field": field})
    return value


def join(directory: str, name: str) -> str:
    """`directory/name` for an already validated directory and name (no normalisation)."""
    return directory + name if directory.endswith("/") else f"{directory}/{name}"


@dataclass(frozen=True)
class Split:
    parent: str
    name: str


def split_for_archive(path: str, field: str = "sourcePath") -> Split:
    """The directory to change into and the member name to archive, for `tar -C parent name`.

    Trailing slashes are dropped ('/a/b/' -> '/a', 'b'); the root archives '.' from '/'. A last
    component of '.' or '..' is refused: the archive's member names would not say what was archived.
    """
    stripped = path.rstrip("/")
    if not stripped:
        return Split("/", ".")
    parent, name = posixpath.split(stripped)
    if name in (".", ".."):
        raise InvalidArgument(
            f"`{field}` must not end in '.' or '..' (give the directory's own path), got {path!r}",
            metadata={"field": field},
        )
    return Split(parent or "/", name)


def require_mode(mode: str) -> str:
    """A chmod mode: octal ('755', '0640') or symbolic ('u+x,go-w')."""
    if not mode:
        raise InvalidArgument("`mode` is required", metadata={"field": "mode"})
    if _OCTAL_MODE.match(mode) or all(_SYMBOLIC_CLAUSE.match(c) for c in mode.split(",")):
        return mode
    raise InvalidArgument(
        f"invalid mode {mode!r}: give an octal (755) or symbolic (u+x) mode", metadata={"field": "mode"}
    )


def owner_spec(owner: str, group: str) -> str:
    """chown's OWNER[:GROUP] argument ('alice', 'alice:grp' or ':grp'); at least one is required."""
    if not owner and not group:
        raise InvalidArgument("give `owner`, `group` or both", metadata={"field": "owner"})
    for field, value in (("owner", owner), ("group", group)):
        if value and not _PRINCIPAL.match(value):
            raise InvalidArgument(f"invalid {field} {value!r}", metadata={"field": field})
    if owner and group:
        return f"{owner}:{group}"
    return owner or f":{group}"


def require_compression(value: str) -> str:
    """One of none, gzip (the default when empty), bzip2, xz."""
    value = value or "gzip"
    if value not in COMPRESSION_TYPES:
        raise InvalidArgument(
            f"unknown compression {value!r}: one of {', '.join(COMPRESSION_TYPES)}",
            metadata={"field": "compression"},
        )
    return value


def count(value: float | None, field: str, *, minimum: int = 0) -> int | None:
    """An optional whole number >= minimum (the proto carries the spec's integers as doubles)."""
    if value is None:
        return None
    if not math.isfinite(value) or value != int(value) or value < minimum:
        raise InvalidArgument(
            f"`{field}` must be a whole number >= {minimum}, got {value:g}", metadata={"field": field}
        )
    return int(value)


@dataclass(frozen=True)
class Slice:
    """What head/tail should print: `unit` 'lines' or 'bytes', how many, and whether `n` counts the
    part to leave out (head's skipTrailing, tail's skipHeading) instead of the part to print."""

    unit: str
    n: int
    skip: bool


def head_tail_slice(lines: float | None, nbytes: float | None, skip: bool, skip_field: str) -> Slice:
    n_lines = count(lines, "lines")
    n_bytes = count(nbytes, "bytes")
    if n_lines is not None and n_bytes is not None:
        raise InvalidArgument("Only one of `bytes` or `lines` can be specified.", metadata={"field": "bytes"})
    if skip and n_lines is None and n_bytes is None:
        raise InvalidArgument(
            f"`{skip_field}` needs the number of lines or bytes to skip in `lines` or `bytes`",
            metadata={"field": skip_field},
        )
    if n_bytes is not None:
        return Slice("bytes", n_bytes, skip)
    return Slice("lines", 10 if n_lines is None else n_lines, skip)


@dataclass(frozen=True)
class Window:
    offset: int
    size: int | None  # None: up to the end of the file


def view_window(size: float | None, offset: float | None, limit: int) -> Window:
    """ops/view's byte window; an explicit size above the direct-transfer limit is refused (the
    caller must use a transfer for that much data)."""
    off = count(offset, "offset") or 0
    n = count(size, "size", minimum=1)
    if n is not None and n > limit:
        raise too_large(n, limit, "view")
    return Window(off, n)


def too_large(size: int, limit: int, what: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{what}: {size} bytes is more than the {limit} bytes allowed for direct operations; "
        "use the transfer endpoints (/filesystem/{system_name}/transfer/...) for larger files",
        metadata={"size": str(size), "limit": str(limit)},
    )
