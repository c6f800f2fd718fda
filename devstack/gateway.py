"""The gateway part of the local stack: the development OIDC issuer, the gRPC core and Envoy.

prepare() writes their configuration under <state>/gateway: the issuer's clients and key, an
internal CA with the core's server certificate and Envoy's client certificate (mTLS: nothing but
Envoy can talk to the core), the core's YAML config and Envoy's rendered config. A real centre
writes the same three files by hand: the code reads no local-stack fact from anywhere else.

Profiles: the same gateway in other shapes, side by side on the same infrastructure (sshd, Slurm,
S3, the issuer). `default` is the stack's own (one core and SQLite; F7T_CORE_REPLICAS=N starts N
cores, which share PostgreSQL). `ha` is N=2 cores on PostgreSQL behind an Envoy of its own, and
`solo` one core on SQLite behind its own Envoy: tests kill and restart those cores without
disturbing anyone else (`firecrest-stack up --profile ha`, `firecrest-stack env --profile ha`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devstack import portal, postgres
from devstack.infra import find_docs_renderer
from devstack.layout import Layout
from devstack.lockdown import UMASK, envoy_binary, gateway_python
from devstack.services import Service, http_answers, http_unix_ok, tcp_banner
from edge.envoy_config import DOCS_PAGE, EdgeConfig
from edge.envoy_config import render as render_envoy
from edge.issuer.config import DEFAULT_SCOPE, PORTAL_CLIENT_ID, add_users, make_config

REPO = Path(__file__).resolve().parents[1]
SYSTEM = "cluster"
CORE_SNI = "core.firecrest.internal"
IDENTITY_HEADER = "x-f7t-user"


def _dir(layout: Layout) -> Path:
    return layout.gateway_dir


# ---------------------------------------------------------------- profiles
@dataclass(frozen=True)
class Profile:
    name: str
    replicas: int = 1
    task_store: str = "sqlite"  # or postgres
    # None: the stack's own ports; else envoy at F7T_PORT_BASE+offset, its admin +1, cores +2...
    offset: int | None = None

    @property
    def prefix(self) -> str:
        return "" if self.name == "default" else f"{self.name}-"

    def dir(self, layout: Layout) -> Path:
        return layout.gateway_dir if self.name == "default" else layout.state_dir / f"gateway-{self.name}"

    def envoy_port(self, layout: Layout) -> int:
        return layout.ports.envoy if self.offset is None else layout.ports.envoy + self.offset

    def admin_socket(self, layout: Layout) -> Path:
        """Envoy's admin interface: a Unix socket in the gateway user's 0700 directory."""
        return layout.envoy_admin_socket if self.offset is None else self.dir(layout) / "envoy-admin.sock"

    def core_port(self, layout: Layout, i: int) -> int:
        base = layout.ports.core if self.offset is None else layout.ports.envoy + self.offset + 2
        return base + i - 1

    def core_name(self, i: int) -> str:
        return f"{self.prefix}core" + (f"-{i}" if i > 1 else "")

    def database(self) -> str:
        return f"firecrest_{self.name}"


PROFILES = {
    "ha": Profile("ha", replicas=2, task_store="postgres", offset=60),
    "solo": Profile("solo", replicas=1, task_store="sqlite", offset=70),
}
MAX_REPLICAS = 7  # the default profile's cores take ports core .. core+6 (postgres is core+8)


def profile(name: str | None = None) -> Profile:
    """A named profile; `default` reads F7T_CORE_REPLICAS and F7T_TASK_STORE."""
    name = name or os.environ.get("F7T_GATEWAY_PROFILE") or "default"
    if name in PROFILES:
        return PROFILES[name]
    if name != "default":
        raise ValueError(f"unknown gateway profile {name!r} (default, {', '.join(PROFILES)})")
    replicas = int(os.environ.get("F7T_CORE_REPLICAS", "1"))
    if not 1 <= replicas <= MAX_REPLICAS:
        raise ValueError(f"F7T_CORE_REPLICAS must be 1..{MAX_REPLICAS}")
    store = os.environ.get("F7T_TASK_STORE") or ("postgres" if replicas > 1 else "sqlite")
    if store not in ("sqlite", "postgres") or (replicas > 1 and store == "sqlite"):
        raise ValueError("F7T_TASK_STORE must be sqlite (one core) or postgres")
    return Profile("default", replicas=replicas, task_store=store)


# the portal's access tokens live this long (seconds), so its sessions show refreshing at work
PORTAL_TOKEN_LIFETIME = int(os.environ.get("F7T_PORTAL_TOKEN_LIFETIME", "20"))


def portal_origin(layout: Layout) -> str:
    """The web portal is served by the default profile's Envoy."""
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


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


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


