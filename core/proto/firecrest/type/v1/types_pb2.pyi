from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    UNAUTHENTICATED: _ClassVar[ErrorReason]
    PERMISSION_DENIED: _ClassVar[ErrorReason]
    SYSTEM_NOT_FOUND: _ClassVar[ErrorReason]
    NOT_FOUND: _ClassVar[ErrorReason]
    INVALID_ARGUMENT: _ClassVar[ErrorReason]
    PAYLOAD_TOO_LARGE: _ClassVar[ErrorReason]
    TIMEOUT: _ClassVar[ErrorReason]
    BACKEND_UNAVAILABLE: _ClassVar[ErrorReason]
    SCHEDULER_ERROR: _ClassVar[ErrorReason]
    ALREADY_EXISTS: _ClassVar[ErrorReason]
    FAILED_PRECONDITION: _ClassVar[ErrorReason]
    INTERNAL: _ClassVar[ErrorReason]
ERROR_REASON_UNSPECIFIED: ErrorReason
UNAUTHENTICATED: ErrorReason
PERMISSION_DENIED: ErrorReason
SYSTEM_NOT_FOUND: ErrorReason
NOT_FOUND: ErrorReason
INVALID_ARGUMENT: ErrorReason
PAYLOAD_TOO_LARGE: ErrorReason
TIMEOUT: ErrorReason
BACKEND_UNAVAILABLE: ErrorReason
SCHEDULER_ERROR: ErrorReason
ALREADY_EXISTS: ErrorReason
FAILED_PRECONDITION: ErrorReason
INTERNAL: ErrorReason
SUCCESS_CODE_FIELD_NUMBER: _ClassVar[int]
success_code: _descriptor.FieldDescriptor
PATTERN_FIELD_NUMBER: _ClassVar[int]
pattern: _descriptor.FieldDescriptor

class TransferJobLogs(_message.Message):
    __slots__ = ("output_log", "error_log")
    OUTPUT_LOG_FIELD_NUMBER: _ClassVar[int]
    ERROR_LOG_FIELD_NUMBER: _ClassVar[int]
    output_log: str
    error_log: str
    def __init__(self, output_log: _Optional[str] = ..., error_log: _Optional[str] = ...) -> None: ...

class TransferJob(_message.Message):
    __slots__ = ("job_id", "system", "working_directory", "logs")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIRECTORY_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    system: str
    working_directory: str
    logs: TransferJobLogs
    def __init__(self, job_id: _Optional[str] = ..., system: _Optional[str] = ..., working_directory: _Optional[str] = ..., logs: _Optional[_Union[TransferJobLogs, _Mapping]] = ...) -> None: ...
