"""The staged transfers of StorageService (/filesystem/{system_name}/transfer/*): proto in ->
validation (core.domain.paths, core.domain.transfers) -> TransferService (a Task, S3 staging, a
Slurm job as the caller) -> proto out.

Each answer carries the transfer job (jobId, system, workingDirectory, logs); the transfer's Task
id is the last component of workingDirectory (~/.firecrest/transfers/<task id>), so a client can
follow it with the Tasks API (GET /tasks/<id>, :wait, :cancel).
"""

from __future__ import annotations

import grpc

from core.api.context import caller
from core.domain import paths
from core.domain.errors import InvalidArgument
from core.domain.transfers import (
    Op,
    Started,
    TransferRequest,
    file_size_of,
    transfer_method,
)
from core.proto.firecrest.storage.v1 import storage_pb2 as pb
from core.proto.firecrest.type.v1 import types_pb2
from core.services.files import FileService
from core.services.transfers import TransferService


def _job(s: Started) -> types_pb2.TransferJob:
    j = s.job
    return types_pb2.TransferJob(
        job_id=j.job_id,
        system=j.system,
        working_directory=j.working_directory or j.directory,
        logs=types_pb2.TransferJobLogs(output_log=j.output_log, error_log=j.error_log),
    )


class TransferMixin:
    """Transfer* RPCs; mixed into StorageServicer (which sets self.files and self.transfers)."""

    files: FileService
    transfers: TransferService

    def _fs_path(self, system_name: str, value: str, field: str = "path") -> str:
        """The request's main path: absolute, and inside one of the system's file systems."""
        return self.files.path(system_name, value, field)

    async def _start(self, req: TransferRequest) -> Started:
        return await self.transfers.start(caller(), req)

    async def TransferUpload(
        self, request: pb.TransferUploadRequest, context: grpc.aio.ServicerContext
    ) -> pb.TransferUploadResponse:
        td = request.transfer_directives
        method = transfer_method(td.transfer_method)
        target = self._fs_path(request.system_name, request.source_path, "sourcePath")
        # the streamer needs no size (pyfirecrest sends it anyway); s3 plans its parts with it
        has_size = td.HasField("file_size")
        size = file_size_of(td.file_size if has_size else None) if has_size or method == "s3" else None
        s = await self._start(
            TransferRequest(
                Op.UPLOAD, request.system_name, request.account, target=target, file_size=size, method=method
            )
        )
        return pb.TransferUploadResponse(
            transfer_directives=pb.TransferDirectivesResult(
                transfer_method=method,
                parts_upload_urls=list(s.upload_urls),
                complete_upload_url=s.complete_url,
                max_part_size=s.part_size,
                coordinates=s.job.coordinates,
            ),
            transfer_job=_job(s),
        )

    async def TransferDownload(
        self, request: pb.TransferDownloadRequest, context: grpc.aio.ServicerContext
    ) -> pb.TransferDownloadResponse:
        method = transfer_method(request.transfer_directives.transfer_method)
        source = self._fs_path(request.system_name, request.source_path, "sourcePath")
        s = await self._start(
            TransferRequest(Op.DOWNLOAD, request.system_name, request.account, source=source, method=method)
        )
        return pb.TransferDownloadResponse(
            transfer_directives=pb.TransferDirectivesResult(
                transfer_method=method, download_url=s.download_url, coordinates=s.job.coordinates
            ),
            transfer_job=_job(s),
        )

    async def TransferCopy(
        self, request: pb.TransferCopyRequest, context: grpc.aio.ServicerContext
    ) -> pb.TransferCopyResponse:
        s = await self._start(
            TransferRequest(
                Op.COPY,
                request.system_name,
                request.account,
                source=self._fs_path(request.system_name, request.source_path, "sourcePath"),
                target=paths.require_path(request.target_path, "targetPath"),
                dereference=request.dereference,
            )
        )
        return pb.TransferCopyResponse(transfer_job=_job(s))

    async def TransferMove(
        self, request: pb.TransferMoveRequest, context: grpc.aio.ServicerContext
    ) -> pb.TransferMoveResponse:
        s = await self._start(
            TransferRequest(
                Op.MOVE,
                request.system_name,
                request.account,
                source=self._fs_path(request.system_name, request.source_path, "sourcePath"),
                target=paths.require_path(request.target_path, "targetPath"),
            )
        )
        return pb.TransferMoveResponse(transfer_job=_job(s))

    async def TransferRemove(
        self, request: pb.TransferRemoveRequest, context: grpc.aio.ServicerContext
    ) -> pb.TransferRemoveResponse:
        s = await self._start(
            TransferRequest(
                Op.REMOVE,
                request.system_name,
                request.account,
                source=paths.require_path(request.path, "path"),
            )
        )
        return pb.TransferRemoveResponse(transfer_job=_job(s))

    async def TransferCompress(
        self, request: pb.TransferCompressRequest, context: grpc.aio.ServicerContext
    ) -> pb.TransferCompressResponse:
        source = self._fs_path(request.system_name, request.source_path, "sourcePath")
        paths.split_for_archive(source)
        s = await self._start(
            TransferRequest(
                Op.COMPRESS,
                request.system_name,
                request.account,
                source=source,
                target=paths.require_path(request.target_path, "targetPath"),
                dereference=request.dereference,
                compression=paths.require_compression(request.compression),
                pattern=_pattern(request.match_pattern),
            )
        )
        return pb.TransferCompressResponse(transfer_job=_job(s))

    async def TransferExtract(
        self, request: pb.TransferExtractRequest, context: grpc.aio.ServicerContext
    ) -> pb.TransferExtractResponse:
        s = await self._start(
            TransferRequest(
                Op.EXTRACT,
                request.system_name,
                request.account,
                source=self._fs_path(request.system_name, request.source_path, "sourcePath"),
                target=paths.require_path(request.target_path, "targetPath"),
                compression=paths.require_compression(request.compression),
            )
        )
        return pb.TransferExtractResponse(transfer_job=_job(s))


def _pattern(value: str) -> str:
    if "\x00" in value or len(value) > 4096:
        raise InvalidArgument("matchPattern contains NUL or is too long", metadata={"field": "matchPattern"})
    return value