def _ensure_metrics_tls(layout: Layout) -> Path:
    """A CA of its own for metrics scrapers, and Prometheus's client certificate: a certificate
    from the internal CA would also open the core's gRPC port, which only Envoy may use."""
    d = _dir(layout) / "tls"
    if (d / "prometheus.crt").exists():
        return d
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "firecrest metrics CA")])
    ca = _cert("firecrest metrics CA", ca_key, ca_name, ca_key, ca=True)
    pem = serialization.Encoding.PEM
    _write(d / "metrics-ca.crt", ca.public_bytes(pem), 0o644)
    key = _key()
    _write(d / "prometheus.key", _pem_key(key))
    _write(d / "prometheus.crt",
           _cert("prometheus", key, ca_name, ca_key, san="prometheus.firecrest.internal", client=True).public_bytes(pem),
           0o644)
    return d


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
def _core_config(layout: Layout, prof: Profile, replica: int) -> dict:
    tls = _dir(layout) / "tls"
    known_hosts = _dir(layout) / "known_hosts"
    host_pub = layout.ssh_host_pub.read_text().split()
    known_hosts.write_text(f"[{layout.ssh_host}]:{layout.ports.sshd} {host_pub[0]} {host_pub[1]}\n")
    creds = layout.credentials()
    return {
        "listen": f"127.0.0.1:{prof.core_port(layout, replica)}",
        "identity_header": IDENTITY_HEADER,
        "tls": {"cert": str(tls / "core.crt"), "key": str(tls / "core.key"), "client_ca": str(tls / "ca.crt")},
        # certificates (and so every SSH-backed call) only for the centre's users: here the
        # members of the demo users' group (alice, bob), never system accounts
        "certificate": {"ca_key": str(layout.ca_key), "lifetime": 600, "allowed_groups": [layout.users_group]},
        "task_store": _task_store(layout, prof),
        # SIGTERM: calls in flight get this long to finish (firecrest-stack waits 30 s, then kills)
        "shutdown_grace": 20,
        **(
            {
                "metrics": {
                    "listen": f"127.0.0.1:{layout.ports.core_metrics + replica - 1}",
                    "tls": {"cert": str(tls / "core.crt"), "key": str(tls / "core.key"),
                            "client_ca": str(tls / "metrics-ca.crt")},
                }
            }
            if prof.name == "default"
            else {}
        ),
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
                "streamer": {
                    "python": str(_streamer_python(layout)),
                    "host": "127.0.0.1",
                    "public_ips": ["127.0.0.1"],
                    "port_range": [layout.ports.envoy + STREAMER_PORTS[0], layout.ports.envoy + STREAMER_PORTS[1]],
                    "wait_timeout": 600,
                },
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


def _task_store(layout: Layout, prof: Profile) -> dict:
    if prof.task_store == "postgres":
        f = prof.dir(layout) / "task-store.dsn"
        _write_if_changed(f, postgres.dsn(layout, prof.database()) + "\n")
        f.chmod(0o600)
        return {"type": "postgres", "dsn_file": str(f)}
    return {"type": "sqlite", "path": str(prof.dir(layout) / "tasks.db")}


def _edge_config(layout: Layout, issuer: dict, prof: Profile) -> dict:
    tls = _dir(layout) / "tls"
    return {
        "issuer": issuer["issuer"],
        "audiences": [issuer["audience"]],
        "jwks_uri": f"{issuer['issuer']}/protocol/openid-connect/certs",
        "username_claim": issuer.get("username_claim", "preferred_username"),
        "identity_header": IDENTITY_HEADER,
        "listen_address": "127.0.0.1",
        "listen_port": prof.envoy_port(layout),
        "admin_socket": str(prof.admin_socket(layout)),
        # generous enough for the test suite and benchmarks from one address; a flood beyond is
        # answered 429 before its token is even looked at
        "rate_limit_per_address": 5000,
        "rate_limit_address_burst": 10000,
        "rate_limit_per_user": 2000,
        "rate_limit_user_burst": 4000,
        "access_log": str(layout.log(f"{prof.prefix}envoy-access")),
        "core_address": f"127.0.0.1:{prof.core_port(layout, 1)}",
        "core_addresses": [f"127.0.0.1:{prof.core_port(layout, i)}" for i in range(1, prof.replicas + 1)],
        "core_sni": CORE_SNI,
        "client_cert": str(tls / "envoy-client.crt"),
        "client_key": str(tls / "envoy-client.key"),
        "core_ca": str(tls / "ca.crt"),
        "lua_out": str(prof.dir(layout) / "filter.lua"),
        "docs_dir": str(find_docs_renderer(layout) or ""),
        # Envoy's Prometheus stats on loopback (the rest of its admin interface stays on the socket)
        "stats_port": layout.ports.envoy_stats if prof.name == "default" else 0,
        **({
            # the web portal and the browser origin it runs in (CORS), on the default profile only
            "cors_allowed_origins": [portal_origin(layout)],
            "portal_dir": str(portal.DIST),
            "portal_config": str(_dir(layout) / "portal-config.json"),
            "portal_connect_origins": [_origin(issuer["issuer"]), layout.s3_url],
        } if prof.name == "default" else {}),
    }


def _prometheus_config(layout: Layout, prof: Profile) -> dict:
    """Prometheus scrapes the cores (HTTPS, its own client certificate) and Envoy's stats."""
    tls = _dir(layout) / "tls"
    return {
        "global": {"scrape_interval": "5s", "evaluation_interval": "15s"},
        "scrape_configs": [
            {
                "job_name": "core",
                "scheme": "https",
                "tls_config": {
                    "ca_file": str(tls / "ca.crt"),
                    "server_name": CORE_SNI,
                    "cert_file": str(tls / "prometheus.crt"),
                    "key_file": str(tls / "prometheus.key"),
                },
                "static_configs": [
                    {"targets": [f"127.0.0.1:{layout.ports.core_metrics + i}" for i in range(prof.replicas)]}
                ],
            },
            {
                "job_name": "envoy",
                "metrics_path": "/stats/prometheus",
                "static_configs": [{"targets": [f"127.0.0.1:{layout.ports.envoy_stats}"]}],
            },
        ],
    }


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


STREAMER_PORTS = (23, 32)  # offsets from F7T_PORT_BASE: the streamer transfer jobs' ports


def _streamer_python(layout: Layout) -> Path:
    return layout.state_dir / "streamer" / "venv" / "bin" / "python"


def ensure_streamer(layout: Layout) -> Path:
    """A venv with `websockets` (the version the gateway's own venv has) for the streamer server that
    users' transfer jobs run (core/adapters/streamer_job.py): built from the system's Python (the
    gateway's venv may live where users cannot enter), under the world-readable state dir."""
    from importlib.metadata import version

    want = version("websockets")
    venv = layout.state_dir / "streamer" / "venv"
    stamp = venv / f".installed-{want}"
    if not stamp.exists():
        base = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
        subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check",
                        f"websockets=={want}"], check=True)
        for p in (layout.state_dir / "streamer", *venv.rglob("*")):  # whatever the umask was
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | (0o055 if p.is_dir() else 0o044))
        stamp.touch()
    return _streamer_python(layout)


