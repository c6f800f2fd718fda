"""FileService: the direct file operations (FirecREST's /filesystem/{system}/ops/*) as the calling
user, through each system's FileSystem port. It applies FirecREST v2's rules before anything runs
(the main path of a request lies in one of the system's file systems; reads and writes stay below
the system's `max_ops_file_size`, beyond which a client must use a transfer); the validation of
single values is core.domain.paths."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from core.config import SystemConfig
from core.domain import paths
from core.domain.errors import InvalidArgument, PayloadTooLarge
from core.domain.files import FileEntry, FileStatus, FileSystem


class FileService:
    def __init__(self, filesystems: Callable[[str], FileSystem], systems: Callable[[str], SystemConfig]):
        self._filesystems = filesystems
        self._systems = systems

    def path(self, system: str, value: str, field: str = "path") -> str:
        """The request's main path: absolute, and inside one of the system's file systems (FirecREST
        v2 refuses others with a 400 before running anything). SystemNotFound first."""
        cfg = self._systems(system)
        path = paths.require_path(value, field)
        return paths.in_file_systems(path, [f.path for f in cfg.filesystems], cfg.name)

    def max_file_size(self, system: str) -> int:
        """The most bytes a direct read or write may move on this system."""
        return self._systems(system).max_ops_file_size

    # ---- listing and metadata ----------------------------------------------------------------
    async def list(
        self, user: str, system: str, path: str, *, show_hidden: bool, numeric_ids: bool, recursive: bool,
        dereference: bool,
    ) -> list[FileEntry]:
        fs = self._filesystems(system)
        return await fs.list(
            user, self.path(system, path), show_hidden=show_hidden, numeric_ids=numeric_ids,
            recursive=recursive, dereference=dereference,
        )

    async def stat(self, user: str, system: str, path: str, dereference: bool) -> FileStatus:
        fs = self._filesystems(system)
        return await fs.stat(user, self.path(system, path), dereference)

    async def checksum(self, user: str, system: str, path: str) -> str:
        fs = self._filesystems(system)
        return await fs.checksum(user, self.path(system, path))

    async def file_type(self, user: str, system: str, path: str) -> str:
        fs = self._filesystems(system)
        return await fs.file_type(user, self.path(system, path))

    # ---- reading -----------------------------------------------------------------------------
    async def head(
        self, user: str, system: str, path: str, lines: float | None, nbytes: float | None, skip_trailing: bool
    ) -> tuple[bytes, paths.Slice]:
        """The first lines/bytes (or, skipping, all but the last), and the part that was read."""
        return await self._end("head", user, system, path, lines, nbytes, skip_trailing, "skipTrailing")

    async def tail(
        self, user: str, system: str, path: str, lines: float | None, nbytes: float | None, skip_heading: bool
    ) -> tuple[bytes, paths.Slice]:
        """The last lines/bytes (or, skipping, from line/byte n on), and the part that was read."""
        return await self._end("tail", user, system, path, lines, nbytes, skip_heading, "skipHeading")

    async def _end(
        self, which: str, user: str, system: str, path: str, lines: float | None, nbytes: float | None,
        skip: bool, skip_name: str,
    ) -> tuple[bytes, paths.Slice]:
        fs = self._filesystems(system)
        p = self.path(system, path)
        part = paths.head_tail_slice(lines, nbytes, skip, skip_name)
        limit = self.max_file_size(system)
        read = fs.head if which == "head" else fs.tail
        return await self._limited(read(user, p, part, limit), limit, which), part

    async def view(self, user: str, system: str, path: str, size: float | None, offset: float | None) -> bytes:
        fs = self._filesystems(system)
        limit = self.max_file_size(system)
        p = self.path(system, path)
        window = paths.view_window(size, offset, limit)
        file_size = await self._regular_file_size(fs, user, p, "view")
        if window.size is None and file_size - window.offset > limit:
            raise paths.too_large(file_size - window.offset, limit, f"view of '{p}'")
        return await self._limited(fs.read(user, p, limit, window.offset, window.size), limit, "view")

    async def download(self, user: str, system: str, path: str) -> bytes:
        fs = self._filesystems(system)
        limit = self.max_file_size(system)
        p = self.path(system, path)
        size = await self._regular_file_size(fs, user, p, "download")
        if size > limit:
            raise paths.too_large(size, limit, f"download of '{p}'")
        return await self._limited(fs.read(user, p, limit), limit, "download")

    @staticmethod
    async def _regular_file_size(fs: FileSystem, user: str, path: str, what: str) -> int:
        """Stat (following symlinks, as reading does) and refuse what cannot be read directly."""
        st = await fs.stat(user, path, dereference=True)
        if st.is_directory:
            raise InvalidArgument(f"{what}: '{path}' is a directory", metadata={"field": "path"})
        if not st.is_regular:
            raise InvalidArgument(f"{what}: '{path}' is not a regular file", metadata={"field": "path"})
        return st.size

    @staticmethod
    async def _limited(read: Awaitable[bytes], limit: int, what: str) -> bytes:
        try:
            return await read
        except PayloadTooLarge as e:
            raise paths.too_large(limit + 1, limit, f"{what} (the output grew past the limit)") from e

    # ---- changing ----------------------------------------------------------------------------
    async def mkdir(self, user: str, system: str, path: str, parents: bool) -> FileEntry:
        fs = self._filesystems(system)
        return await fs.mkdir(user, self.path(system, path, "sourcePath"), parents)

    async def symlink(self, user: str, system: str, target: str, link: str) -> FileEntry:
        """A link at `link` (any absolute path) to `target` (inside the system's file systems)."""
        fs = self._filesystems(system)
        t = self.path(system, target, "sourcePath")
        return await fs.symlink(user, t, paths.require_path(link, "linkPath"))

    async def chmod(self, user: str, system: str, path: str, mode: str) -> FileEntry:
        fs = self._filesystems(system)
        p = self.path(system, path, "sourcePath")
        return await fs.chmod(user, p, paths.require_mode(mode))

    async def chown(self, user: str, system: str, path: str, owner: str, group: str) -> FileEntry:
        fs = self._filesystems(system)
        p = self.path(system, path, "sourcePath")
        return await fs.chown(user, p, paths.owner_spec(owner, group))

    async def remove(self, user: str, system: str, path: str) -> None:
        fs = self._filesystems(system)
        await fs.remove(user, self.path(system, path))

    async def compress(
        self, user: str, system: str, source: str, target: str, compression: str, dereference: bool, pattern: str
    ) -> None:
        fs = self._filesystems(system)
        split = paths.split_for_archive(self.path(system, source, "sourcePath"))
        t = paths.require_path(target, "targetPath")
        if "\x00" in pattern:
            raise InvalidArgument("`matchPattern` contains a NUL byte", metadata={"field": "matchPattern"})
        await fs.compress(user, split, t, paths.require_compression(compression), dereference, pattern)

    async def extract(self, user: str, system: str, archive: str, target: str, compression: str) -> None:
        fs = self._filesystems(system)
        a = self.path(system, archive, "sourcePath")
        t = paths.require_path(target, "targetPath")
        await fs.extract(user, a, t, paths.require_compression(compression))

    async def upload(self, user: str, system: str, path: str, filename: str | None, content: bytes) -> None:
        """`path` is the target directory and `filename` the new file's name (as FirecREST);
        without a file name, `path` is the file to write."""
        fs = self._filesystems(system)
        p = self.path(system, path)
        limit = self.max_file_size(system)
        if len(content) > limit:
            raise paths.too_large(len(content), limit, "upload")
        target = paths.join(p, paths.require_name(filename)) if filename else p
        await fs.write(user, target, content)
