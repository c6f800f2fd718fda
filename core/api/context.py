"""The call's identity and the mapping of domain errors to gRPC statuses (with ErrorInfo)."""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import CoroutineType
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from core.api.restjson import HTTP_BODY, REST_HEADER, TwoForms, http_body
from core.domain.errors import GatewayError, InvalidArgument, NotImplementedYet, Reason, Unauthenticated
from core.observability import REQUEST_ID_HEADER, Metrics, call_user, request_id

log = logging.getLogger("core.api")

ERROR_DOMAIN = "firecrest.gateway"
SUCCESS_HEADER = "x-f7t-http-status"
REASON_HEADER = "x-f7t-reason"
USER_HEADER = "x-f7t-caller"  # the caller, for the edge's FirecREST-shaped error body ("user")

_caller: contextvars.ContextVar[str | None] = contextvars.ContextVar("f7t_caller", default=None)
# a POSIX user name, whole (fullmatch: `$` alone would let a trailing newline through)
_USERNAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")

GRPC_CODE: Mapping[Reason, grpc.StatusCode] = {
    Reason.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Reason.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    Reason.SYSTEM_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Reason.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Reason.PAYLOAD_TOO_LARGE: grpc.StatusCode.OUT_OF_RANGE,
    Reason.TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    Reason.BACKEND_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Reason.SCHEDULER_ERROR: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    Reason.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    Reason.NOT_IMPLEMENTED: grpc.StatusCode.UNIMPLEMENTED,
    Reason.INTERNAL: grpc.StatusCode.INTERNAL,
}


class _Malformed:
    """Stands in for a request that could not be deserialised (Envoy's transcoder can forward a
    corrupt message for some ill-typed JSON, e.g. an object where a map wants a string)."""

    def __init__(self, error: Exception):
        self.error = error