def code_digest(*dirs: str) -> str:
    """A digest of the Python and shell sources under these directories of the checkout."""
    h = hashlib.sha256()
    for d in dirs:
        for f in sorted((REPO / d).rglob("*")):
            if f.suffix in (".py", ".sh") and "__pycache__" not in f.parts:
                h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def prepare(layout: Layout, prof: Profile | None = None, log: Callable[[str], None] = print) -> set[str]:
    """Write the gateway's configs and build the portal; return the services whose config changed."""
    prof = prof or profile()
    d = _dir(layout)
    d.mkdir(parents=True, exist_ok=True)
    pd = prof.dir(layout)
    pd.mkdir(parents=True, exist_ok=True)
    before = (d / "issuer" / "config.json").read_text() if (d / "issuer" / "config.json").exists() else ""
    ensure_streamer(layout)
    issuer = _issuer_config(layout)
    _ensure_tls(layout)
    _ensure_metrics_tls(layout)
    if prof.task_store == "postgres":
        postgres.ensure_cluster(layout, None)
    changed = set()
    code = code_digest("core")
    if before and (d / "issuer" / "config.json").read_text() != before:  # e.g. the portal's client added
        changed.add("issuer")
    if add_users(d / "issuer", list(layout.users)):  # a user added to the stack since it was made
        issuer = _issuer_config(layout)
        changed.add("issuer")
    if prof.name == "default":
        portal.build(log)
        _write_if_changed(d / "portal-config.json", json.dumps(_portal_config(layout, issuer), indent=2) + "\n")
    for i in range(1, prof.replicas + 1):
        name = prof.core_name(i)
        # the code's digest too: `up` after a change to the core's code restarts the cores
        cfg = yaml.safe_dump(_core_config(layout, prof, i), sort_keys=False) + f"# code sha256 {code}\n"
        if _write_if_changed(pd / f"{name.removeprefix(prof.prefix)}.yaml", cfg):
            changed.add(name)
    edge = _edge_config(layout, issuer, prof)
    lua_before = Path(edge["lua_out"]).read_text() if Path(edge["lua_out"]).exists() else ""
    _write_if_changed(pd / "edge.yaml", yaml.safe_dump(edge, sort_keys=False))
    ecfg = EdgeConfig(**edge)
    # Envoy reads these files once, at start: a regenerated one must restart it like a new config
    inputs = hashlib.sha256(b"".join(Path(f).read_bytes() for f in (ecfg.descriptor, ecfg.openapi, DOCS_PAGE)))
    rendered = render_envoy(ecfg) + f"# inputs sha256 {inputs.hexdigest()}\n"
    envoy_changed = _write_if_changed(pd / "envoy.yaml", rendered)
    if prof.name == "default" and _write_if_changed(
        d / "prometheus.yml", yaml.safe_dump(_prometheus_config(layout, prof), sort_keys=False)
    ):
        changed.add("prometheus")
    if envoy_changed or Path(edge["lua_out"]).read_text() != lua_before:
        changed.add(f"{prof.prefix}envoy")
    return changed


