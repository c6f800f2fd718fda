"""Build the web portal (portal/): npm dependencies, TypeScript stubs of the protos, esbuild bundle.

Run by the stack's `up` before Envoy's configuration is rendered (Envoy serves the built files).
A build is skipped when none of its inputs changed since the last one.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PORTAL = REPO / "portal"
DIST = PORTAL / "dist"
GEN = PORTAL / "gen"
# googleapis files needed besides those the firecrest protos import (annotations.proto imports it);
# the well-known types (google/protobuf/*) come with @bufbuild/protobuf
EXTRA_PROTOS = ("google/api/http.proto",)
_IMPORT_RE = re.compile(r'^import\s+(?:public\s+)?"(google/(?!protobuf/)[^"]+\.proto)";', re.MULTILINE)


def _google_imports() -> list[str]:
    """The googleapis protos (google/api, google/rpc...) the firecrest protos import."""
    found = set(EXTRA_PROTOS)
    for proto in (REPO / "protos").rglob("*.proto"):
        found.update(_IMPORT_RE.findall(proto.read_text()))
    return sorted(found)


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(p.relative_to(REPO)).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _inputs() -> list[Path]:
    files = [PORTAL / "package-lock.json", PORTAL / "build.mjs", PORTAL / "tsconfig.json", Path(__file__)]
    files += [p for p in (PORTAL / "src").rglob("*") if p.is_file()]
    files += list((REPO / "protos").rglob("*.proto"))
    return files


def ensure_node_modules(log: Callable[[str], None]) -> None:
    """`npm ci` in portal/ when its lock file changed since the last install."""
    lock = PORTAL / "package-lock.json"
    stamp = PORTAL / "node_modules" / ".f7t-lock-sha256"
    want = hashlib.sha256(lock.read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == want:
        return
    log("portal: npm ci")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=PORTAL, check=True,
                   stdout=subprocess.DEVNULL)
    stamp.write_text(want)


def generate_stubs() -> None:
    """TypeScript messages and service descriptors (protoc-gen-es) of every proto, into portal/gen."""
    from grpc_tools import protoc

    from edge import protogen

    if GEN.exists():
        shutil.rmtree(GEN)
    GEN.mkdir(parents=True)
    plugin = PORTAL / "node_modules" / ".bin" / "protoc-gen-es"
    rc = protoc.main([
        "grpc_tools.protoc", f"-I{protogen.PROTOS}", f"-I{protogen._grpc_tools_proto_dir()}",
        f"-I{protogen._googleapis_dir()}", f"--plugin=protoc-gen-es={plugin}", f"--es_out={GEN}",
        "--es_opt=target=ts,import_extension=none", *protogen.proto_files(), *_google_imports(),
    ])
    if rc != 0:
        raise RuntimeError(f"protoc-gen-es failed ({rc})")


def build(log: Callable[[str], None]) -> Path:
    """Build the portal into portal/dist if its inputs changed; return the dist directory."""
    ensure_node_modules(log)
    digest = _digest(_inputs())
    stamp = DIST / ".build"
    if stamp.exists() and json.loads(stamp.read_text()).get("inputs") == digest:
        return DIST
    log("portal: generate stubs, bundle")
    generate_stubs()
    subprocess.run(["node", "build.mjs", str(DIST)], cwd=PORTAL, check=True)
    stamp.write_text(json.dumps({"inputs": digest}))
    return DIST