def _safe(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    def deserialize(data: bytes) -> Any:
        if deserializer is None:
            return data
        try:
            return deserializer(data)
        except Exception as e:  # DecodeError and friends: the caller's fault, not ours
            return _Malformed(e)

    return deserialize


# per method, the last response object and its REST body: a servicer that answers with the same
# (cached, unchanged) message again, such as ListSystems between probes, is not rendered again
_last_body: dict[str, tuple[Any, bytes]] = {}


def _rest_body(method: str, resp: Any) -> bytes:
    """A response for an HTTP/JSON caller, serialised: FirecREST's JSON in an HttpBody."""
    last = _last_body.get(method)
    if last is not None and last[0] is resp:
        return last[1]
    if resp.DESCRIPTOR.full_name == HTTP_BODY:
        return bytes(resp.SerializeToString())
    body = http_body(resp)
    if len(body) <= 65536:  # kept only while small: a big listing must not stay in memory
        _last_body[method] = (resp, body)
    else:
        _last_body.pop(method, None)
    return body


def _check_request(request: Any) -> None:
    if isinstance(request, _Malformed):
        raise InvalidArgument(f"malformed request: the body does not match the API's types ({request.error})")
    fields = getattr(getattr(request, "DESCRIPTOR", None), "fields_by_name", {})
    # FirecREST v2 takes `path` for `sourcePath` in its filesystem bodies (pyfirecrest sends it): the
    # contract has both (storage.proto), the servicers read source_path
    if "source_path" in fields and "path" in fields and not request.source_path and request.path:
        request.source_path = request.path


def _status_of(exc: BaseException, context: grpc.aio.ServicerContext) -> str:
    """A failed call's status for the metrics: the code it was aborted with, else CANCELLED (the
    caller went away, or worse)."""
    return _code_name(context.code()) if isinstance(exc, grpc.aio.AbortError) else "CANCELLED"


def _code_name(code: Any) -> str:
    """A status code's name, whether grpc gives a StatusCode or its number."""
    if isinstance(code, grpc.StatusCode):
        return code.name
    for c in grpc.StatusCode:
        if c.value[0] == code:
            return c.name
    return "UNKNOWN"


def caller() -> str:
    """The authenticated caller's username (set by the interceptor from Envoy's claim header)."""
    user = _caller.get()
    if not user:
        raise Unauthenticated("no authenticated user on this call")
    return user


# An error's message and metadata travel in HTTP/2 headers (grpc-message, grpc-status-details-bin):
# a command's whole stderr there (rm -r of a big tree) overflows the proxy's header limits and the
# caller gets a 502 instead of the error. Beyond this many characters they are cut.
MAX_ERROR_TEXT = 2000


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + " ... (truncated)"


def status_trailer(err: GatewayError) -> tuple[grpc.StatusCode, tuple[tuple[str, bytes | str], ...]]:
    code = GRPC_CODE.get(err.reason, grpc.StatusCode.INTERNAL)
    metadata = {k: _clip(v) for k, v in err.metadata.items()}
    info = error_details_pb2.ErrorInfo(reason=err.reason.value, domain=ERROR_DOMAIN, metadata=metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    st = status_pb2.Status(code=code.value[0], message=_clip(err.message), details=[detail])
    # the reason also travels as plain metadata, so the edge can shape HTTP errors without protobuf
    return code, (("grpc-status-details-bin", st.SerializeToString()), (REASON_HEADER, err.reason.value))


class GatewayInterceptor:
    """For every call: take the identity Envoy put in the header (and nothing else), turn domain
    errors into statuses with ErrorInfo, hide unexpected errors behind a reference id, and tell the
    edge which HTTP success code the method has. Not a grpc.aio server interceptor (that would run
    for every call): it wraps each method's handler once, as WrappingServer registers it."""

    def __init__(
        self,
        identity_header: str,
        success_codes: Mapping[str, int],
        public_methods: frozenset[str],
        forbidden_users: frozenset[str] = frozenset({"root"}),
        metrics: Metrics | None = None,
    ):
        self.metrics = metrics
        self.identity_header = identity_header
        self.success_codes = success_codes
        self.public = public_methods
        self.forbidden = forbidden_users
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}
        self._observers: dict[str, Callable[[str, float], None]] = {}

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        """The method's handler with the gateway's work around each call; built once per method
        (and handler): what differs between calls (the identity, the request id, REST or native)
        is read from the call's own metadata."""
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if method.startswith(("/grpc.health.", "/grpc.reflection.")):
            return handler
        public = method in self.public
        code = self.success_codes.get(method, 200)
        header = self.identity_header
        native = handler.response_serializer

        def serialize(resp: Any) -> bytes:
            # an HTTP/JSON call's answer is FirecREST's JSON in an HttpBody, already serialised
            # (core/api/restjson.py); a native call's is the method's message
            return resp if type(resp) is bytes else native(resp)  # exactly bytes: an HttpBody

        def identity(context: grpc.aio.ServicerContext) -> tuple[str | None, str, bool]:
            md = call_metadata(context)
            # Envoy's request id (a native caller without Envoy gets one of ours)
            return md.get(header), str(md.get(REQUEST_ID_HEADER) or uuid.uuid4()), md.get(REST_HEADER) == "1"

        admit = self._admission(public)
        observe = self._observer(method)
        not_implemented = f"{method.rsplit('/', 1)[-1]} is not implemented yet"
        perf_counter = time.perf_counter

        def unary_response(inner: Callable[..., Any]) -> Callable[..., Any]:
            async def respond(request: Any, context: grpc.aio.ServicerContext) -> Any:
                # what _observed and the handler's call do, inline and without a coroutine of their
                # own: this path runs for every unary call (a metadata call's whole work in the core
                # is a few microseconds, so each awaited helper showed in the throughput)
                t0 = perf_counter()
                user, rid, rest = identity(context)
                t_rid = request_id.set(rid)
                t_user = call_user.set(user or "-")
                status = "OK"
                try:
                    try:
                        admit(user)
                        _check_request(request)
                        resp = inner(request, context)
                        if type(resp) is CoroutineType or inspect.isawaitable(resp):
                            resp = await resp
                        # here, so that a failure is an error like any other
                        if type(resp) is TwoForms:  # built in the one form this caller wants
                            resp = resp.http_body() if rest else resp.message()
                        elif rest:
                            resp = _rest_body(method, resp)
                    except GatewayError as e:
                        await self._abort(context, e, method)
                    except NotImplementedError:  # the generated base class's answer
                        await self._abort(context, NotImplementedYet(not_implemented), method)
                    except Exception as e:
                        await self._internal(context, e, method)
                    if code != 200:
                        await context.send_initial_metadata(((SUCCESS_HEADER, str(code)),))
                    return resp
                except BaseException as e:
                    status = _status_of(e, context)
                    raise
                finally:
                    observe(status, perf_counter() - t0)
                    request_id.reset(t_rid)
                    call_user.reset(t_user)

            return respond

        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                unary_response(handler.unary_unary), _safe(handler.request_deserializer), serialize
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                unary_response(handler.stream_unary), handler.request_deserializer, serialize
            )
        if handler.unary_stream:
            inner_us = handler.unary_stream

            async def us(request: Any, context: grpc.aio.ServicerContext) -> Any:
                user, rid, _ = identity(context)
                with self._observed(method, rid, user, context):
                    try:
                        admit(user)
                        _check_request(request)
                        async for item in inner_us(request, context):
                            yield item
                    except GatewayError as e:
                        await self._abort(context, e, method)
                    except Exception as e:
                        await self._internal(context, e, method)

            return grpc.unary_stream_rpc_method_handler(
                us, _safe(handler.request_deserializer), handler.response_serializer
            )
        return handler

    @contextlib.contextmanager
    def _observed(
        self, method: str, rid: str, user: str | None, context: grpc.aio.ServicerContext
    ) -> Iterator[None]:
        """The call's request id and user for its log lines; its count and duration by status code."""
        t0 = time.perf_counter()
        tokens = (request_id.set(rid), call_user.set(user or "-"))
        status = "OK"
        try:
            yield
        except BaseException as e:
            status = _status_of(e, context)
            raise
        finally:
            self._done(method, status, t0, tokens)

    def _done(self, method: str, status: str, t0: float, tokens: tuple[Any, Any]) -> None:
        self._observer(method)(status, time.perf_counter() - t0)
        request_id.reset(tokens[0])
        call_user.reset(tokens[1])

    def _admission(self, public: bool) -> Callable[[str | None], None]:
        """The check of a call's user (Envoy's claim header): a POSIX name that is not forbidden,
        or none at all for a public method. It raises Unauthenticated, else sets the caller."""
        forbidden = self.forbidden
        valid = _USERNAME.fullmatch

        def admit(user: str | None) -> None:
            if user is None:
                if not public:
                    raise Unauthenticated("missing or invalid access token")
            elif user in forbidden or not valid(user):
                raise Unauthenticated(f"the token's user name {user!r} is not allowed")
            _caller.set(user)

        return admit

    def _observer(self, method: str) -> Callable[[str, float], None]:
        """The method's count and duration by status code, for the metrics."""
        observe = self._observers.get(method)
        if observe is None:
            observe = self._observers[method] = (
                self.metrics.rpc_observer(method) if self.metrics is not None else lambda status, seconds: None
            )
        return observe

    async def _abort(self, context: grpc.aio.ServicerContext, err: GatewayError, method: str) -> None:
        code, trailer = status_trailer(err)
        user = _caller.get()
        if user:
            trailer = (*trailer, (USER_HEADER, user))
        if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE):
            log.warning("%s: %s: %s", method, err.reason.value, err.message)
        await context.abort(code, _clip(err.message), trailing_metadata=trailer)

    async def _internal(self, context: grpc.aio.ServicerContext, exc: Exception, method: str) -> None:
        if isinstance(exc, grpc.aio.AbortError):
            raise exc
        ref = uuid.uuid4().hex[:12]
        log.exception("%s failed unexpectedly (ref %s)", method, ref)
        await self._abort(context, GatewayError(f"internal error (reference {ref})"), method)