def started(layout: Layout, svc: Service, prof: Profile | None = None) -> None:
    """What must happen once a service is up, before the next one starts."""
    prof = prof or profile()
    if svc.name == "postgres":
        postgres.ensure_database(layout, prof.database())


def services(layout: Layout, prof: Profile | None = None) -> list[Service]:
    """The profile's services in start order: the issuer, PostgreSQL if it needs it, its cores,
    its Envoy."""
    prof = prof or profile()
    d = _dir(layout)
    pd = prof.dir(layout)
    py, py_env = gateway_python(layout.gateway_user)
    issuer = json.loads((d / "issuer" / "config.json").read_text()) if (d / "issuer" / "config.json").exists() else None
    issuer_url = issuer["issuer"] if issuer else f"http://127.0.0.1:{layout.ports.issuer}/realms/f7t"
    out = [
        Service(
            name="issuer",
            argv=[py, "-m", "edge.issuer", "--config", str(d / "issuer" / "config.json")],
            ready=http_answers(f"{issuer_url}/.well-known/openid-configuration"),
            pidfile=layout.pidfile("issuer"),
            log=layout.log("issuer"),
            cwd=REPO,
            env=py_env,
            user=layout.gateway_user,
            umask=UMASK,
        )
    ]
    if prof.name == "default":
        out.append(
            Service(
                name="prometheus",
                argv=["/usr/bin/prometheus", f"--config.file={d / 'prometheus.yml'}",
                      f"--storage.tsdb.path={d / 'prometheus'}", "--storage.tsdb.retention.time=2d",
                      f"--web.listen-address=127.0.0.1:{layout.ports.prometheus}"],
                ready=http_answers(f"http://127.0.0.1:{layout.ports.prometheus}/-/ready"),
                pidfile=layout.pidfile("prometheus"),
                log=layout.log("prometheus"),
                cwd=d,
                user=layout.gateway_user,
                umask=UMASK,
            )
        )
    if prof.task_store == "postgres":
        out.append(postgres.service(layout))
    for i in range(1, prof.replicas + 1):
        name = prof.core_name(i)
        out.append(
            Service(
                name=name,
                argv=[py, "-m", "core", "--config", str(pd / f"{name.removeprefix(prof.prefix)}.yaml")],
                ready=tcp_banner("127.0.0.1", prof.core_port(layout, i)),
                pidfile=layout.pidfile(name),
                log=layout.log(name),
                cwd=REPO,
                env=py_env,
                user=layout.gateway_user,
                umask=UMASK,
            )
        )
    out.append(
        Service(
            name=f"{prof.prefix}envoy",
            argv=[envoy_binary(), "-c", str(pd / "envoy.yaml"), "--log-level", "warn",
                  "--base-id", str(prof.envoy_port(layout)), "--disable-hot-restart"],
            ready=http_unix_ok(prof.admin_socket(layout), "/ready"),
            pidfile=layout.pidfile(f"{prof.prefix}envoy"),
            log=layout.log(f"{prof.prefix}envoy"),
            cwd=REPO,
            user=layout.gateway_user,
            umask=UMASK,
        )
    )
    return out


