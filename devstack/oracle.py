"""FirecREST v2 2.5.6 itself, run as a black box beside the gateway on the same local stack.

The differential conformance suite (tests/conformance) sends every request to both and compares
the answers, so "behaves like FirecREST v2" is measured against the real thing, not against our
reading of its spec; the benchmark (bench.scenarios) measures it beside the gateway with
`running()`, the one launcher of both. The oracle is the reference source tree (``$F7T_ORACLE_SRC``, default
``/work/shared/reference/firecrest-v2-2.5.6``), never part of this repository: it is run, not copied.

Everything lives in ``<state>/oracle``: its own venv (cached by the hash of its requirements),
an ed25519 key per test user signed by the stack's user CA (FirecREST's ``SSHStaticKeys`` with
``public_cert``: sshd trusts only the CA), its config and its pidfile. It listens on
``F7T_PORT_BASE + 97`` (``$F7T_PORT_ORACLE`` overrides) and uses the stack's sshd, Slurm, S3
server and issuer, so the same token works against both.

    python -m devstack.oracle up|down|env
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from devstack import gateway
from devstack.layout import Layout, load_layout
from devstack.services import Service, http_answers, pid_of, start, stop, wait_ready

# the reference copy in the shared/ folder beside the checkout (where CI puts it too)
DEFAULT_SRC = str(
    next(
        (
            p
            for p in (
                gateway.REPO.parent / "shared/reference/firecrest-v2-2.5.6",
                Path("/work/shared/reference/firecrest-v2-2.5.6"),
            )
            if p.is_dir()
        ),
        gateway.REPO.parent / "shared/reference/firecrest-v2-2.5.6",
    )
)
PORT_OFFSET = 97
CERT_VALIDITY = "+1d"
CERT_RENEW_AFTER = 12 * 3600  # seconds: re-sign well before the day is over
MAX_OPS_FILE_SIZE = 5 * 1024 * 1024  # the gateway's limit for direct (ops) transfers


def source() -> Path:
    return Path(os.environ.get("F7T_ORACLE_SRC", DEFAULT_SRC))


def port(layout: Layout) -> int:
    override = os.environ.get("F7T_PORT_ORACLE")
    if override:
        return int(override)
    return layout.ports.envoy + PORT_OFFSET  # the envoy port is F7T_PORT_BASE + 0


def url(layout: Layout) -> str:
    return f"http://127.0.0.1:{port(layout)}"


def _dir(layout: Layout) -> Path:
    return layout.state_dir / "oracle"


def ensure_venv(layout: Layout, log=print) -> Path:  # type: ignore[no-untyped-def]
    """The oracle's own venv with its pinned-by-range requirements; rebuilt when they change."""
    req = source() / "requirements.txt"
    venv = _dir(layout) / "venv"
    stamp = venv / f".installed-{hashlib.sha256(req.read_bytes()).hexdigest()[:16]}"
    if stamp.exists():
        return venv
    log(f"oracle: creating {venv} (FirecREST v2 requirements, about three minutes)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check", "-r", str(req)],
        check=True,
    )
    stamp.touch()
    return venv


def ensure_keys(layout: Layout) -> dict[str, dict[str, str]]:
    """A key per stack user, its certificate signed by the stack's CA; re-signed when old."""
    keys_dir = _dir(layout) / "keys"
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    out = {}
    for user in layout.users:
        key = keys_dir / user
        cert = keys_dir / f"{user}-cert.pub"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"oracle-{user}", "-f", str(key)],
                           check=True)
            cert.unlink(missing_ok=True)
        if not cert.exists() or time.time() - cert.stat().st_mtime > CERT_RENEW_AFTER:
            subprocess.run(
                ["ssh-keygen", "-q", "-s", str(layout.ca_key), "-I", f"oracle-{user}", "-n", user,
                 "-V", f"-5m:{CERT_VALIDITY}", f"{key}.pub"],
                check=True,
            )
        out[user] = {"private_key": f"secret_file:{key}", "public_cert": cert.read_text().strip()}
    return out


