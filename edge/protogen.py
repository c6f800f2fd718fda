"""Generate everything derived from protos/: Python stubs, Envoy's descriptor set, OpenAPI.

    python -m edge.protogen            regenerate core/proto/, edge/descriptor.pb, edge/openapi.json
    python -m edge.protogen --check    exit 1 if the committed outputs differ from a fresh generation
    python -m edge.protogen --lint     buf lint (installs buf from npm with `npm ci` when needed)

Output is deterministic: regenerating twice gives a byte-identical tree.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from core.api.restjson import null_when_unset

ROOT = Path(__file__).resolve().parents[1]
PROTOS = ROOT / "protos"
PROTO_OUT = Path("core") / "proto"
DESCRIPTOR = Path("edge") / "descriptor.pb"
OPENAPI = Path("edge") / "openapi.json"
DEPS_DIR = ROOT / "build" / "proto-deps"

# The contract's custom options, by their full names (ContractOptions reads them):
# the HTTP binding of a method (MethodOptions), its HTTP success code (firecrest/type/v1/types.proto),
SUCCESS_CODE = "firecrest.type.v1.success_code"
HTTP = "google.api.http"
# a regular expression a string field's value must match, and REQUIRED fields (FieldOptions)
PATTERN = "firecrest.type.v1.pattern"
FIELD_BEHAVIOR = "google.api.field_behavior"
# Methods a caller may use without a token (Envoy's jwt_authn lets them through).
PUBLIC_METHODS = frozenset({"firecrest.status.v1.StatusService.GetLiveness"})
# A server-streaming method's additional bindings ending in this verb answer Server-Sent Events
# (Envoy's transcoder with stream_sse_style_delimited on their route); the main binding a JSON array.
SSE_VERB = ":events"
# Services whose HTTP rules make up the REST surface, in output order.
PACKAGE_PREFIX = "firecrest."

GOOGLE_DEPS = [
    "google/api/annotations.proto",
    "google/api/field_behavior.proto",
    "google/api/http.proto",
    "google/api/httpbody.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
    "google/rpc/code.proto",
]


# --------------------------------------------------------------------------- include paths


def _grpc_tools_proto_dir() -> Path:
    import grpc_tools

    return Path(grpc_tools.__file__).parent / "_proto"


def _googleapis_dir() -> Path:
    import google.api.annotations_pb2 as ann

    # site-packages/google/api/annotations_pb2.py -> site-packages
    return Path(ann.__file__).resolve().parents[2]


def proto_files() -> list[str]:
    return sorted(p.relative_to(PROTOS).as_posix() for p in PROTOS.rglob("*.proto"))


# --------------------------------------------------------------------------- generation

_IMPORT_RE = re.compile(r"^(\s*)(from|import) firecrest\.", re.MULTILINE)


def _protoc(args: list[str]) -> None:
    from grpc_tools import protoc

    argv = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{_grpc_tools_proto_dir()}",
        f"-I{_googleapis_dir()}",
        *args,
    ]
    rc = protoc.main(argv)
    if rc != 0:
        raise SystemExit(f"protoc failed ({rc}): {' '.join(args[:3])} ...")


def generate(out_root: Path) -> None:
    """Write core/proto/, edge/descriptor.pb and edge/openapi.json under out_root."""
    files = proto_files()
    py_out = out_root / PROTO_OUT
    if py_out.exists():
        shutil.rmtree(py_out)
    py_out.mkdir(parents=True)
    _protoc([f"--python_out={py_out}", f"--pyi_out={py_out}", f"--grpc_python_out={py_out}", *files])

    # Package markers and import rewriting: `firecrest` is pyfirecrest's top-level name.
    for d in sorted({py_out, *(p.parent for p in py_out.rglob("*.py"))}):
        while True:
            (d / "__init__.py").touch()
            if d == py_out:
                break
            d = d.parent
    for f in sorted([*py_out.rglob("*.py"), *py_out.rglob("*.pyi")]):
        text = f.read_text()
        new = _IMPORT_RE.sub(r"\1\2 core.proto.firecrest.", text)
        if new != text:
            f.write_text(new)

    desc = out_root / DESCRIPTOR
    desc.parent.mkdir(parents=True, exist_ok=True)
    # error_details.proto is imported by no contract file, but the transcoder must know
    # google.rpc.ErrorInfo to print a task's error details (an Any) as JSON
    _protoc([f"--descriptor_set_out={desc}", "--include_imports", "--include_source_info", *files,
             "google/rpc/error_details.proto"])

    fds = descriptor_pb2.FileDescriptorSet.FromString(desc.read_bytes())
    doc = build_openapi(fds)
    (out_root / OPENAPI).write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")


# --------------------------------------------------------------------------- descriptor helpers


class MethodOptions(NamedTuple):
    http: Any | None  # google.api.HttpRule, None without a binding
    success_code: int | None  # None when the option is not set


class ContractOptions:
    """The custom options of a descriptor set's methods and fields, read with protobuf's
    Extensions API. The options are parsed against a descriptor pool made of the set itself, so
    the extensions are the ones of the contract being read (not those of stubs generated earlier,
    which `--check` must not trust), whatever else the process has imported."""

    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        pool = descriptor_pool.DescriptorPool()
        for f in fds.file:  # protoc --include_imports writes dependencies first
            pool.Add(f)
        self._method_options = message_factory.GetMessageClass(
            pool.FindMessageTypeByName("google.protobuf.MethodOptions")
        )
        self._field_options = message_factory.GetMessageClass(
            pool.FindMessageTypeByName("google.protobuf.FieldOptions")
        )
        self._http = pool.FindExtensionByName(HTTP)
        self._success_code = pool.FindExtensionByName(SUCCESS_CODE)
        self._pattern = pool.FindExtensionByName(PATTERN)
        self._behavior = pool.FindExtensionByName(FIELD_BEHAVIOR)
        self._required = pool.FindEnumTypeByName("google.api.FieldBehavior").values_by_name["REQUIRED"].number

    def method(self, method: descriptor_pb2.MethodDescriptorProto) -> MethodOptions:
        opts = self._method_options.FromString(method.options.SerializeToString())
        return MethodOptions(
            opts.Extensions[self._http] if opts.HasExtension(self._http) else None,
            opts.Extensions[self._success_code] if opts.HasExtension(self._success_code) else None,
        )

    def _field(self, field: descriptor_pb2.FieldDescriptorProto) -> Any:
        return self._field_options.FromString(field.options.SerializeToString())

    def is_required(self, field: descriptor_pb2.FieldDescriptorProto) -> bool:
        """Does the field carry (google.api.field_behavior) = REQUIRED?"""
        return self._required in self._field(field).Extensions[self._behavior]

    def pattern(self, field: descriptor_pb2.FieldDescriptorProto) -> str | None:
        opts = self._field(field)
        return opts.Extensions[self._pattern] if opts.HasExtension(self._pattern) else None


def rule_binding(rule: Any) -> tuple[str, str]:
    """(HTTP method in upper case, path template) of an HttpRule."""
    kind = rule.WhichOneof("pattern")
    if kind == "custom":
        return rule.custom.kind.upper(), rule.custom.path
    return kind.upper(), getattr(rule, kind)


def iter_http_methods(
    fds: descriptor_pb2.FileDescriptorSet,
) -> Iterator[tuple[str, descriptor_pb2.ServiceDescriptorProto, descriptor_pb2.MethodDescriptorProto]]:
    """(package, service, method) for every firecrest method, in file/declaration order."""
    for f in sorted(fds.file, key=lambda f: f.name):
        if not f.package.startswith(PACKAGE_PREFIX):
            continue
        for svc in f.service:
            for m in svc.method:
                yield f.package, svc, m


# --------------------------------------------------------------------------- OpenAPI

_SCALARS: dict[int, dict[str, Any]] = {
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: {"type": "number"},
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: {"type": "number"},
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: {"type": "integer", "format": "int32"},
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT32: {"type": "integer", "format": "int32"},
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: {"type": "integer", "format": "int64"},
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: {"type": "integer", "format": "int64"},
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: {"type": "string", "format": "int64"},
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT64: {"type": "string", "format": "int64"},
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: {"type": "string", "format": "uint64"},
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: {"type": "boolean"},
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: {"type": "string"},
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: {"type": "string", "format": "byte"},
}

_WKT: dict[str, dict[str, Any]] = {
    ".google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    # seconds within protobuf's range (about 10,000 years), at most nanosecond precision
    ".google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]{1,11}(\.[0-9]{1,9})?s$"},
    ".google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    ".google.protobuf.Value": {},
    ".google.protobuf.ListValue": {"type": "array", "items": {}},
    ".google.protobuf.Empty": {"type": "object"},
    ".google.protobuf.Any": {"type": "object", "additionalProperties": True},
    ".google.protobuf.FieldMask": {"type": "string"},
    ".google.protobuf.StringValue": {"type": "string"},
    ".google.protobuf.BoolValue": {"type": "boolean"},
    ".google.protobuf.Int32Value": {"type": "integer", "format": "int32"},
    ".google.protobuf.DoubleValue": {"type": "number"},
}

_PATH_VAR = re.compile(r"\{([^}=]+)(=[^}]*)?\}")


class _OpenAPIBuilder:
    def __init__(self, fds: descriptor_pb2.FileDescriptorSet, options: ContractOptions) -> None:
        self.options = options
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        for f in fds.file:
            prefix = f".{f.package}" if f.package else ""
            for m in f.message_type:
                self._add_message(prefix, m)
            for e in f.enum_type:
                self.enums[f"{prefix}.{e.name}"] = e
        self.schemas: dict[str, Any] = {}

    def _add_message(self, prefix: str, m: descriptor_pb2.DescriptorProto) -> None:
        full = f"{prefix}.{m.name}"
        self.messages[full] = m
        for nested in m.nested_type:
            self._add_message(full, nested)
        for e in m.enum_type:
            self.enums[f"{full}.{e.name}"] = e

    @staticmethod
    def schema_name(full: str) -> str:
        return full.lstrip(".")

    def ref(self, full: str) -> dict[str, Any]:
        if full in _WKT:
            return dict(_WKT[full])
        if full in self.enums:
            name = self.schema_name(full)
            if name not in self.schemas:
                values = self.enums[full].value
                # answered by name; a request may also give the number (the transcoder takes both)
                self.schemas[name] = {
                    "anyOf": [
                        {"type": "string", "enum": [v.name for v in values]},
                        {"type": "integer", "enum": [v.number for v in values]},
                    ]
                }
            return {"$ref": f"#/components/schemas/{name}"}
        if full == ".google.rpc.Status":
            name = "google.rpc.Status"
            self.schemas.setdefault(
                name,
                {
                    "type": "object",
                    "properties": {
                        "code": {"type": "integer", "format": "int32"},
                        "message": {"type": "string"},
                        "details": {
                            "type": "array",
                            "items": {"type": "object", "additionalProperties": True},
                        },
                    },
                },
            )
            return {"$ref": f"#/components/schemas/{name}"}
        name = self.schema_name(full)
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder against recursion
            self.schemas[name] = self.message_schema(full)
        return {"$ref": f"#/components/schemas/{name}"}

    def is_map(self, field: descriptor_pb2.FieldDescriptorProto) -> descriptor_pb2.DescriptorProto | None:
        if field.type != field.TYPE_MESSAGE or field.label != field.LABEL_REPEATED:
            return None
        entry = self.messages.get(field.type_name)
        if entry is not None and entry.options.map_entry:
            return entry
        return None

    def field_schema(self, field: descriptor_pb2.FieldDescriptorProto) -> dict[str, Any]:
        entry = self.is_map(field)
        if entry is not None:
            return {"type": "object", "additionalProperties": self.field_schema(entry.field[1])}
        if field.type in (field.TYPE_MESSAGE, field.TYPE_GROUP, field.TYPE_ENUM):
            single = self.ref(field.type_name)
        else:
            single = dict(_SCALARS[field.type])
            if field.type == field.TYPE_STRING:
                pattern = self.options.pattern(field)
                if pattern:
                    single["pattern"] = pattern
                elif self.options.is_required(field):
                    single["minLength"] = 1  # a required value cannot be empty
        if field.label == field.LABEL_REPEATED:
            return {"type": "array", "items": single}
        return single

    def message_schema(self, full: str, skip: frozenset[str] = frozenset()) -> dict[str, Any]:
        m = self.messages[full]
        props = {}
        required = []
        # FirecREST v2 writes an unknown value as null: the fields the core writes as null for REST
        # callers (core.api.restjson.null_when_unset) are nullable
        for f in m.field:
            if f.name in skip:
                continue
            schema = self.field_schema(f)
            presence = f.label != f.LABEL_REPEATED and (
                f.proto3_optional or (f.type == f.TYPE_MESSAGE and not f.HasField("oneof_index"))
            )
            nullable = null_when_unset(full, f.name, presence)
            if nullable:
                schema = {"allOf": [schema], "nullable": True} if "$ref" in schema else {**schema, "nullable": True}
            if f.options.deprecated:  # FirecREST v2's undocumented aliases (storage.proto `path`)
                schema = {**schema, "deprecated": True, "description": "Alias of sourcePath (FirecREST v2 takes it)"}
            props[f.json_name] = schema
            if self.options.is_required(f):
                required.append(f.json_name)
        # unknown fields are not part of the API (the transcoder refuses some, ignores others)
        out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        if required:
            out["required"] = required
        return out

    def field_path(self, full: str, path: str) -> descriptor_pb2.FieldDescriptorProto:
        msg = self.messages[full]
        field = None
        for part in path.split("."):
            field = next(f for f in msg.field if f.name == part)
            if field.type == field.TYPE_MESSAGE:
                msg = self.messages[field.type_name]
        assert field is not None
        return field

    def operation(
        self, service: str, method: descriptor_pb2.MethodDescriptorProto, rule: Any, code: int
    ) -> tuple[str, str, dict[str, Any]]:
        verb, path = rule_binding(rule)
        path_vars = [m.group(1) for m in _PATH_VAR.finditer(path)]
        oa_path = _PATH_VAR.sub(lambda m: "{" + m.group(1) + "}", path)
        req = self.messages[method.input_type]
        params: list[dict[str, Any]] = []
        for var in path_vars:
            f = self.field_path(method.input_type, var)
            params.append({"name": var, "in": "path", "required": True, "schema": self.field_schema(f)})
        op: dict[str, Any] = {
            "operationId": f"{service}_{method.name}",
            "tags": [service],
        }
        body_field = rule.body
        top_vars = {v.split(".")[0] for v in path_vars}
        if not body_field:
            for f in req.field:
                if f.name in top_vars:
                    continue
                schema = self.field_schema(f)
                if f.type == f.TYPE_MESSAGE and f.type_name not in _WKT:
                    continue  # messages cannot be query parameters
                required = self.options.is_required(f)
                params.append({"name": f.json_name, "in": "query", "required": required, "schema": schema})
        elif body_field == "*":
            schema = self.message_schema(method.input_type, skip=frozenset(top_vars))
            op["requestBody"] = {
                # a body without required fields may be left out (the transcoder takes none as {})
                "required": bool(schema.get("required")),
                "content": {"application/json": {"schema": schema}},
            }
            body_field = ""
        else:
            bf = next(f for f in req.field if f.name == body_field)
            if bf.type_name == ".google.api.HttpBody":
                content = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
            else:
                content = {"application/json": {"schema": self.field_schema(bf)}}
            op["requestBody"] = {"required": True, "content": content}
            for f in req.field:
                if f.name in top_vars or f.name == body_field:
                    continue
                if f.type == f.TYPE_MESSAGE and f.type_name not in _WKT:
                    continue
                required = self.options.is_required(f)
                params.append(
                    {"name": f.json_name, "in": "query", "required": required, "schema": self.field_schema(f)}
                )
        if params:
            op["parameters"] = params
        response: dict[str, Any] = {"description": "Successful Response"}
        if code != 204:
            if method.output_type == ".google.api.HttpBody":
                response["content"] = {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                }
            else:
                schema = self.ref(method.output_type)
                if method.server_streaming and path.endswith(SSE_VERB):
                    response["description"] = (
                        "Server-Sent Events: one `data: <JSON message>` event per change, until the end"
                    )
                    response["content"] = {
                        "text/event-stream": {"schema": {"type": "string"}, "x-event-schema": schema}
                    }
                else:
                    if method.server_streaming:
                        schema = {"type": "array", "items": schema}
                    response["content"] = {"application/json": {"schema": schema}}
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ApiResponseError"}}}
        op["responses"] = {
            str(code): response,
            "401": {"description": "Invalid or missing access token", "content": error},
            "default": {"description": "Error (FirecREST error shape)", "content": error},
        }
        if f"{service}.{method.name}" in PUBLIC_METHODS:
            op["security"] = []
            del op["responses"]["401"]
        return verb.lower(), oa_path, op


def build_openapi(fds: descriptor_pb2.FileDescriptorSet) -> dict[str, Any]:
    options = ContractOptions(fds)
    b = _OpenAPIBuilder(fds, options)
    paths: dict[str, dict[str, Any]] = {}
    for package, svc, m in iter_http_methods(fds):
        rule, success_code = options.method(m)
        if rule is None:
            continue
        code = success_code or 200
        for i, r in enumerate([rule, *rule.additional_bindings]):
            verb, path, op = b.operation(f"{package}.{svc.name}", m, r, code)
            if i:
                op["operationId"] += f"_{i}"
            paths.setdefault(path, {})[verb] = op
    b.schemas["ApiResponseError"] = {
        "type": "object",
        "description": "FirecREST error shape produced by the edge from google.rpc.Status.",
        "properties": {
            "errorType": {"type": "string", "enum": ["error", "validation"]},
            "message": {"type": "string"},
            "data": {"type": "object", "nullable": True},
            "user": {"type": "string", "nullable": True},
            "causedBy": {"type": "array", "items": {"type": "string"}, "nullable": True},
        },
        "required": ["message"],
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "FirecREST-compatible gateway",
            "version": "2.5.6",
            "description": "Generated by edge/protogen.py from protos/ (google.api.http and "
            "firecrest.type.v1.success_code options). Do not edit.",
        },
        "paths": {p: paths[p] for p in sorted(paths)},
        "components": {
            "schemas": {k: b.schemas[k] for k in sorted(b.schemas)},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"bearer": []}],
    }


# --------------------------------------------------------------------------- check / lint


def _outputs(root: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    proto_dir = root / PROTO_OUT
    if proto_dir.exists():
        for p in proto_dir.rglob("*"):
            if p.is_file() and "__pycache__" not in p.parts:
                out[p.relative_to(root).as_posix()] = p
    for rel in (DESCRIPTOR, OPENAPI):
        if (root / rel).exists():
            out[rel.as_posix()] = root / rel
    return out


def check() -> int:
    with tempfile.TemporaryDirectory(prefix="protogen-") as tmp:
        generate(Path(tmp))
        fresh, committed = _outputs(Path(tmp)), _outputs(ROOT)
        problems = []
        for rel in sorted(set(fresh) | set(committed)):
            if rel not in committed:
                problems.append(f"missing:  {rel}")
            elif rel not in fresh:
                problems.append(f"stale:    {rel}")
            elif not filecmp.cmp(fresh[rel], committed[rel], shallow=False):
                problems.append(f"differs:  {rel}")
    if problems:
        print("generated files are out of date; run `python -m edge.protogen`:", file=sys.stderr)
        for line in problems:
            print("  " + line, file=sys.stderr)
        return 1
    print("generated files are up to date")
    return 0


def prepare_deps() -> Path:
    """Copy the google/api and google/rpc protos buf needs into build/proto-deps/ (git-ignored)."""
    src = _googleapis_dir()
    if DEPS_DIR.exists():
        shutil.rmtree(DEPS_DIR)
    for rel in GOOGLE_DEPS:
        dst = DEPS_DIR / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, dst)
    return DEPS_DIR


def lint() -> int:
    prepare_deps()
    if not (ROOT / "node_modules" / ".bin" / "buf").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, check=True)
    return subprocess.run(["npx", "--no-install", "buf", "lint"], cwd=ROOT).returncode


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge.protogen", description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="fail if committed outputs are stale")
    g.add_argument("--lint", action="store_true", help="run buf lint on protos/")
    args = ap.parse_args(argv)
    if args.check:
        return check()
    if args.lint:
        return lint()
    generate(ROOT)
    print(f"generated {PROTO_OUT}/, {DESCRIPTOR}, {OPENAPI}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
