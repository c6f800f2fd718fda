"""The gateway part of the local stack: the development OIDC issuer, the gRPC core and Envoy.

prepare() writes their configuration under <state>/gateway: the issuer's clients and key, an
internal CA with the core's server certificate and Envoy's client certificate (mTLS: nothing but
Envoy can talk to the core), the core's YAML config and Envoy's rendered config. A real centre
writes the same three files by hand: the code reads no local-stack fact from anywhere else.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devstack import portal
from devstack.layout import Layout
from devstack.services import Service, http_answers, tcp_banner
from edge.envoy_config import EdgeConfig
from edge.envoy_config import render as render_envoy
from edge.issuer.config import DEFAULT_SCOPE, PORTAL_CLIENT_ID, make_config

REPO = Path(__file__).resolve().parents[1]
SYSTEM = "cluster"
CORE_SNI = "core.firecrest.internal"
IDENTITY_HEADER = "x-f7t-user"
# the portal's access tokens live this long (seconds), so its sessions show refreshing at work
PORTAL_TOKEN_LIFETIME = int(os.environ.get("F7T_PORTAL_TOKEN_LIFETIME", "20"))


def _dir(layout: Layout) -> Path:
    return layout.gateway_dir


def portal_origin(layout: Layout) -> str:
    return f"http://127.0.0.1:{layout.ports.envoy}"


def portal_url(layout: Layout) -> str:
    return f"{portal_origin(layout)}/portal/"


def _issuer_config(layout: Layout) -> dict:
    d = _dir(layout) / "issuer"
    d.mkdir(parents=True, exist_ok=True)
    return make_config(d, layout.ports.issuer, list(layout.users), portal_url=portal_url(layout),
                       portal_token_lifetime=PORTAL_TOKEN_LIFETIME)


def _portal_config(layout: Layout, issuer: dict) -> dict:
    """What the portal reads at start (config.json next to it): its issuer, client and gateway."""
    return {
        "issuer": issuer["issuer"],
        "clientId": PORTAL_CLIENT_ID,
        "scope": f"{DEFAULT_SCOPE} profile email",
        "redirectUri": portal_url(layout),
        "gateway": portal_origin(layout),
    }


# ---------------------------------------------------------------- internal mTLS
def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(k: ec.EllipticCurvePrivateKey) -> bytes:
    return k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.write_bytes(data)
    path.chmod(mode)


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer_name: x509.Name, issuer_key: ec.EllipticCurvePrivateKey,
    *, ca: bool = False, san: str | None = None, client: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
    if not ca:
        usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _ensure_tls(layout: Layout) -> Path:
    d = _dir(layout) / "tls"
    if (d / "envoy-client.crt").exists():
        return d
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "firecrest internal CA")])
    ca = _cert("firecrest internal CA", ca_key, ca_name, ca_key, ca=True)
    pem = serialization.Encoding.PEM
    _write(d / "ca.crt", ca.public_bytes(pem), 0o644)
    core_key = _key()
    _write(d / "core.key", _pem_key(core_key))
    _write(d / "core.crt", _cert(CORE_SNI, core_key, ca_name, ca_key, san=CORE_SNI).public_bytes(pem), 0o644)
    env_key = _key()
    _write(d / "envoy-client.key", _pem_key(env_key))
    _write(
        d / "envoy-client.crt",
        _cert("envoy", env_key, ca_name, ca_key, san="envoy.firecrest.internal", client=True).public_bytes(pem),
        0o644,
    )
    return d


# ---------------------------------------------------------------- configs
def _core_config(layout: Layout) -> dict:
    tls = _dir(layout) / "tls"
    known_hosts = _dir(layout) / "known_hosts"
    host_pub = layout.ssh_host_pub.read_text().split()
    known_hosts.write_text(f"[{layout.ssh_host}]:{layout.ports.sshd} {host_pub[0]} {host_pub[1]}\n")
    creds = layout.credentials()
    return {
        "listen": f"127.0.0.1:{layout.ports.core}",
        "identity_header": IDENTITY_HEADER,
        "tls": {"cert": str(tls / "core.crt"), "key": str(tls / "core.key"), "client_ca": str(tls / "ca.crt")},
        "certificate": {"ca_key": str(layout.ca_key), "lifetime": 600},
        "task_db": str(_dir(layout) / "tasks.db"),
        "systems": [
            {
                "name": SYSTEM,
                "ssh": {
                    "host": layout.ssh_host,
                    "port": layout.ports.sshd,
                    "known_hosts": str(known_hosts),
                    "connect_timeout": 10,
                    "command_timeout": 60,
                    "pool_size": 4,
                },
                "scheduler": {"type": "slurm", "version": "22.05", "env": layout.slurm_env()},
                "filesystems": [
                    {"path": "/home", "data_type": "users", "default_work_dir": True},
                    {"path": "/tmp", "data_type": "scratch"},
                ],
                "datatransfer_jobs_directives": [],
            }
        ],
        "s3": {
            "endpoint": f"127.0.0.1:{layout.ports.s3}",
            "access_key": creds["s3_access_key"],
            "secret_key": creds["s3_secret_key"],
            "secure": False,
            # 64 MiB parts: a 200 MiB staged transfer has 4 (FirecREST's default is 2 GiB)
            "multipart_part_size": 64 * 1024 * 1024,
            "janitor_interval": 30,
        },
    }


def _edge_config(layout: Layout, issuer: dict) -> dict:
    tls = _dir(layout) / "tls"
    return {
        "issuer": issuer["issuer"],
        "audiences": [issuer["audience"]],
        "jwks_uri": f"{issuer['issuer']}/protocol/openid-connect/certs",
        "username_claim": issuer.get("username_claim", "preferred_username"),
        "identity_header": IDENTITY_HEADER,
        "listen_address": "127.0.0.1",
        "listen_port": layout.ports.envoy,
        "admin_port": layout.ports.envoy_admin,
        "access_log": str(layout.log("envoy-access")),
        "core_address": f"127.0.0.1:{layout.ports.core}",
        "core_sni": CORE_SNI,
        "client_cert": str(tls / "envoy-client.crt"),
        "client_key": str(tls / "envoy-client.key"),
        "core_ca": str(tls / "ca.crt"),
        "lua_out": str(_dir(layout) / "filter.lua"),
        "cors_allowed_origins": [portal_origin(layout)],
        "portal_dir": str(portal.DIST),
        "portal_config": str(_dir(layout) / "portal-config.json"),
        "portal_connect_origins": [_origin(issuer["issuer"]), layout.s3_url],
    }


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def prepare(layout: Layout, log: Callable[[str], None] = print) -> set[str]:
    """Write the gateway's configs and build the portal; return the services whose config changed."""
    d = _dir(layout)
    d.mkdir(parents=True, exist_ok=True)
    before = (d / "issuer" / "config.json").read_text() if (d / "issuer" / "config.json").exists() else ""
    issuer = _issuer_config(layout)
    _ensure_tls(layout)
    changed = set()
    if before and (d / "issuer" / "config.json").read_text() != before:
        changed.add("issuer")
    portal.build(log)
    _write_if_changed(d / "portal-config.json", json.dumps(_portal_config(layout, issuer), indent=2) + "\n")
    if _write_if_changed(d / "core.yaml", yaml.safe_dump(_core_config(layout), sort_keys=False)):
        changed.add("core")
    edge = _edge_config(layout, issuer)
    lua_before = Path(edge["lua_out"]).read_text() if Path(edge["lua_out"]).exists() else ""
    _write_if_changed(d / "edge.yaml", yaml.safe_dump(edge, sort_keys=False))
    envoy_changed = _write_if_changed(d / "envoy.yaml", render_envoy(EdgeConfig(**edge)))
    if envoy_changed or Path(edge["lua_out"]).read_text() != lua_before:
        changed.add("envoy")
    return changed


