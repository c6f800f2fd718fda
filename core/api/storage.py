"""StorageService, the direct file operations (/filesystem/{system_name}/ops/*): proto in ->
validation (core.domain.paths) -> a file command run as the caller (core.adapters.files) -> proto out.

The staged transfers (Transfer* RPCs) are not defined here: the generated base class answers them
UNIMPLEMENTED (HTTP 501) until they exist.
"""

from __future__ import annotations

from typing import Any, TypeVar

import grpc
from google.api import httpbody_pb2

from core.adapters import files
from core.adapters.cluster import Cluster
from core.adapters.commands import RemoteCommand
from core.api.context import caller
from core.api.forms import FORM_OVERHEAD, parse_upload_form
from core.api.transfers import TransferMixin
from core.domain import paths
from core.domain.errors import InvalidArgument, PayloadTooLarge
from core.proto.firecrest.storage.v1 import storage_pb2 as pb
from core.proto.firecrest.storage.v1 import storage_pb2_grpc
from core.wiring import Gateway

T = TypeVar("T")

OCTET_STREAM = "application/octet-stream"


def _file_fields(e: files.FileEntry) -> dict[str, Any]:
    return {
        "name": e.name,
        "type": e.type,
        "link_target": e.link_target or None,
        "user": e.user,
        "group": e.group,
        "permissions": e.permissions,
        "last_modified": e.last_modified,
        "size": e.size,
    }


def _file(e: files.FileEntry) -> pb.File:
    return pb.File(**_file_fields(e))


def _text(raw: bytes) -> str:
    """File content as a JSON string: UTF-8, undecodable bytes replaced (use download for bytes)."""
    return raw.decode("utf-8", "replace")


