"""Generate the client stubs of protos/ with `buf generate` (buf.gen.yaml), local plugins only.

    python -m clients.generate              into the repository (clients/*/gen, clients/python/src)
    python -m clients.generate --out DIR    into DIR, laid out like the repository

Nothing generated is committed: the stubs follow the protos at every build, so a change to a proto
can never leave a stale client behind. The plugins are Debian's (protoc, grpc_cpp_plugin,
protoc-gen-go, protoc-gen-go-grpc), npm's @bufbuild/protoc-gen-es (clients/typescript) and pip's
grpcio-tools (the venv); `./run clients` installs them.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from edge.protogen import ROOT, prepare_deps

TEMPLATE = ROOT / "buf.gen.yaml"
TS_DIR = ROOT / "clients" / "typescript"
# what each plugin needs, and the Debian package that provides it
PLUGINS = {
    "/usr/bin/protoc": "protobuf-compiler",
    "grpc_cpp_plugin": "protobuf-compiler-grpc",
    "protoc-gen-go": "protoc-gen-go",
    "protoc-gen-go-grpc": "protoc-gen-go-grpc",
}
# everything generation reads: a digest of these names a generated tree
INPUTS = ("protos", "buf.gen.yaml", "buf.yaml", "clients/python/protoc_gen_prefixed_python.py",
          "clients/typescript/package-lock.json")


def digest(extra: tuple[str, ...] = ()) -> str:
    """sha256 over the generation inputs (and `extra` paths, files or directories, under ROOT)."""
    h = hashlib.sha256()
    for rel in (*INPUTS, *extra):
        base = ROOT / rel
        files = sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else [base]
        for f in files:
            if "node_modules" in f.parts or "__pycache__" in f.parts:
                continue
            h.update(f.relative_to(ROOT).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def ensure_tools() -> None:
    missing = sorted({pkg for tool, pkg in PLUGINS.items() if not shutil.which(tool)})
    if missing:
        raise RuntimeError(f"missing protoc plugins; apt-get install {' '.join(missing)} (or `./run clients`)")
    if not (TS_DIR / "node_modules" / ".bin" / "protoc-gen-es").exists():
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=TS_DIR, check=True)
    if not (ROOT / "node_modules" / ".bin" / "buf").exists():
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=ROOT, check=True)


def generate(out: Path | None = None) -> None:
    """Run `buf generate` with buf.gen.yaml; `out` is the output base (default: the repository)."""
    ensure_tools()
    prepare_deps()
    cmd = ["npx", "--no-install", "buf", "generate", "--template", str(TEMPLATE)]
    if out is not None:
        cmd += ["--output", str(out.resolve())]
    subprocess.run(cmd, cwd=ROOT, check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m clients.generate", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="output base directory (default: the repository)")
    args = ap.parse_args(argv)
    try:
        generate(args.out)
    except (RuntimeError, subprocess.CalledProcessError) as e:
        print(f"python -m clients.generate: {e}", file=sys.stderr)
        return 1
    print(f"generated client stubs under {args.out or ROOT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
