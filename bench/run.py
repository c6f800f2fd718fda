"""Benchmarks: the gateway against the raw thing it wraps, measured in the same process, same run.

    .venv/bin/python -m bench.run [--n 200] [--only edge,ssh,sbatch,s3]

Each line prints the median and p90 latency of the baseline and of the gateway path, and their
ratio (gateway / baseline). Figures depend on the machine and its load; ratios are what to compare.
Needs the local stack up (`firecrest-stack up`).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import paramiko
import requests
import yaml

from core.adapters.certs import CertificateAuthority
from core.proto.firecrest.status.v1 import status_pb2 as pb
from core.proto.firecrest.status.v1 import status_pb2_grpc


def _env() -> dict[str, str]:
    out = subprocess.run([sys.executable, "-m", "devstack", "env"], check=True, capture_output=True, text=True).stdout
    return {k[7:]: v.strip("'") for k, _, v in (ln.partition("=") for ln in out.splitlines()) if k.startswith("export ")}


def _measure(fn: Callable[[], Any], n: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _p(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def report(name: str, base: list[float], gw: list[float]) -> None:
    bm, gm = statistics.median(base), statistics.median(gw)
    print(
        f"{name:<34} baseline median {bm * 1e3:8.2f} ms p90 {_p(base, 0.9) * 1e3:8.2f} ms | "
        f"gateway median {gm * 1e3:8.2f} ms p90 {_p(gw, 0.9) * 1e3:8.2f} ms | ratio {gm / bm:6.2f}x",
        flush=True,
    )


def _token(env: dict[str, str], user: str = "alice") -> str:
    u = user.upper()
    r = requests.post(env["F7T_TOKEN_URL"], data={
        "grant_type": "client_credentials", "client_id": env[f"F7T_{u}_CLIENT_ID"],
        "client_secret": env[f"F7T_{u}_CLIENT_SECRET"]}, timeout=10)
    r.raise_for_status()
    return str(r.json()["access_token"])


# ---------------------------------------------------------------- edge: raw gRPC vs through Envoy
class _NoopStatus(status_pb2_grpc.StatusServiceServicer):
    async def GetLiveness(self, request: Any, context: Any) -> pb.GetLivenessResponse:
        return pb.GetLivenessResponse(last_update=1)


def _start_raw_grpc() -> int:
    port_box: list[int] = []
    ready = threading.Event()

    def run() -> None:
        async def main() -> None:
            server = grpc.aio.server()
            status_pb2_grpc.add_StatusServiceServicer_to_server(_NoopStatus(), server)
            port_box.append(server.add_insecure_port("127.0.0.1:0"))
            await server.start()
            ready.set()
            await server.wait_for_termination()

        asyncio.run(main())

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    return port_box[0]


def bench_edge(env: dict[str, str], n: int) -> None:
    tok = _token(env)
    raw = grpc.insecure_channel(f"127.0.0.1:{_start_raw_grpc()}")
    raw_stub = status_pb2_grpc.StatusServiceStub(raw)
    base = _measure(lambda: raw_stub.GetLiveness(pb.GetLivenessRequest()), n)
    gw_ch = grpc.insecure_channel(env["F7T_GRPC_TARGET"])
    stub = status_pb2_grpc.StatusServiceStub(gw_ch)
    md = (("authorization", f"Bearer {tok}"),)
    report("gRPC unary: raw vs Envoy+core", base, _measure(lambda: stub.GetLiveness(pb.GetLivenessRequest(), metadata=md), n))
    from core.proto.firecrest.certificate.v1 import certificate_pb2 as cpb
    from core.proto.firecrest.certificate.v1 import certificate_pb2_grpc as cgrpc

    cstub = cgrpc.CertificateServiceStub(gw_ch)
    creq = cpb.GetCertificateAuthorityRequest(system_name=env["F7T_SYSTEM"])
    report("gRPC unary: raw vs Envoy+JWT+core", base, _measure(lambda: cstub.GetCertificateAuthority(creq, metadata=md), n))
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {tok}"
    url = env["F7T_URL"] + "/status/liveness/"
    report("REST liveness: raw gRPC vs Envoy", base, _measure(lambda: s.get(url, timeout=10).raise_for_status(), n))


# ---------------------------------------------------------------- ssh: raw Paramiko exec vs the gateway
class _RawSSH:
    """A Paramiko connection with TCP_NODELAY and a certificate from the same CA: the raw baseline."""

    def __init__(self, stack_dir: Path, user: str):
        cfg = yaml.safe_load((stack_dir / "gateway/core.yaml").read_text())
        ssh = cfg["systems"][0]["ssh"]
        ca = CertificateAuthority(Path(cfg["certificate"]["ca_key"]), 600)
        key = ca.new_user_key(user)
        pkey = paramiko.Ed25519Key.from_private_key(io.StringIO(key.private_openssh))
        pkey.load_certificate(key.cert.certificate)
        sock = socket.create_connection((ssh["host"], ssh["port"]))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client = paramiko.SSHClient()
        self.client.load_host_keys(ssh["known_hosts"])
        self.client.connect(ssh["host"], port=ssh["port"], username=user, pkey=pkey, sock=sock,
                            look_for_keys=False, allow_agent=False)
        self.env_prefix = "env " + " ".join(f"{k}={v}" for k, v in cfg["systems"][0]["scheduler"]["env"].items()) + " "

    def run(self, cmd: str) -> bytes:
        _, out, _ = self.client.exec_command(self.env_prefix + cmd)
        data = out.read()
        if out.channel.recv_exit_status() != 0:
            raise RuntimeError(f"{cmd} failed")
        return data


def bench_ssh(env: dict[str, str], n: int) -> None:
    raw = _RawSSH(Path(env["F7T_STACK_DIR"]), "alice")
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {_token(env)}"
    base = _measure(lambda: raw.run("scontrol -o show nodes"), n)
    url = env["F7T_URL"] + f"/status/{env['F7T_SYSTEM']}/nodes"
    report("nodes: raw SSH exec vs REST", base, _measure(lambda: s.get(url, timeout=30).raise_for_status(), n))


# ---------------------------------------------------------------- sbatch: raw vs POST /compute/jobs
def bench_sbatch(env: dict[str, str], n: int) -> None:
    raw = _RawSSH(Path(env["F7T_STACK_DIR"]), "alice")
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {_token(env)}"
    ids: list[str] = []

    def raw_submit() -> None:
        ids.append(raw.run("sbatch --parsable --hold --chdir=/tmp --output=/dev/null --wrap=true").decode().strip())

    url = env["F7T_URL"] + f"/compute/{env['F7T_SYSTEM']}/jobs"

    def gw_submit() -> None:
        r = s.post(url, json={"job": {"script": "#!/bin/bash\ntrue\n", "workingDirectory": "/tmp",
                                       "name": "bench", "standardOutput": "/dev/null"}}, timeout=60)
        r.raise_for_status()
        ids.append(str(r.json()["jobId"]))

    try:
        report("submit: raw sbatch vs REST", _measure(raw_submit, n, 2), _measure(gw_submit, n, 2))
    finally:
        for i in range(0, len(ids), 50):
            raw.run("scancel " + " ".join(ids[i:i + 50]))


# ---------------------------------------------------------------- s3: raw PUT vs presigned staged upload
def s3_client(env: dict[str, str]) -> Any:
    """boto3's S3 client of the stack's store, as the core configures its own (SigV4, path style)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=env["F7T_S3_URL"], aws_access_key_id=env["F7T_S3_ACCESS_KEY"],
        aws_secret_access_key=env["F7T_S3_SECRET_KEY"], region_name=env.get("F7T_S3_REGION", "us-east-1"),
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      request_checksum_calculation="when_required"),
    )