class StorageServicer(TransferMixin, storage_pb2_grpc.StorageServiceServicer):
    def __init__(self, gw: Gateway):
        self.gw = gw

    async def _run(self, cluster: Cluster, cmd: RemoteCommand[T]) -> T:
        return await cluster.run(caller(), cmd)

    async def _regular_file_size(self, cluster: Cluster, path: str, what: str) -> int:
        """Stat (following symlinks, as reading does) and refuse what cannot be read directly."""
        st = await self._run(cluster, files.Stat(path, dereference=True))
        if st.is_directory:
            raise InvalidArgument(f"{what}: '{path}' is a directory", metadata={"field": "path"})
        if not st.is_regular:
            raise InvalidArgument(f"{what}: '{path}' is not a regular file", metadata={"field": "path"})
        return st.size

    async def _read(self, cluster: Cluster, cmd: RemoteCommand[bytes], what: str) -> bytes:
        try:
            return await self._run(cluster, cmd)
        except PayloadTooLarge as e:
            limit = cluster.cfg.max_ops_file_size
            raise paths.too_large(limit + 1, limit, f"{what} (the output grew past the limit)") from e

    # ---- listing and metadata ----------------------------------------------------------------
    async def ListDirectory(
        self, request: pb.ListDirectoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDirectoryResponse:
        cluster = self.gw.cluster(request.system_name)
        cmd = files.ListFiles(
            self._fs_path(request.system_name, request.path),
            show_hidden=request.show_hidden,
            numeric_ids=request.numeric_uid,
            recursive=request.recursive,
            dereference=request.dereference,
        )
        try:
            entries = await cluster.list_files(caller(), cmd)
        except PayloadTooLarge as e:
            raise PayloadTooLarge(
                f"the listing of '{cmd.path}' is larger than {files.MAX_LISTING} bytes; "
                "list its subdirectories separately (or without `recursive`)"
            ) from e
        resp = pb.ListDirectoryResponse()
        add = resp.output.add  # built in place: a list of File messages would be copied once more
        for entry in entries:
            add(**_file_fields(entry))
        return resp

    async def Stat(self, request: pb.StatRequest, context: grpc.aio.ServicerContext) -> pb.StatResponse:
        cluster = self.gw.cluster(request.system_name)
        st = await self._run(cluster, files.Stat(self._fs_path(request.system_name, request.path), request.dereference))
        return pb.StatResponse(
            output=pb.FileStat(
                mode=st.mode,
                ino=st.ino,
                dev=st.dev,
                nlink=st.nlink,
                uid=st.uid,
                gid=st.gid,
                size=st.size,
                atime=st.atime,
                mtime=st.mtime,
                ctime=st.ctime,
            )
        )

    async def GetChecksum(
        self, request: pb.GetChecksumRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetChecksumResponse:
        cluster = self.gw.cluster(request.system_name)
        digest = await self._run(cluster, files.Checksum(self._fs_path(request.system_name, request.path)))
        return pb.GetChecksumResponse(output=pb.FileChecksum(algorithm="SHA256", checksum=digest))

    async def GetFileType(
        self, request: pb.GetFileTypeRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetFileTypeResponse:
        cluster = self.gw.cluster(request.system_name)
        kind = await self._run(cluster, files.FileType(self._fs_path(request.system_name, request.path)))
        return pb.GetFileTypeResponse(output=kind)

    # ---- reading -----------------------------------------------------------------------------
    async def Head(self, request: pb.HeadRequest, context: grpc.aio.ServicerContext) -> pb.HeadResponse:
        cluster = self.gw.cluster(request.system_name)
        path = self._fs_path(request.system_name, request.path)
        part = _slice(request, request.skip_trailing, "skipTrailing")
        out = await self._read(cluster, files.Head(path, part, cluster.cfg.max_ops_file_size), "head")
        return pb.HeadResponse(
            output=pb.FileContent(
                content=_text(out),
                content_type=part.unit,
                start_position=0,
                end_position=-part.n if part.skip else part.n,
            )
        )

    async def Tail(self, request: pb.TailRequest, context: grpc.aio.ServicerContext) -> pb.TailResponse:
        cluster = self.gw.cluster(request.system_name)
        path = self._fs_path(request.system_name, request.path)
        part = _slice(request, request.skip_heading, "skipHeading")
        out = await self._read(cluster, files.Tail(path, part, cluster.cfg.max_ops_file_size), "tail")
        return pb.TailResponse(
            output=pb.FileContent(
                content=_text(out),
                content_type=part.unit,
                start_position=part.n if part.skip else -part.n,
                end_position=-1,
            )
        )

    async def View(self, request: pb.ViewRequest, context: grpc.aio.ServicerContext) -> pb.ViewResponse:
        cluster = self.gw.cluster(request.system_name)
        limit = cluster.cfg.max_ops_file_size
        path = self._fs_path(request.system_name, request.path)
        window = paths.view_window(
            request.size if request.HasField("size") else None,
            request.offset if request.HasField("offset") else None,
            limit,
        )
        size = await self._regular_file_size(cluster, path, "view")
        if window.size is None and size - window.offset > limit:
            raise paths.too_large(size - window.offset, limit, f"view of '{path}'")
        out = await self._read(cluster, files.ReadRange(path, window.offset, window.size, limit), "view")
        return pb.ViewResponse(output=_text(out))

    async def Download(
        self, request: pb.DownloadRequest, context: grpc.aio.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        cluster = self.gw.cluster(request.system_name)
        limit = cluster.cfg.max_ops_file_size
        path = self._fs_path(request.system_name, request.path)
        size = await self._regular_file_size(cluster, path, "download")
        if size > limit:
            raise paths.too_large(size, limit, f"download of '{path}'")
        data = await self._read(cluster, files.ReadFile(path, limit), "download")
        return httpbody_pb2.HttpBody(content_type=OCTET_STREAM, data=data)

    # ---- changing ----------------------------------------------------------------------------
    async def Mkdir(self, request: pb.MkdirRequest, context: grpc.aio.ServicerContext) -> pb.MkdirResponse:
        cluster = self.gw.cluster(request.system_name)
        cmd = files.Mkdir(self._fs_path(request.system_name, request.source_path, "sourcePath"), request.parent)
        return pb.MkdirResponse(output=_file(await self._run(cluster, cmd)))

    async def Symlink(
        self, request: pb.SymlinkRequest, context: grpc.aio.ServicerContext
    ) -> pb.SymlinkResponse:
        cluster = self.gw.cluster(request.system_name)
        cmd = files.Symlink(
            self._fs_path(request.system_name, request.source_path, "sourcePath"),
            paths.require_path(request.link_path, "linkPath"),
        )
        return pb.SymlinkResponse(output=_file(await self._run(cluster, cmd)))

    async def Chmod(self, request: pb.ChmodRequest, context: grpc.aio.ServicerContext) -> pb.ChmodResponse:
        cluster = self.gw.cluster(request.system_name)
        cmd = files.Chmod(
            self._fs_path(request.system_name, request.source_path, "sourcePath"), paths.require_mode(request.mode)
        )
        return pb.ChmodResponse(output=_file(await self._run(cluster, cmd)))

    async def Chown(self, request: pb.ChownRequest, context: grpc.aio.ServicerContext) -> pb.ChownResponse:
        cluster = self.gw.cluster(request.system_name)
        cmd = files.Chown(
            self._fs_path(request.system_name, request.source_path, "sourcePath"),
            paths.owner_spec(request.owner, request.group),
        )
        return pb.ChownResponse(output=_file(await self._run(cluster, cmd)))

    async def Remove(self, request: pb.RemoveRequest, context: grpc.aio.ServicerContext) -> pb.RemoveResponse:
        cluster = self.gw.cluster(request.system_name)
        await self._run(cluster, files.Remove(self._fs_path(request.system_name, request.path)))
        return pb.RemoveResponse()

    async def Compress(
        self, request: pb.CompressRequest, context: grpc.aio.ServicerContext
    ) -> pb.CompressResponse:
        cluster = self.gw.cluster(request.system_name)
        source = paths.split_for_archive(self._fs_path(request.system_name, request.source_path, "sourcePath"))
        target = paths.require_path(request.target_path, "targetPath")
        if "\x00" in request.match_pattern:
            raise InvalidArgument("`matchPattern` contains a NUL byte", metadata={"field": "matchPattern"})
        cmd = files.Compress(
            source,
            target,
            paths.require_compression(request.compression),
            request.dereference,
            request.match_pattern,
        )
        await self._run(cluster, cmd)
        return pb.CompressResponse()

    async def Extract(
        self, request: pb.ExtractRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExtractResponse:
        cluster = self.gw.cluster(request.system_name)
        cmd = files.Extract(
            self._fs_path(request.system_name, request.source_path, "sourcePath"),
            paths.require_path(request.target_path, "targetPath"),
            paths.require_compression(request.compression),
        )
        await self._run(cluster, cmd)
        return pb.ExtractResponse()

    async def Upload(self, request: pb.UploadRequest, context: grpc.aio.ServicerContext) -> pb.UploadResponse:
        """`path` is the target directory and the form's file name the new file's name (as
        FirecREST); without a file name in the form, `path` is the file to write."""
        cluster = self.gw.cluster(request.system_name)
        limit = cluster.cfg.max_ops_file_size
        path = self._fs_path(request.system_name, request.path)
        if len(request.body.data) > limit + FORM_OVERHEAD:
            raise paths.too_large(len(request.body.data), limit, "upload")
        form = parse_upload_form(request.body.content_type, request.body.data)
        if len(form.content) > limit:
            raise paths.too_large(len(form.content), limit, "upload")
        target = paths.join(path, paths.require_name(form.filename)) if form.filename else path
        await self._run(cluster, files.Upload(target, form.content))
        return pb.UploadResponse()


def _slice(request: pb.HeadRequest | pb.TailRequest, skip: bool, skip_name: str) -> paths.Slice:
    """The lines/bytes part a head or tail request asks for (both carry optional lines and bytes)."""
    return paths.head_tail_slice(
        request.lines if request.HasField("lines") else None,
        request.bytes if request.HasField("bytes") else None,
        skip,
        skip_name,
    )
