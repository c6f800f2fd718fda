from core.proto.firecrest.type.v1 import types_pb2 as _types_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.api import httpbody_pb2 as _httpbody_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class File(_message.Message):
    __slots__ = ("name", "type", "link_target", "user", "group", "permissions", "last_modified", "size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    LINK_TARGET_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    LAST_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    link_target: str
    user: str
    group: str
    permissions: str
    last_modified: str
    size: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., link_target: _Optional[str] = ..., user: _Optional[str] = ..., group: _Optional[str] = ..., permissions: _Optional[str] = ..., last_modified: _Optional[str] = ..., size: _Optional[str] = ...) -> None: ...

class GetChecksumRequest(_message.Message):
    __slots__ = ("system_name", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class GetChecksumResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: FileChecksum
    def __init__(self, output: _Optional[_Union[FileChecksum, _Mapping]] = ...) -> None: ...

class FileChecksum(_message.Message):
    __slots__ = ("algorithm", "checksum")
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    algorithm: str
    checksum: str
    def __init__(self, algorithm: _Optional[str] = ..., checksum: _Optional[str] = ...) -> None: ...

class ChmodRequest(_message.Message):
    __slots__ = ("system_name", "source_path", "mode", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    source_path: str
    mode: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., source_path: _Optional[str] = ..., mode: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class ChmodResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: File
    def __init__(self, output: _Optional[_Union[File, _Mapping]] = ...) -> None: ...

class ChownRequest(_message.Message):
    __slots__ = ("system_name", "source_path", "owner", "group", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    source_path: str
    owner: str
    group: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., source_path: _Optional[str] = ..., owner: _Optional[str] = ..., group: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class ChownResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: File
    def __init__(self, output: _Optional[_Union[File, _Mapping]] = ...) -> None: ...

class CompressRequest(_message.Message):
    __slots__ = ("system_name", "source_path", "target_path", "match_pattern", "dereference", "compression", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    MATCH_PATTERN_FIELD_NUMBER: _ClassVar[int]
    DEREFERENCE_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    source_path: str
    target_path: str
    match_pattern: str
    dereference: bool
    compression: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., source_path: _Optional[str] = ..., target_path: _Optional[str] = ..., match_pattern: _Optional[str] = ..., dereference: _Optional[bool] = ..., compression: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class CompressResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExtractRequest(_message.Message):
    __slots__ = ("system_name", "source_path", "target_path", "compression", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    source_path: str
    target_path: str
    compression: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., source_path: _Optional[str] = ..., target_path: _Optional[str] = ..., compression: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class ExtractResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("system_name", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class UploadRequest(_message.Message):
    __slots__ = ("system_name", "path", "body")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    body: _httpbody_pb2.HttpBody
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., body: _Optional[_Union[_httpbody_pb2.HttpBody, _Mapping]] = ...) -> None: ...

class UploadResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetFileTypeRequest(_message.Message):
    __slots__ = ("system_name", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class GetFileTypeResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: str
    def __init__(self, output: _Optional[str] = ...) -> None: ...

class HeadRequest(_message.Message):
    __slots__ = ("system_name", "path", "bytes", "lines", "skip_trailing")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    SKIP_TRAILING_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    bytes: float
    lines: int
    skip_trailing: bool
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., bytes: _Optional[float] = ..., lines: _Optional[int] = ..., skip_trailing: _Optional[bool] = ...) -> None: ...

class HeadResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: FileContent
    def __init__(self, output: _Optional[_Union[FileContent, _Mapping]] = ...) -> None: ...

class TailRequest(_message.Message):
    __slots__ = ("system_name", "path", "bytes", "lines", "skip_heading")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    SKIP_HEADING_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    bytes: float
    lines: int
    skip_heading: bool
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., bytes: _Optional[float] = ..., lines: _Optional[int] = ..., skip_heading: _Optional[bool] = ...) -> None: ...

class TailResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: FileContent
    def __init__(self, output: _Optional[_Union[FileContent, _Mapping]] = ...) -> None: ...

class FileContent(_message.Message):
    __slots__ = ("content", "content_type", "start_position", "end_position")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    START_POSITION_FIELD_NUMBER: _ClassVar[int]
    END_POSITION_FIELD_NUMBER: _ClassVar[int]
    content: str
    content_type: str
    start_position: float
    end_position: float
    def __init__(self, content: _Optional[str] = ..., content_type: _Optional[str] = ..., start_position: _Optional[float] = ..., end_position: _Optional[float] = ...) -> None: ...

class ListDirectoryRequest(_message.Message):
    __slots__ = ("system_name", "path", "show_hidden", "numeric_uid", "recursive", "dereference")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHOW_HIDDEN_FIELD_NUMBER: _ClassVar[int]
    NUMERIC_UID_FIELD_NUMBER: _ClassVar[int]
    RECURSIVE_FIELD_NUMBER: _ClassVar[int]
    DEREFERENCE_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    show_hidden: bool
    numeric_uid: bool
    recursive: bool
    dereference: bool
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., show_hidden: _Optional[bool] = ..., numeric_uid: _Optional[bool] = ..., recursive: _Optional[bool] = ..., dereference: _Optional[bool] = ...) -> None: ...

class ListDirectoryResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: _containers.RepeatedCompositeFieldContainer[File]
    def __init__(self, output: _Optional[_Iterable[_Union[File, _Mapping]]] = ...) -> None: ...

class MkdirRequest(_message.Message):
    __slots__ = ("system_name", "source_path", "parent", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    source_path: str
    parent: bool
    path: str
    def __init__(self, system_name: _Optional[str] = ..., source_path: _Optional[str] = ..., parent: _Optional[bool] = ..., path: _Optional[str] = ...) -> None: ...

class MkdirResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: File
    def __init__(self, output: _Optional[_Union[File, _Mapping]] = ...) -> None: ...

class SymlinkRequest(_message.Message):
    __slots__ = ("system_name", "source_path", "link_path", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    LINK_PATH_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    source_path: str
    link_path: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., source_path: _Optional[str] = ..., link_path: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class SymlinkResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: File
    def __init__(self, output: _Optional[_Union[File, _Mapping]] = ...) -> None: ...

class RemoveRequest(_message.Message):
    __slots__ = ("system_name", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class RemoveResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatRequest(_message.Message):
    __slots__ = ("system_name", "path", "dereference")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DEREFERENCE_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    dereference: bool
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., dereference: _Optional[bool] = ...) -> None: ...

class StatResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: FileStat
    def __init__(self, output: _Optional[_Union[FileStat, _Mapping]] = ...) -> None: ...

class FileStat(_message.Message):
    __slots__ = ("mode", "ino", "dev", "nlink", "uid", "gid", "size", "atime", "mtime", "ctime")
    MODE_FIELD_NUMBER: _ClassVar[int]
    INO_FIELD_NUMBER: _ClassVar[int]
    DEV_FIELD_NUMBER: _ClassVar[int]
    NLINK_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    ATIME_FIELD_NUMBER: _ClassVar[int]
    MTIME_FIELD_NUMBER: _ClassVar[int]
    CTIME_FIELD_NUMBER: _ClassVar[int]
    mode: int
    ino: float
    dev: float
    nlink: int
    uid: int
    gid: int
    size: float
    atime: int
    mtime: int
    ctime: int
    def __init__(self, mode: _Optional[int] = ..., ino: _Optional[float] = ..., dev: _Optional[float] = ..., nlink: _Optional[int] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., size: _Optional[float] = ..., atime: _Optional[int] = ..., mtime: _Optional[int] = ..., ctime: _Optional[int] = ...) -> None: ...

class ViewRequest(_message.Message):
    __slots__ = ("system_name", "path", "size", "offset")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    size: float
    offset: float
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., size: _Optional[float] = ..., offset: _Optional[float] = ...) -> None: ...

class ViewResponse(_message.Message):
    __slots__ = ("output",)
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    output: str
    def __init__(self, output: _Optional[str] = ...) -> None: ...

class TransferCompressRequest(_message.Message):
    __slots__ = ("system_name", "account", "source_path", "target_path", "match_pattern", "dereference", "compression", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    MATCH_PATTERN_FIELD_NUMBER: _ClassVar[int]
    DEREFERENCE_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    account: str
    source_path: str
    target_path: str
    match_pattern: str
    dereference: bool
    compression: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., account: _Optional[str] = ..., source_path: _Optional[str] = ..., target_path: _Optional[str] = ..., match_pattern: _Optional[str] = ..., dereference: _Optional[bool] = ..., compression: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class TransferCompressResponse(_message.Message):
    __slots__ = ("transfer_job",)
    TRANSFER_JOB_FIELD_NUMBER: _ClassVar[int]
    transfer_job: _types_pb2.TransferJob
    def __init__(self, transfer_job: _Optional[_Union[_types_pb2.TransferJob, _Mapping]] = ...) -> None: ...

class TransferCopyRequest(_message.Message):
    __slots__ = ("system_name", "account", "source_path", "target_path", "dereference", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    DEREFERENCE_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    account: str
    source_path: str
    target_path: str
    dereference: bool
    path: str
    def __init__(self, system_name: _Optional[str] = ..., account: _Optional[str] = ..., source_path: _Optional[str] = ..., target_path: _Optional[str] = ..., dereference: _Optional[bool] = ..., path: _Optional[str] = ...) -> None: ...

class TransferCopyResponse(_message.Message):
    __slots__ = ("transfer_job",)
    TRANSFER_JOB_FIELD_NUMBER: _ClassVar[int]
    transfer_job: _types_pb2.TransferJob
    def __init__(self, transfer_job: _Optional[_Union[_types_pb2.TransferJob, _Mapping]] = ...) -> None: ...

class TransferExtractRequest(_message.Message):
    __slots__ = ("system_name", "account", "source_path", "target_path", "compression", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    account: str
    source_path: str
    target_path: str
    compression: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., account: _Optional[str] = ..., source_path: _Optional[str] = ..., target_path: _Optional[str] = ..., compression: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class TransferExtractResponse(_message.Message):
    __slots__ = ("transfer_job",)
    TRANSFER_JOB_FIELD_NUMBER: _ClassVar[int]
    transfer_job: _types_pb2.TransferJob
    def __init__(self, transfer_job: _Optional[_Union[_types_pb2.TransferJob, _Mapping]] = ...) -> None: ...

class TransferMoveRequest(_message.Message):
    __slots__ = ("system_name", "account", "source_path", "target_path", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    TARGET_PATH_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    account: str
    source_path: str
    target_path: str
    path: str
    def __init__(self, system_name: _Optional[str] = ..., account: _Optional[str] = ..., source_path: _Optional[str] = ..., target_path: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class TransferMoveResponse(_message.Message):
    __slots__ = ("transfer_job",)
    TRANSFER_JOB_FIELD_NUMBER: _ClassVar[int]
    transfer_job: _types_pb2.TransferJob
    def __init__(self, transfer_job: _Optional[_Union[_types_pb2.TransferJob, _Mapping]] = ...) -> None: ...

class TransferRemoveRequest(_message.Message):
    __slots__ = ("system_name", "path", "account")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    path: str
    account: str
    def __init__(self, system_name: _Optional[str] = ..., path: _Optional[str] = ..., account: _Optional[str] = ...) -> None: ...

class TransferRemoveResponse(_message.Message):
    __slots__ = ("transfer_job",)
    TRANSFER_JOB_FIELD_NUMBER: _ClassVar[int]
    transfer_job: _types_pb2.TransferJob
    def __init__(self, transfer_job: _Optional[_Union[_types_pb2.TransferJob, _Mapping]] = ...) -> None: ...

class TransferDownloadRequest(_message.Message):
    __slots__ = ("system_name", "account", "source_path", "transfer_directives", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_DIRECTIVES_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    account: str
    source_path: str
    transfer_directives: TransferDirectives
    path: str
    def __init__(self, system_name: _Optional[str] = ..., account: _Optional[str] = ..., source_path: _Optional[str] = ..., transfer_directives: _Optional[_Union[TransferDirectives, _Mapping]] = ..., path: _Optional[str] = ...) -> None: ...

class TransferDownloadResponse(_message.Message):
    __slots__ = ("transfer_directives", "transfer_job")
    TRANSFER_DIRECTIVES_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_JOB_FIELD_NUMBER: _ClassVar[int]
    transfer_directives: TransferDirectivesResult
    transfer_job: _types_pb2.TransferJob
    def __init__(self, transfer_directives: _Optional[_Union[TransferDirectivesResult, _Mapping]] = ..., transfer_job: _Optional[_Union[_types_pb2.TransferJob, _Mapping]] = ...) -> None: ...

class TransferUploadRequest(_message.Message):
    __slots__ = ("system_name", "account", "source_path", "transfer_directives", "path")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_PATH_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_DIRECTIVES_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    account: str
    source_path: str
    transfer_directives: TransferDirectives
    path: str
    def __init__(self, system_name: _Optional[str] = ..., account: _Optional[str] = ..., source_path: _Optional[str] = ..., transfer_directives: _Optional[_Union[TransferDirectives, _Mapping]] = ..., path: _Optional[str] = ...) -> None: ...

class TransferUploadResponse(_message.Message):
    __slots__ = ("transfer_directives", "transfer_job")
    TRANSFER_DIRECTIVES_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_JOB_FIELD_NUMBER: _ClassVar[int]
    transfer_directives: TransferDirectivesResult
    transfer_job: _types_pb2.TransferJob
    def __init__(self, transfer_directives: _Optional[_Union[TransferDirectivesResult, _Mapping]] = ..., transfer_job: _Optional[_Union[_types_pb2.TransferJob, _Mapping]] = ...) -> None: ...

class TransferDirectives(_message.Message):
    __slots__ = ("transfer_method", "file_size", "wormhole_code")
    TRANSFER_METHOD_FIELD_NUMBER: _ClassVar[int]
    FILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    WORMHOLE_CODE_FIELD_NUMBER: _ClassVar[int]
    transfer_method: str
    file_size: float
    wormhole_code: str
    def __init__(self, transfer_method: _Optional[str] = ..., file_size: _Optional[float] = ..., wormhole_code: _Optional[str] = ...) -> None: ...

class TransferDirectivesResult(_message.Message):
    __slots__ = ("transfer_method", "download_url", "parts_upload_urls", "complete_upload_url", "max_part_size", "coordinates", "wormhole_code")
    TRANSFER_METHOD_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_URL_FIELD_NUMBER: _ClassVar[int]
    PARTS_UPLOAD_URLS_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_UPLOAD_URL_FIELD_NUMBER: _ClassVar[int]
    MAX_PART_SIZE_FIELD_NUMBER: _ClassVar[int]
    COORDINATES_FIELD_NUMBER: _ClassVar[int]
    WORMHOLE_CODE_FIELD_NUMBER: _ClassVar[int]
    transfer_method: str
    download_url: str
    parts_upload_urls: _containers.RepeatedScalarFieldContainer[str]
    complete_upload_url: str
    max_part_size: float
    coordinates: str
    wormhole_code: str
    def __init__(self, transfer_method: _Optional[str] = ..., download_url: _Optional[str] = ..., parts_upload_urls: _Optional[_Iterable[str]] = ..., complete_upload_url: _Optional[str] = ..., max_part_size: _Optional[float] = ..., coordinates: _Optional[str] = ..., wormhole_code: _Optional[str] = ...) -> None: ...