def s3_bucket(mc: Any, bucket: str) -> None:
    from botocore.exceptions import ClientError

    try:
        mc.head_bucket(Bucket=bucket)
    except ClientError:
        mc.create_bucket(Bucket=bucket)


def bench_s3(env: dict[str, str], n: int) -> None:
    mc = s3_client(env)
    bucket = "bench-raw"
    s3_bucket(mc, bucket)
    data = os.urandom(8 * 1024 * 1024)

    def raw_put() -> None:
        mc.put_object(Bucket=bucket, Key=uuid.uuid4().hex, Body=data)

    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {_token(env)}"
    url = env["F7T_URL"] + f"/filesystem/{env['F7T_SYSTEM']}/transfer/upload"
    ops = env["F7T_URL"] + f"/filesystem/{env['F7T_SYSTEM']}/ops"
    workdir = f"/home/alice/bench-{uuid.uuid4().hex[:12]}"
    s.post(f"{ops}/mkdir", json={"path": workdir}, timeout=30).raise_for_status()

    def staged_put() -> None:
        r = s.post(url, json={"path": f"{workdir}/{uuid.uuid4().hex}.bin",
                              "transferDirectives": {"transfer_method": "s3", "fileSize": len(data)}}, timeout=60)
        r.raise_for_status()
        td = r.json()["transferDirectives"]
        part = int(td["maxPartSize"])
        tags = []
        for i, u in enumerate(td["partsUploadUrls"]):
            pr = requests.put(u, data=data[i * part:(i + 1) * part], timeout=60)
            pr.raise_for_status()
            tags.append((i + 1, pr.headers["ETag"]))
        xml = "<CompleteMultipartUpload>" + "".join(
            f"<Part><PartNumber>{k}</PartNumber><ETag>{e}</ETag></Part>" for k, e in tags) + "</CompleteMultipartUpload>"
        requests.post(td["completeUploadUrl"], data=xml, timeout=60).raise_for_status()

    try:
        report("8 MiB to S3: raw PUT vs staged upload", _measure(raw_put, n, 1), _measure(staged_put, n, 1))
        # let the transfer jobs land their files, then remove the directory
        deadline = time.time() + 120
        while time.time() < deadline:
            listed = s.get(f"{ops}/ls", params={"path": workdir}, timeout=30).json().get("output", [])
            if len(listed) >= n + 1:
                break
            time.sleep(1)
    finally:
        s.delete(f"{ops}/rm", params={"path": workdir}, timeout=60)
        for page in mc.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                mc.delete_object(Bucket=bucket, Key=obj["Key"])


BENCHES = {"edge": bench_edge, "ssh": bench_ssh, "sbatch": bench_sbatch, "s3": bench_s3}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--only", default=",".join(BENCHES))
    args = ap.parse_args()
    env = _env()
    for name in args.only.split(","):
        n = args.n if name in ("edge", "ssh") else max(5, args.n // 10)
        try:
            BENCHES[name](env, n)
        except requests.HTTPError as e:
            print(f"{name}: gateway path failed: {e}", flush=True)


if __name__ == "__main__":
    main()