# the call's metadata as grpc.aio built it to look its handler up (_Methods.service): the wrapper
# reads the identity from it rather than building the same tuple again (invocation_metadata)
_call_metadata: contextvars.ContextVar[tuple[Any, ...] | None] = contextvars.ContextVar("f7t_md", default=None)


def call_metadata(context: grpc.aio.ServicerContext) -> dict[str, Any]:
    """The call's metadata as a dict (the tuple grpc.aio built for the handler lookup, when it did)."""
    return dict(_call_metadata.get() or context.invocation_metadata() or ())


class _Methods(grpc.GenericRpcHandler):
    """The gateway's wrapped methods by full name: the one handler lookup of every call. Not
    grpc.aio's registered methods (add_registered_method_handlers): with them a metadata call
    cost the core about 15% more CPU (bench.noop's chain, same load); here the lookup is one dict
    get, and the metadata grpc.aio hands to it is kept for the call's wrapper."""

    def __init__(self) -> None:
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        _call_metadata.set(handler_call_details.invocation_metadata)  # the call's own task and context
        return self.handlers.get(handler_call_details.method)


class _WrappedGeneric(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler, wrap: Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler]):
        self._inner = inner
        self._wrap = wrap

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        handler = self._inner.service(handler_call_details)
        if handler is None:
            return None
        _call_metadata.set(handler_call_details.invocation_metadata)
        return self._wrap(handler_call_details.method, handler)


class WrappingServer:
    """The server as the generated add_*Servicer_to_server functions see it: every method handler
    they register is wrapped by the interceptor (GatewayInterceptor.wrap), once, here. A server
    interceptor would instead run for every call (a coroutine that looks the handler up and builds
    its wrapper each time: a sixth of the core's time for a task GET). The methods the generated
    code registers by name are served from one generic handler (_Methods), ahead of the generic
    handlers it also adds (which then answer only what was not registered by name)."""

    def __init__(self, server: grpc.aio.Server, interceptor: GatewayInterceptor):
        self._server = server
        self._wrap = interceptor.wrap
        self._methods = _Methods()
        server.add_generic_rpc_handlers((self._methods,))

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_WrappedGeneric(h, self._wrap) for h in handlers))

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]) -> None:
        self._methods.handlers.update({f"/{service}/{name}": self._wrap(f"/{service}/{name}", h) for name, h in handlers.items()})
