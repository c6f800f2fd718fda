"""Errors the domain raises. Each carries a reason from a fixed, documented set (the ErrorInfo
reason a native gRPC client can switch on) and a message a person can act on. The API layer maps
them to gRPC codes (and Envoy to HTTP statuses); nothing here knows about either."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    SYSTEM_NOT_FOUND = "SYSTEM_NOT_FOUND"
    NOT_FOUND = "NOT_FOUND"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    TIMEOUT = "TIMEOUT"
    BACKEND_UNAVAILABLE = "BACKEND_UNAVAILABLE"
    SCHEDULER_ERROR = "SCHEDULER_ERROR"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    NOT_IMPLEMENTED = "NOT_IMPLEMENTED"
    INTERNAL = "INTERNAL"


class GatewayError(Exception):
    reason: Reason = Reason.INTERNAL

    def __init__(self, message: str, *, reason: Reason | None = None, metadata: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.metadata = metadata or {}


class Unauthenticated(GatewayError):
    reason = Reason.UNAUTHENTICATED


class PermissionDenied(GatewayError):
    reason = Reason.PERMISSION_DENIED


class NotFound(GatewayError):
    reason = Reason.NOT_FOUND


class SystemNotFound(NotFound):
    reason = Reason.SYSTEM_NOT_FOUND


class InvalidArgument(GatewayError):
    reason = Reason.INVALID_ARGUMENT


class PayloadTooLarge(GatewayError):
    reason = Reason.PAYLOAD_TOO_LARGE


class Timeout(GatewayError):
    reason = Reason.TIMEOUT


class BackendUnavailable(GatewayError):
    reason = Reason.BACKEND_UNAVAILABLE


class SchedulerError(GatewayError):
    reason = Reason.SCHEDULER_ERROR


class AlreadyExists(GatewayError):
    reason = Reason.ALREADY_EXISTS


class FailedPrecondition(GatewayError):
    reason = Reason.FAILED_PRECONDITION


class NotImplementedYet(GatewayError):
    reason = Reason.NOT_IMPLEMENTED