def services(layout: Layout) -> list[Service]:
    d = _dir(layout)
    py = sys.executable
    bin_dir = Path(py).parent
    issuer = json.loads((d / "issuer" / "config.json").read_text()) if (d / "issuer" / "config.json").exists() else None
    issuer_url = issuer["issuer"] if issuer else f"http://127.0.0.1:{layout.ports.issuer}/realms/f7t"
    return [
        Service(
            name="issuer",
            argv=[py, "-m", "edge.issuer", "--config", str(d / "issuer" / "config.json")],
            ready=http_answers(f"{issuer_url}/.well-known/openid-configuration"),
            pidfile=layout.pidfile("issuer"),
            log=layout.log("issuer"),
            cwd=REPO,
        ),
        Service(
            name="core",
            argv=[py, "-m", "core", "--config", str(d / "core.yaml")],
            ready=tcp_banner("127.0.0.1", layout.ports.core),
            pidfile=layout.pidfile("core"),
            log=layout.log("core"),
            cwd=REPO,
        ),
        Service(
            name="envoy",
            argv=[str(bin_dir / "envoy"), "-c", str(d / "envoy.yaml"), "--log-level", "warn",
                  "--base-id", str(layout.ports.envoy)],
            ready=http_answers(f"http://127.0.0.1:{layout.ports.envoy_admin}/ready"),
            pidfile=layout.pidfile("envoy"),
            log=layout.log("envoy"),
            cwd=REPO,
        ),
    ]


def env(layout: Layout) -> dict[str, str]:
    cfg_file = _dir(layout) / "issuer" / "config.json"
    out = {
        "F7T_URL": f"http://127.0.0.1:{layout.ports.envoy}",
        "F7T_GRPC_TARGET": f"127.0.0.1:{layout.ports.envoy}",
        "F7T_SYSTEM": SYSTEM,
        "F7T_PORTAL_URL": portal_url(layout),
    }
    if cfg_file.exists():
        issuer = json.loads(cfg_file.read_text())
        out["F7T_ISSUER"] = issuer["issuer"]
        out["F7T_TOKEN_URL"] = f"{issuer['issuer']}/protocol/openid-connect/token"
        out["F7T_AUDIENCE"] = issuer["audience"]
        for u in issuer.get("users", []):  # logins at the issuer's form (the portal)
            out[f"F7T_{u['username'].upper()}_PASSWORD"] = u["password"]
        for c in issuer["clients"]:
            if c.get("username"):
                u = c["username"].upper()
                out[f"F7T_{u}_CLIENT_ID"] = c["client_id"]
                out[f"F7T_{u}_CLIENT_SECRET"] = c["client_secret"]
    return out
