"""REST responses written by the core, in FirecREST v2's JSON shape.

FirecREST v2 writes every field of its models, null when unknown; proto3's JSON mapping (what Envoy's
transcoder prints) leaves such a field out. So for a call that came in as HTTP/JSON (Envoy marks it
with REST_HEADER) the core answers a unary method with a `google.api.HttpBody` holding the JSON, and
the descriptor set Envoy is given declares those methods' output as HttpBody
(`edge.envoy_config.envoy_descriptor`), so the transcoder passes the body through untouched. Native
gRPC callers get the typed message, as the contract says.

The JSON is proto3's mapping with the transcoder's print options (JSON names, every field without
presence printed, enums by name, 64-bit integers as strings), plus, in FirecREST's packages, null for
a field with presence (`optional` scalars, singular messages) that is not set. Each message type gets
one generated function (compiled once), so rendering a 1,000-entry listing is a few milliseconds.
"""

from __future__ import annotations

import base64
import json
import keyword
import math
from collections.abc import Callable
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor

REST_HEADER = "x-f7t-rest"  # set by the edge on transcoded (HTTP/JSON) calls, stripped from callers
JSON_TYPE = "application/json"
HTTP_BODY = "google.api.HttpBody"

# the packages whose JSON is FirecREST v2's (Tasks and Certificate are ours: proto3 JSON as is)
FIRECREST_PACKAGES = ("firecrest.status.", "firecrest.compute.", "firecrest.storage.", "firecrest.type.")
# our additions for native callers (AIP-158 paging), `optional` so they are absent, not null, in REST JSON
NATIVE_ONLY_FIELDS = frozenset({"next_page_token"})

# well-known types rendered by json_format (the common ones have their own functions: _FAST_WELL_KNOWN)
_WELL_KNOWN = frozenset({"google.protobuf.FieldMask", "google.protobuf.Any", "google.protobuf.Empty"})
_WRAPPERS = frozenset({
    f"google.protobuf.{n}Value" for n in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool",
                                          "String", "Bytes")
})
_INT64 = frozenset({
    FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64,
})
_FLOATS = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})

Render = Callable[[Any], Any]
_renderers: dict[str, Render] = {}
_compiling: set[str] = set()


def rendered_by_core(server_streaming: bool, output_type: str) -> bool:
    """Whether a method's REST response is the core's JSON (HttpBody): every method with a unary
    response that is not already HttpBody (the type's full name, with or without its leading dot).
    Envoy's descriptor set (edge.envoy_config.envoy_descriptor) is rewritten by this rule."""
    return not server_streaming and output_type.lstrip(".") != HTTP_BODY


def null_when_unset(message: str, field: str, has_presence: bool) -> bool:
    """Whether an unset field is written as null: FirecREST v2 writes every field of its models, so
    in its packages a singular field with presence (an `optional` scalar, a message outside a
    oneof) is null when unset; our paging token for native callers stays absent. The OpenAPI
    document (edge.protogen) marks the same fields nullable."""
    return has_presence and message.lstrip(".").startswith(FIRECREST_PACKAGES) and field not in NATIVE_ONLY_FIELDS


