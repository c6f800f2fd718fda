"""StorageService, the direct file operations (/filesystem/{system_name}/ops/*): proto in ->
FileService (the rules, then the system's FileSystem port, as the caller) -> proto out. The staged
transfers (Transfer* RPCs) are core.api.transfers."""

from __future__ import annotations

from typing import Any

import grpc
from google.api import httpbody_pb2

from core.api.context import caller
from core.api.forms import FORM_OVERHEAD, parse_upload_form
from core.api.restjson import Records, TwoForms
from core.api.transfers import TransferMixin
from core.domain import paths
from core.domain.files import FileEntry
from core.proto.firecrest.storage.v1 import storage_pb2 as pb
from core.proto.firecrest.storage.v1 import storage_pb2_grpc
from core.services.files import FileService
from core.services.transfers import TransferService

OCTET_STREAM = "application/octet-stream"


def _file_fields(e: FileEntry) -> dict[str, Any]:
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


# ListDirectoryResponse from FileEntry records (their fields are File's): both forms from the descriptor
_LISTING = Records(pb.ListDirectoryResponse, "output", FileEntry)


def _file(e: FileEntry) -> pb.File:
    return pb.File(**_file_fields(e))


def _text(raw: bytes) -> str:
    """File content as a JSON string: UTF-8, undecodable bytes replaced (use download for bytes)."""
    return raw.decode("utf-8", "replace")


class StorageServicer(TransferMixin, storage_pb2_grpc.StorageServiceServicer):
    def __init__(self, files: FileService, transfers: TransferService):
        self.files = files
        self.transfers = transfers

    # ---- listing and metadata ----------------------------------------------------------------
    async def ListDirectory(
        self, request: pb.ListDirectoryRequest, context: grpc.aio.ServicerContext
    ) -> TwoForms:
        """The listing as a protobuf for native callers, as JSON written straight from the entries
        for REST callers (core.api.restjson.TwoForms: a 1,000-entry listing is never a message)."""
        entries = await self.files.list(
            caller(),
            request.system_name,
            request.path,
            show_hidden=request.show_hidden,
            numeric_ids=request.numeric_uid,
            recursive=request.recursive,
            dereference=request.dereference,
        )
        return _LISTING.two_forms(entries)

    async def Stat(self, request: pb.StatRequest, context: grpc.aio.ServicerContext) -> pb.StatResponse:
        st = await self.files.stat(caller(), request.system_name, request.path, request.dereference)
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
        digest = await self.files.checksum(caller(), request.system_name, request.path)
        return pb.GetChecksumResponse(output=pb.FileChecksum(algorithm="SHA256", checksum=digest))

    async def GetFileType(
        self, request: pb.GetFileTypeRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetFileTypeResponse:
        return pb.GetFileTypeResponse(output=await self.files.file_type(caller(), request.system_name, request.path))

    # ---- reading -----------------------------------------------------------------------------
    async def Head(self, request: pb.HeadRequest, context: grpc.aio.ServicerContext) -> pb.HeadResponse:
        out, part = await self.files.head(
            caller(), request.system_name, request.path, *_counts(request), request.skip_trailing
        )
        return pb.HeadResponse(
            output=pb.FileContent(
                content=_text(out),
                content_type=part.unit,
                start_position=0,
                end_position=-part.n if part.skip else part.n,
            )
        )

    async def Tail(self, request: pb.TailRequest, context: grpc.aio.ServicerContext) -> pb.TailResponse:
        out, part = await self.files.tail(
            caller(), request.system_name, request.path, *_counts(request), request.skip_heading
        )
        return pb.TailResponse(
            output=pb.FileContent(
                content=_text(out),
                content_type=part.unit,
                start_position=part.n if part.skip else -part.n,
                end_position=-1,
            )
        )

    async def View(self, request: pb.ViewRequest, context: grpc.aio.ServicerContext) -> pb.ViewResponse:
        out = await self.files.view(
            caller(),
            request.system_name,
            request.path,
            request.size if request.HasField("size") else None,
            request.offset if request.HasField("offset") else None,
        )
        return pb.ViewResponse(output=_text(out))

    async def Download(
        self, request: pb.DownloadRequest, context: grpc.aio.ServicerContext
    ) -> httpbody_pb2.HttpBody:
        data = await self.files.download(caller(), request.system_name, request.path)
        return httpbody_pb2.HttpBody(content_type=OCTET_STREAM, data=data)

    # ---- changing ----------------------------------------------------------------------------
    async def Mkdir(self, request: pb.MkdirRequest, context: grpc.aio.ServicerContext) -> pb.MkdirResponse:
        entry = await self.files.mkdir(caller(), request.system_name, request.source_path, request.parent)
        return pb.MkdirResponse(output=_file(entry))

    async def Symlink(
        self, request: pb.SymlinkRequest, context: grpc.aio.ServicerContext
    ) -> pb.SymlinkResponse:
        entry = await self.files.symlink(caller(), request.system_name, request.source_path, request.link_path)
        return pb.SymlinkResponse(output=_file(entry))

    async def Chmod(self, request: pb.ChmodRequest, context: grpc.aio.ServicerContext) -> pb.ChmodResponse:
        entry = await self.files.chmod(caller(), request.system_name, request.source_path, request.mode)
        return pb.ChmodResponse(output=_file(entry))

    async def Chown(self, request: pb.ChownRequest, context: grpc.aio.ServicerContext) -> pb.ChownResponse:
        entry = await self.files.chown(
            caller(), request.system_name, request.source_path, request.owner, request.group
        )
        return pb.ChownResponse(output=_file(entry))

    async def Remove(self, request: pb.RemoveRequest, context: grpc.aio.ServicerContext) -> pb.RemoveResponse:
        await self.files.remove(caller(), request.system_name, request.path)
        return pb.RemoveResponse()

    async def Compress(
        self, request: pb.CompressRequest, context: grpc.aio.ServicerContext
    ) -> pb.CompressResponse:
        await self.files.compress(
            caller(),
            request.system_name,
            request.source_path,
            request.target_path,
            request.compression,
            request.dereference,
            request.match_pattern,
        )
        return pb.CompressResponse()

    async def Extract(
        self, request: pb.ExtractRequest, context: grpc.aio.ServicerContext
    ) -> pb.ExtractResponse:
        await self.files.extract(
            caller(), request.system_name, request.source_path, request.target_path, request.compression
        )
        return pb.ExtractResponse()

    async def Upload(self, request: pb.UploadRequest, context: grpc.aio.ServicerContext) -> pb.UploadResponse:
        """`path` is the target directory and the form's file name the new file's name (as
        FirecREST); without a file name in the form, `path` is the file to write."""
        self.files.path(request.system_name, request.path)  # a wrong path is refused before the body is read
        limit = self.files.max_file_size(request.system_name)
        if len(request.body.data) > limit + FORM_OVERHEAD:
            raise paths.too_large(len(request.body.data), limit, "upload")
        form = parse_upload_form(request.body.content_type, request.body.data)
        await self.files.upload(caller(), request.system_name, request.path, form.filename, form.content)
        return pb.UploadResponse()


def _counts(request: pb.HeadRequest | pb.TailRequest) -> tuple[float | None, float | None]:
    """The lines and bytes a head or tail request gives (both optional)."""
    return (
        request.lines if request.HasField("lines") else None,
        request.bytes if request.HasField("bytes") else None,
    )