def surplus(layout: Layout, prof: Profile) -> list[Service]:
    """Cores of the profile beyond its replica count (left from an earlier, larger `up`)."""
    bigger = Profile(prof.name, MAX_REPLICAS if prof.name == "default" else prof.replicas, prof.task_store, prof.offset)
    mine = {s.name for s in services(layout, prof)}
    return [s for s in services(layout, bigger) if s.name not in mine and s.name != "postgres"]


def all_services(layout: Layout) -> list[Service]:
    """Every gateway service of every profile that may be running (for `down`), each once."""
    seen: dict[str, Service] = {}
    profiles = [Profile("default", replicas=MAX_REPLICAS, task_store="postgres"), *PROFILES.values()]
    for prof in profiles:
        for svc in services(layout, prof):
            if svc.name == "postgres":
                continue
            seen.setdefault(svc.name, svc)
    out = [svc for svc in seen.values() if svc.name in ("issuer", "core", "envoy") or layout.pidfile(svc.name).exists()]
    if layout.pidfile("postgres").exists():  # after the issuer, before the cores: stopped after them
        out.insert(1, postgres.service(layout))
    return out


def env(layout: Layout, prof: Profile | None = None) -> dict[str, str]:
    prof = prof or profile()
    cfg_file = _dir(layout) / "issuer" / "config.json"
    out = {
        "F7T_URL": f"http://127.0.0.1:{prof.envoy_port(layout)}",
        "F7T_GRPC_TARGET": f"127.0.0.1:{prof.envoy_port(layout)}",
        "F7T_SYSTEM": SYSTEM,
        "F7T_PORTAL_URL": portal_url(layout),
        "F7T_GATEWAY_PROFILE": prof.name,
        "F7T_ENVOY_ADMIN_SOCKET": str(prof.admin_socket(layout)),
        "F7T_CORES": ",".join(
            f"{prof.core_name(i)}=127.0.0.1:{prof.core_port(layout, i)}" for i in range(1, prof.replicas + 1)
        ),
        "F7T_PROMETHEUS_URL": f"http://127.0.0.1:{layout.ports.prometheus}",
        "F7T_ENVOY_STATS_URL": f"http://127.0.0.1:{layout.ports.envoy_stats}",
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