def _number(v: float) -> Any:
    """A double as the transcoder prints it: integral values without a fraction, NaN/Infinity as strings."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    if v.is_integer() and abs(v) < 2**53:
        return int(v)
    return v


def _well_known(m: Any) -> Any:
    return json_format.MessageToDict(m)


def _struct(m: Any) -> Any:
    return {k: _struct_value(v) for k, v in m.fields.items()}


def _list_value(m: Any) -> Any:
    return [_struct_value(v) for v in m.values]


def _struct_value(v: Any) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        return v.string_value
    if kind == "number_value":
        return _number(v.number_value)
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        return _struct(v.struct_value)
    if kind == "list_value":
        return _list_value(v.list_value)
    return None  # null_value (or no kind at all)


def _timestamp(m: Any) -> Any:
    return m.ToJsonString()


# the well-known types met on every call, without json_format's generic walk (Any, FieldMask...: with it)
_FAST_WELL_KNOWN: dict[str, Render] = {
    "google.protobuf.Struct": _struct,
    "google.protobuf.ListValue": _list_value,
    "google.protobuf.Value": _struct_value,
    "google.protobuf.Timestamp": _timestamp,
    "google.protobuf.Duration": _timestamp,
}


def _bytes(v: bytes) -> str:
    return base64.b64encode(v).decode("ascii")


def renderer(desc: Descriptor) -> Render:
    """The function that turns a message of this type into its JSON value (dicts, lists, scalars)."""
    r = _renderers.get(desc.full_name)
    if r is None:
        if desc.full_name in _FAST_WELL_KNOWN:
            r = _FAST_WELL_KNOWN[desc.full_name]
        elif desc.full_name in _WELL_KNOWN:
            r = _well_known
        elif desc.full_name in _WRAPPERS:
            r = _wrapper(desc)
        else:
            _compiling.add(desc.full_name)
            try:
                r = _compile(desc)
            finally:
                _compiling.discard(desc.full_name)
        _renderers[desc.full_name] = r
    return r


def _wrapper(desc: Descriptor) -> Render:
    value = _compile(desc)
    return lambda m: value(m)["value"]


def _compile(desc: Descriptor) -> Render:
    """Generate `def render(m)` for one message type: a dict literal of the fields always printed,
    then the fields printed only when set (oneofs, presence outside FirecREST's packages)."""
    env: dict[str, Any] = {"_number": _number, "_bytes": _bytes}
    always: list[str] = []
    when_set: list[str] = []

    for i, fd in enumerate(desc.fields):
        attr = f"getattr(m, {fd.name!r})" if keyword.iskeyword(fd.name) else f"m.{fd.name}"
        key = json.dumps(fd.json_name)
        is_map = fd.message_type is not None and fd.message_type.GetOptions().map_entry
        if is_map:
            vfd = fd.message_type.fields_by_name["value"]
            item = _value(vfd, "v", env, f"_v{i}")
            expr = f"{{str(k): {item} for k, v in {attr}.items()}}"
            always.append(f"{key}: {expr}")
            continue
        if fd.is_repeated:
            item = _value(fd, "x", env, f"_v{i}")
            expr = f"[{item} for x in {attr}]"
            always.append(f"{key}: {expr}")
            continue
        value = _value(fd, attr, env, f"_v{i}")
        real_oneof = fd.containing_oneof is not None and not _synthetic(fd)
        if real_oneof:
            when_set.append(f"    if m.WhichOneof({fd.containing_oneof.name!r}) == {fd.name!r}:\n"
                            f"        d[{key}] = {value}")
        elif fd.has_presence:
            if null_when_unset(desc.full_name, fd.name, True):
                always.append(f"{key}: ({value}) if m.HasField({fd.name!r}) else None")
            else:
                when_set.append(f"    if m.HasField({fd.name!r}):\n        d[{key}] = {value}")
        else:
            always.append(f"{key}: {value}")
    src = ["def render(m):", "    d = {" + ", ".join(always) + "}", *when_set, "    return d"]
    exec("\n".join(src), env)  # noqa: S102 - source generated above from the descriptor only
    fn: Render = env["render"]
    return fn


def _synthetic(fd: FieldDescriptor) -> bool:
    """A proto3 `optional` field's one-member oneof (named _<field>)."""
    oneof = fd.containing_oneof
    return oneof is not None and len(oneof.fields) == 1 and oneof.name == f"_{fd.name}"


def _value(fd: FieldDescriptor, expr: str, env: dict[str, Any], name: str) -> str:
    """The expression that renders one value of field fd, given as `expr`."""
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        env[name] = _nested(fd.message_type)
        return f"{name}({expr})"
    if fd.type == FieldDescriptor.TYPE_ENUM:
        env[name] = {v.number: v.name for v in fd.enum_type.values}
        return f"{name}.get({expr}, {expr})"
    if fd.type in _FLOATS:
        return f"_number({expr})"
    if fd.type in _INT64:
        return f"str({expr})"
    if fd.type == FieldDescriptor.TYPE_BYTES:
        return f"_bytes({expr})"
    return expr


def _nested(desc: Descriptor) -> Render:
    """A nested type's renderer: compiled now, or, for a type that refers back to one being compiled,
    on first use."""
    if desc.full_name not in _compiling:
        return renderer(desc)
    cell: list[Render] = []

    def render(m: Any) -> Any:
        if not cell:
            cell.append(renderer(desc))
        return cell[0](m)

    return render


def to_json(message: Any) -> bytes:
    """The message as FirecREST's JSON, UTF-8."""
    return orjson.dumps(renderer(message.DESCRIPTOR)(message))


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# HttpBody's field 1 (content_type, length-delimited) with our one content type, and field 2's tag
_BODY_HEAD = b"\x0a" + _varint(len(JSON_TYPE)) + JSON_TYPE.encode() + b"\x12"


def json_body(data: bytes) -> bytes:
    """The serialised google.api.HttpBody {content_type: application/json, data: data}, written
    directly (protobuf's wire format): one copy of a listing's JSON where building the message and
    serialising it made two, for every answer in flight."""
    if not data:  # proto3 leaves an empty field out
        return _BODY_HEAD[:-1]
    return b"".join((_BODY_HEAD, _varint(len(data)), data))


def http_body(message: Any) -> bytes:
    """The serialised google.api.HttpBody that carries the message's JSON to the transcoder."""
    return json_body(to_json(message))


# ---------------------------------------------------------------------- responses in two forms


class TwoForms:
    """A unary response a servicer gives in both its forms, each built only for the caller that
    wants it: `message()` the protobuf (native gRPC callers), `json()` the bytes to_json(message())
    would give (REST callers), written without building the message first. The interceptor
    (core.api.context) calls one of them; a big listing is then never built twice."""

    __slots__ = ("body", "json", "message")

    def __init__(
        self, message: Callable[[], Any], json: Callable[[], bytes], body: Callable[[], bytes] | None = None
    ):
        self.message = message
        self.json = json
        self.body = body  # json_body(json()), when the servicer keeps it (a shared listing's)

    def http_body(self) -> bytes:
        """The serialised HttpBody for the transcoder, as http_body(self.message())."""
        return self.body() if self.body is not None else json_body(self.json())


class Records:
    """A response made of one repeated message field, written in both forms straight from records
    (NamedTuples) whose field names are the item message's: `message(rows)` builds the protobuf,
    `json(rows)` the same response's JSON. Both functions are generated once from the descriptors,
    with the rules to_json follows (JSON names, null_when_unset, 64-bit integers as strings...):
    the field names and nulls are not written down a second time. A record's None is an unset
    field (null in JSON)."""

    def __init__(self, response: Any, field: str, record: type):
        desc: Descriptor = response.DESCRIPTOR
        rfd = desc.fields_by_name[field]
        others = [f.name for f in desc.fields if f.name != field and f.name not in NATIVE_ONLY_FIELDS]
        if others or not rfd.is_repeated or rfd.message_type is None or rfd.message_type.GetOptions().map_entry:
            raise ValueError(f"{desc.full_name} is not one repeated message field ({field}) only")
        item: Descriptor = rfd.message_type
        attrs: tuple[str, ...] = record._fields  # type: ignore[attr-defined]
        names = [fd.name for fd in item.fields]
        if sorted(names) != sorted(attrs):
            raise ValueError(f"{record.__name__} has fields {attrs}, {item.full_name} has {names}")
        env: dict[str, Any] = {"_number": _number, "_bytes": _bytes, "_dumps": orjson.dumps, "_cls": response}
        local = {a: f"_{i}" for i, a in enumerate(attrs)}  # the record unpacked: no attribute lookups
        unpack = ", ".join(local[a] for a in attrs) + ("," if len(attrs) == 1 else "")
        pairs: list[str] = []
        for i, fd in enumerate(item.fields):
            if fd.is_repeated or keyword.iskeyword(fd.name) or (fd.containing_oneof is not None and not _synthetic(fd)):
                raise ValueError(f"{item.full_name}.{fd.name}: only singular fields outside a oneof, not keywords")
            var = local[fd.name]
            value = _value(fd, var, env, f"_v{i}")
            if fd.has_presence:
                if not null_when_unset(item.full_name, fd.name, True):
                    raise ValueError(f"{item.full_name}.{fd.name} is left out when unset: not supported")
                if value != var:
                    value = f"(None if {var} is None else {value})"
            pairs.append(f"{json.dumps(fd.json_name)}: {value}")
        kwargs = ", ".join(f"{a}={local[a]}" for a in attrs)
        src = (
            "def write(rows):\n"
            f"    return _dumps({{{json.dumps(rfd.json_name)}: [{{{', '.join(pairs)}}} for {unpack} in rows]}})\n"
            "def build(rows):\n"
            "    m = _cls()\n"
            f"    add = m.{field}.add\n"
            f"    for {unpack} in rows:\n"
            f"        add({kwargs})\n"
            "    return m\n"
        )
        exec(src, env)  # noqa: S102 - source generated above from the descriptors and the record's fields
        self.json: Callable[[Any], bytes] = env["write"]
        self.message: Callable[[Any], Any] = env["build"]

    def two_forms(self, rows: Any) -> TwoForms:
        return TwoForms(lambda: self.message(rows), lambda: self.json(rows))
