import datetime

from core.proto.firecrest.type.v1 import types_pb2 as _types_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IssueCertificateRequest(_message.Message):
    __slots__ = ("system_name", "public_key")
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    public_key: str
    def __init__(self, system_name: _Optional[str] = ..., public_key: _Optional[str] = ...) -> None: ...

class IssueCertificateResponse(_message.Message):
    __slots__ = ("certificate", "public_key", "private_key", "principal", "valid_after", "valid_before")
    CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    VALID_AFTER_FIELD_NUMBER: _ClassVar[int]
    VALID_BEFORE_FIELD_NUMBER: _ClassVar[int]
    certificate: str
    public_key: str
    private_key: str
    principal: str
    valid_after: _timestamp_pb2.Timestamp
    valid_before: _timestamp_pb2.Timestamp
    def __init__(self, certificate: _Optional[str] = ..., public_key: _Optional[str] = ..., private_key: _Optional[str] = ..., principal: _Optional[str] = ..., valid_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetCertificateAuthorityRequest(_message.Message):
    __slots__ = ("system_name",)
    SYSTEM_NAME_FIELD_NUMBER: _ClassVar[int]
    system_name: str
    def __init__(self, system_name: _Optional[str] = ...) -> None: ...

class GetCertificateAuthorityResponse(_message.Message):
    __slots__ = ("public_key",)
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    public_key: str
    def __init__(self, public_key: _Optional[str] = ...) -> None: ...
