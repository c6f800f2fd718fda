"""A protoc plugin (for `buf generate`) that writes the Python stubs of the contract under one package.

pip's grpcio-tools generates the messages (`_pb2.py`), their type stubs (`.pyi`) and the gRPC stubs
(`_pb2_grpc.py`), but Python's generators always import other generated files by proto package
(`from firecrest.type.v1 import types_pb2`), and `firecrest` is pyfirecrest's top-level name: both
installed side by side, one would shadow the other. This plugin runs grpcio-tools' protoc on the
files buf hands it, then moves every `firecrest.*` module under the package named by the
`package=` option (`firecrest_gateway_client.firecrest.compute.v1.compute_pb2`) and rewrites the
imports to match. google.* imports stay as they are (googleapis-common-protos provides them).

The generated code checks at import time that the protobuf and grpcio runtimes are at least the
versions it was generated for, so the plugin also writes requirements.txt (next to the package,
read by clients/python/pyproject.toml) with exactly those lower bounds.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

_IMPORT_RE = re.compile(r"^(\s*)(from|import) firecrest\.", re.MULTILINE)
_PROTOBUF_GENCODE_RE = re.compile(r"ValidateProtobufRuntimeVersion\(\s*\S+,\s*(\d+),\s*(\d+),\s*(\d+),")
_GRPC_GENCODE_RE = re.compile(r"^GRPC_GENERATED_VERSION = '([0-9.]+)'", re.MULTILINE)
_PACKAGE_DOC = '''"""gRPC stubs of the firecrest gateway, generated from its protos by `buf generate`.

    from firecrest_gateway_client.firecrest.status.v1 import status_pb2, status_pb2_grpc
"""
'''


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    options = dict(kv.split("=", 1) for kv in request.parameter.split(",") if kv)
    package = options.get("package", "")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", package):
        response.error = f"option package=<python package> is required, got {package!r}"
        return response
    prefix = Path(*package.split("."))
    with tempfile.TemporaryDirectory(prefix="protoc-gen-prefixed-python-") as tmp:
        fds = Path(tmp) / "input.binpb"
        fds.write_bytes(descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString())
        out = Path(tmp) / "out"
        out.mkdir()
        protoc = subprocess.run(
            [sys.executable, "-m", "grpc_tools.protoc", f"--descriptor_set_in={fds}",
             f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}",
             *request.file_to_generate],
            capture_output=True, text=True, check=False,
        )
        if protoc.returncode != 0:
            response.error = f"grpc_tools.protoc failed: {protoc.stderr.strip()}"
            return response
        packages: set[Path] = set()
        protobuf_min: tuple[int, ...] = ()
        grpc_min: tuple[int, ...] = ()
        for path in sorted(p for p in out.rglob("*") if p.is_file()):
            rel = path.relative_to(out)
            text = _IMPORT_RE.sub(rf"\1\2 {package}.firecrest.", path.read_text())
            if m := _PROTOBUF_GENCODE_RE.search(text):
                protobuf_min = max(protobuf_min, tuple(map(int, m.groups())))
            if m := _GRPC_GENCODE_RE.search(text):
                grpc_min = max(grpc_min, tuple(map(int, m.group(1).split("."))))
            response.file.add(name=(prefix / rel).as_posix(), content=text)
            packages.update(rel.parents)
        for pkg in sorted(packages - {Path(".")}):
            response.file.add(name=(prefix / pkg / "__init__.py").as_posix(), content="")
    # the package itself (and its parents) are generated too, so `out` holds generated files only
    for parent in reversed(prefix.parents[:-1]):
        response.file.add(name=(parent / "__init__.py").as_posix(), content="")
    response.file.add(name=(prefix / "__init__.py").as_posix(), content=_PACKAGE_DOC)
    response.file.add(name=(prefix / "py.typed").as_posix(), content="")
    requirements = [
        "grpcio>=" + ".".join(map(str, grpc_min)) if grpc_min else "grpcio",
        "protobuf>=" + ".".join(map(str, protobuf_min)) if protobuf_min else "protobuf",
        "googleapis-common-protos>=1.60",
    ]
    response.file.add(name="requirements.txt", content="\n".join(requirements) + "\n")
    return response


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())


if __name__ == "__main__":
    main()
