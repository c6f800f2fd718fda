"""One typed configuration object for the core, read from a YAML file (path in F7T_CONFIG).

Everything that differs between the local stack and a real centre lives here: systems, SSH
hosts and host keys, the SSH CA, the scheduler, the S3 endpoint, the task store and the ports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class TLSConfig:
    """mTLS between Envoy and the core: the core only accepts clients with a cert from client_ca."""

    cert: Path
    key: Path
    client_ca: Path


@dataclass(frozen=True)
class SSHConfig:
    host: str
    port: int = 22
    known_hosts: Path | None = None
    connect_timeout: float = 10.0
    command_timeout: float = 60.0
    pool_size: int = 4
    channels_per_connection: int = 8


@dataclass(frozen=True)
class FileSystemConfig:
    path: str
    data_type: str = "users"
    default_work_dir: bool = False


@dataclass(frozen=True)
class SchedulerConfig:
    type: str = "slurm"
    version: str = ""
    # environment exported before every scheduler command (e.g. SLURM_CONF on a login node
    # whose sessions do not set it)
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    # a read-only question to the controller still running after this many seconds is checked with
    # `scontrol ping`; if the controller is down the call ends at once with 503
    ping_after: float = 1.0
    ping_timeout: float = 5.0


@dataclass(frozen=True)
class StreamerConfig:
    """Transfer method "streamer" (FirecREST v2's firecrest-streamer): a job runs the streamer's
    server next to the file and the client connects to it directly with the coordinates the
    gateway hands out (a port range, the addresses the node is reached at, a one-time secret).

    `python` is an interpreter on the compute nodes that has the `firecrest-streamer` package (the
    version pyfirecrest's client uses); nothing is installed at run time."""

    python: str
    host: str = "localhost"  # the interface the server listens on
    public_ips: tuple[str, ...] = ("localhost",)  # where clients reach the node
    port_range: tuple[int, int] = (50000, 50100)
    wait_timeout: int = 86400  # seconds the server waits for its client
    inbound_transfer_limit: int = 5 * 1024**3
    ready_timeout: float = 30.0  # seconds the answer waits for the server to listen


@dataclass(frozen=True)
class SystemConfig:
    name: str
    ssh: SSHConfig
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    filesystems: tuple[FileSystemConfig, ...] = ()
    datatransfer_jobs_directives: tuple[str, ...] = ()
    max_ops_file_size: int = 5 * 1024 * 1024
    streamer: StreamerConfig | None = None


@dataclass(frozen=True)
class S3Config:
    endpoint: str  # host:port
    access_key: str
    secret_key: str
    secure: bool = False
    region: str = "us-east-1"
    bucket: str = "firecrest-staging"
    url_expiry: int = 3600
    multipart_part_size: int = 1024 * 1024 * 1024
    max_part_count: int = 10000
    # host:port written into presigned URLs (what clients and transfer jobs reach), when it differs
    # from `endpoint` (what the core reaches); the store must accept that Host
    public_endpoint: str = ""
    public_secure: bool | None = None
    # seconds between two passes of the staging janitor (orphans, expired downloads, stale uploads)
    janitor_interval: float = 60.0


@dataclass(frozen=True)
class TaskStoreConfig:
    """Where tasks live. `sqlite` (default): one file, one core (`path`). `postgres`: one database
    shared by every core replica (`dsn`, a libpq connection string, or `dsn_file` holding it)."""

    type: str = "sqlite"
    path: Path = Path("/var/lib/firecrest/tasks.db")
    dsn: str = ""
    dsn_file: Path | None = None
    # seconds between two re-reads of a task by its waiters (notifications usually wake them first)
    poll_interval: float = 2.0

    def connection_string(self) -> str:
        if self.dsn_file is not None:
            return self.dsn_file.read_text().strip()
        return self.dsn


@dataclass(frozen=True)
class CertificateConfig:
    ca_key: Path
    lifetime: int = 600  # seconds a per-user certificate is valid
    key_id_prefix: str = "firecrest"
    # the accounts the gateway acts for (certificates, every SSH-backed call): members of one of
    # these Unix groups (any account when empty) whose uid is in this range (any uid but 0 when None)
    allowed_groups: tuple[str, ...] = ()
    allowed_uids: tuple[int, int] | None = (1000, 60000)


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus metrics on `listen` (host:port). With `tls`, HTTPS that only answers a client
    certificate from tls.client_ca (the scraper's), so other local users cannot read it."""

    listen: str
    tls: TLSConfig | None = None


@dataclass(frozen=True)
class Config:
    listen: str
    identity_header: str
    certificate: CertificateConfig
    systems: tuple[SystemConfig, ...]
    tls: TLSConfig | None = None
    task_store: TaskStoreConfig = field(default_factory=TaskStoreConfig)
    s3: S3Config | None = None
    worker_threads: int = 32
    # SSH commands that may wait for one of the worker_threads; more are refused at once (503)
    max_queued_commands: int = 1024
    app_version: str = "2.5.6"
    # finished tasks (and the gateway's directories for them in users' homes) are purged after this
    task_retention: float = 30 * 86400.0
    task_purge_interval: float = 3600.0
    # on SIGTERM, seconds the calls in flight get to finish before the core exits
    shutdown_grace: float = 30.0
    metrics: MetricsConfig | None = None

    def system(self, name: str) -> SystemConfig | None:
        for s in self.systems:
            if s.name.lower() == name.lower():
                return s
        return None


def _path(v: Any) -> Path | None:
    return Path(v) if v else None


def _task_store(d: dict[str, Any]) -> TaskStoreConfig:
    ts = dict(d.get("task_store") or {})
    if "task_db" in d and "path" not in ts:  # the older spelling of the SQLite file
        ts["path"] = d["task_db"]
    if "path" in ts:
        ts["path"] = Path(ts["path"])
    if ts.get("dsn_file"):
        ts["dsn_file"] = Path(ts["dsn_file"])
    cfg = TaskStoreConfig(**ts)
    if cfg.type not in ("sqlite", "postgres"):
        raise ValueError(f"task_store.type must be sqlite or postgres, not {cfg.type!r}")
    if cfg.type == "postgres" and not (cfg.dsn or cfg.dsn_file):
        raise ValueError("task_store.type postgres needs task_store.dsn or task_store.dsn_file")
    return cfg


def _uid_range(v: Any) -> tuple[int, int] | None:
    if v is None:
        return None
    lo, hi = (int(x) for x in v)
    return lo, hi


def _streamer(d: dict[str, Any] | None) -> StreamerConfig | None:
    if not d:
        return None
    d = dict(d)
    if "public_ips" in d:
        d["public_ips"] = tuple(d["public_ips"])
    if "port_range" in d:
        low, high = (int(p) for p in d["port_range"])
        if not 0 < low <= high < 65536:
            raise ValueError(f"streamer.port_range {d['port_range']!r} is not a range of ports")
        d["port_range"] = (low, high)
    return StreamerConfig(**d)


def from_dict(d: dict[str, Any]) -> Config:
    systems = []
    for s in d["systems"]:
        ssh = dict(s["ssh"])
        if ssh.get("known_hosts"):
            ssh["known_hosts"] = Path(ssh["known_hosts"])
        systems.append(
            SystemConfig(
                name=s["name"],
                ssh=SSHConfig(**ssh),
                scheduler=SchedulerConfig(**s.get("scheduler", {})),
                filesystems=tuple(FileSystemConfig(**f) for f in s.get("filesystems", [])),
                datatransfer_jobs_directives=tuple(s.get("datatransfer_jobs_directives", [])),
                max_ops_file_size=int(s.get("max_ops_file_size", 5 * 1024 * 1024)),
                streamer=_streamer(s.get("streamer")),
            )
        )
    tls = d.get("tls")
    cert = d["certificate"]
    return Config(
        listen=d.get("listen", "127.0.0.1:28490"),
        identity_header=d.get("identity_header", "x-f7t-user").lower(),
        certificate=CertificateConfig(
            ca_key=Path(cert["ca_key"]),
            lifetime=int(cert.get("lifetime", 600)),
            key_id_prefix=cert.get("key_id_prefix", "firecrest"),
            allowed_groups=tuple(cert.get("allowed_groups", ())),
            allowed_uids=_uid_range(cert.get("allowed_uids", [1000, 60000])),
        ),
        systems=tuple(systems),
        tls=TLSConfig(Path(tls["cert"]), Path(tls["key"]), Path(tls["client_ca"])) if tls else None,
        task_store=_task_store(d),
        s3=S3Config(**d["s3"]) if d.get("s3") else None,
        worker_threads=int(d.get("worker_threads", 32)),
        max_queued_commands=int(d.get("max_queued_commands", 1024)),
        app_version=str(d.get("app_version", "2.5.6")),
        task_retention=float(d.get("task_retention", 30 * 86400.0)),
        task_purge_interval=float(d.get("task_purge_interval", 3600.0)),
        shutdown_grace=float(d.get("shutdown_grace", 30.0)),
        metrics=_metrics(d.get("metrics")),
    )


def _metrics(m: dict[str, Any] | None) -> MetricsConfig | None:
    if not m:
        return None
    tls = m.get("tls")
    return MetricsConfig(
        listen=m["listen"],
        tls=TLSConfig(Path(tls["cert"]), Path(tls["key"]), Path(tls["client_ca"])) if tls else None,
    )


def load(path: str | os.PathLike[str] | None = None) -> Config:
    p = path or os.environ.get("F7T_CONFIG")
    if not p:
        raise SystemExit("no configuration: pass --config or set F7T_CONFIG")
    with open(p, encoding="utf-8") as f:
        return from_dict(yaml.safe_load(f))