def config(layout: Layout, keys: dict[str, dict[str, str]], streamer: bool = False) -> dict:
    """FirecREST v2's config for the local stack, mirroring what the gateway is given."""
    issuer = json.loads((layout.gateway_dir / "issuer" / "config.json").read_text())
    # its health prober authenticates as a service account: the first test user's client will do
    # (it probes with that user's key), so its /status answers carry real probe results
    prober = next(c for c in issuer["clients"] if c.get("username") == layout.users[0])
    creds = layout.credentials()
    transfer: dict = {
        "service_type": "s3",
        "name": "s3",
        "private_url": layout.s3_url,
        "public_url": layout.s3_url,
        "access_key_id": creds["s3_access_key"],
        "secret_access_key": creds["s3_secret_key"],
        "region": "us-east-1",
        "ttl": 604800,
        "multipart": {"use_split": False, "max_part_size": 64 * 1024 * 1024, "parallel_runs": 3,
                      "tmp_folder": "tmp"},
    }
    return {
        "auth": {
            "authentication": {
                "scopes": {},
                "tokenUrl": f"{issuer['issuer']}/protocol/openid-connect/token",
                "publicCerts": [f"{issuer['issuer']}/protocol/openid-connect/certs"],
                "usernameClaim": issuer.get("username_claim", "preferred_username"),
            }
        },
        "ssh_credentials": {"type": "SSHStaticKeys", "keys": keys},
        "clusters": [
            {
                "name": gateway.SYSTEM,
                "ssh": {
                    "host": layout.ssh_host,
                    "port": layout.ports.sshd,
                    "max_clients": 4,
                    "timeout": {"connection": 10, "login": 10, "command_execution": 60, "idle_timeout": 120,
                                "keep_alive": 5},
                },
                "scheduler": {"type": "slurm", "version": "22.05", "timeout": 30, "connection_mode": "ssh"},
                "service_account": {"client_id": prober["client_id"], "secret": prober["client_secret"]},
                "probing": {"interval_check": 30,
                            "services": {"ssh": {"timeout": 5}, "filesystem": {"timeout": 5},
                                         "scheduler": {"timeout": 5}}},
                "file_systems": [
                    {"path": "/home", "data_type": "users", "default_work_dir": True},
                    {"path": "/tmp", "data_type": "scratch"},
                ],
                "data_operation": {
                    "max_ops_file_size": MAX_OPS_FILE_SIZE,
                    "datatransfer_jobs_directives": [],
                    "data_transfer": transfer,
                },
            }
        ],
    }


def service(layout: Layout) -> Service:
    d = _dir(layout)
    venv = d / "venv"
    return Service(
        name="oracle",
        argv=[str(venv / "bin/uvicorn"), "firecrest.main:app", "--host", "127.0.0.1", "--port", str(port(layout)),
              "--log-level", "warning"],
        ready=http_answers(f"{url(layout)}/status/liveness/"),
        env={"YAML_CONFIG_FILE": str(d / "config.yaml"), "PYTHONDONTWRITEBYTECODE": "1"},
        pidfile=layout.pidfile("oracle"),
        log=layout.log("oracle"),
        cwd=source() / "src",
        ready_timeout=90,
    )


def up(layout: Layout, log=print) -> str:  # type: ignore[no-untyped-def]
    """Install (cached), configure and start FirecREST v2 on the stack; its base URL."""
    if not (source() / "src" / "firecrest" / "main.py").exists():
        raise FileNotFoundError(f"FirecREST v2 source not found in {source()} (set F7T_ORACLE_SRC)")
    ensure_venv(layout, log)
    keys = ensure_keys(layout)
    cfg = _dir(layout) / "config.yaml"
    text = yaml.safe_dump(config(layout, keys), sort_keys=False)
    svc = service(layout)
    changed = not cfg.exists() or cfg.read_text() != text
    if changed:
        fd = os.open(cfg, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        if pid_of(svc) is not None:
            log("oracle: config changed, restarting")
            stop(svc)
    pid = start(svc)
    wait_ready(svc)
    log(f"oracle: FirecREST v2 at {url(layout)} (pid {pid}), log {svc.log}")
    return url(layout)


@contextmanager
def running(layout: Layout, log=print) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """FirecREST v2 for the duration of a block (its base URL): started for it and stopped after
    it, unless it was running already (e.g. for the conformance tests), in which case it stays."""
    svc = service(layout)
    was_running = pid_of(svc) is not None
    base = up(layout, log)
    try:
        yield base
    finally:
        if not was_running and stop(svc):
            log("oracle: stopped")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m devstack.oracle", description=__doc__.splitlines()[0])
    p.add_argument("command", choices=["up", "down", "env"])
    args = p.parse_args(argv)
    layout = load_layout()
    if args.command == "up":
        up(layout)
    elif args.command == "down":
        print("oracle: stopped" if stop(service(layout)) else "oracle: not running")
    else:
        print(f"export F7T_ORACLE_URL={url(layout)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
