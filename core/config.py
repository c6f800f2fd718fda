"""One typed configuration object for the core, read from a YAML file (--config or F7T_CONFIG).

Everything that differs between the local stack and a real centre lives here: systems, SSH
hosts and host keys, the SSH CA, the scheduler, the S3 endpoint, the task store, the ports and
the trackers' timings. Every setting is declared once below, with its type, default and meaning;
CONFIGURATION.md is generated from these models (`python -m edge.configref`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from core.settings import ConfigError, Settings, validate

__all__ = [
    "CertificateConfig",
    "Config",
    "ConfigError",
    "FileSystemConfig",
    "JobsConfig",
    "MetricsConfig",
    "S3Config",
    "SSHConfig",
    "SchedulerConfig",
    "StreamerConfig",
    "SystemConfig",
    "TLSConfig",
    "TaskStoreConfig",
    "TransfersConfig",
    "from_dict",
    "load",
]


class TLSConfig(Settings):
    """mTLS: the server's certificate and key, and the CA that signs the only client certificates
    it accepts."""

    cert: Path = Field(description="The server's certificate (PEM).")
    key: Path = Field(description="The server certificate's private key (PEM).")
    client_ca: Path = Field(description="CA certificate (PEM): only clients with a certificate it signed get in.")


class SSHConfig(Settings):
    """How the core reaches the system's login node: SSH as each user, with a certificate from the
    gateway's CA, over a pool of connections per user."""

    host: str = Field(description="The login node's host name or address.")
    port: int = Field(22, ge=1, le=65535, description="sshd's port.")
    known_hosts: Path | None = Field(
        None, description="known_hosts file with the login node's host key; an unknown host key is refused, so "
                          "without it no connection is made.",
    )
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to connect and authenticate.")
    command_timeout: float = Field(60.0, gt=0, description="Seconds a command may run before the call fails.")
    pool_size: int = Field(4, ge=1, description="SSH connections kept per user.")
    channels_per_connection: int = Field(
        8, ge=1, description="Commands run at the same time on one connection (sshd's MaxSessions bounds it)."
    )
    shell_idle_timeout: float = Field(
        60.0, ge=0, description="Commands run in long-lived `/bin/sh` sessions on the connection "
        "(one sshd session saved per command: about 3 ms of latency and of the login node's CPU); a shell idle "
        "for this many seconds is closed. 0: every command gets an exec channel of its own.",
    )


class FileSystemConfig(Settings):
    """A file system of the system: requests for paths outside every listed one are refused."""

    path: str = Field(description="Its mount point (absolute).")
    data_type: str = Field("users", description="FirecREST v2's dataType: users, store, archive, apps, scratch...")
    default_work_dir: bool = Field(False, description="Jobs without a working directory run in the user's "
                                                      "directory here.")


class SchedulerConfig(Settings):
    """The system's workload manager."""

    type: str = Field("slurm", description="Which scheduler adapter runs the system's jobs (core.wiring."
                                           "SCHEDULER_TYPES): slurm.")
    version: str = Field("", description="The scheduler's version, as `GET /status/systems` reports it.")
    env: dict[str, str] = Field(
        default_factory=dict,
        description="Environment exported before every scheduler command (e.g. SLURM_CONF on a login node "
                    "whose sessions do not set it).",
    )
    timeout: float = Field(30.0, gt=0, description="Seconds a scheduler command may run.")
    ping_after: float = Field(
        1.0, gt=0, description="A read-only question to the controller still running this many seconds after it "
                               "was sent (its wait for a free SSH worker does not count) is checked with `scontrol "
                               "ping` (one at a time per system, shared by the calls that ask meanwhile; an answer "
                               "'up' is reused for this long); a controller that is down ends the call with 503 at "
                               "once, and later calls fail fast until a ping answers.",
    )
    ping_timeout: float = Field(5.0, gt=0, description="Seconds `scontrol ping` may take.")


class StreamerConfig(Settings):
    """Transfer method "streamer" (FirecREST v2's firecrest-streamer): a job runs the streamer's
    server next to the file and the client connects to it directly with the coordinates the
    gateway hands out (a port range, the addresses the node is reached at, a one-time secret)."""

    python: str = Field(description="A Python on the compute nodes that has `websockets` (the streamer "
                                    "server's one dependency); nothing is installed at run time.")
    host: str = Field("localhost", description="The interface the server listens on.")
    public_ips: tuple[str, ...] = Field(("localhost",), description="The addresses clients reach the node at.")
    port_range: tuple[int, int] = Field((50000, 50100), description="The ports the server may listen on "
                                                                    "(first, last).")
    wait_timeout: int = Field(86400, gt=0, description="Seconds the server waits for its client.")
    inbound_transfer_limit: int = Field(5 * 1024**3, gt=0, description="Largest upload, in bytes (5 GiB).")
    ready_timeout: float = Field(
        30.0, ge=0, description="Seconds the answer to a streamer transfer waits for the server to listen (e.g. "
                                "while its job is queued)."
    )

    @field_validator("port_range")
    @classmethod
    def _ports(cls, v: tuple[int, int]) -> tuple[int, int]:
        low, high = v
        if not 0 < low <= high < 65536:
            raise ValueError(f"{list(v)} is not a range of ports (first <= last, 1..65535)")
        return v


class SystemConfig(Settings):
    """One HPC system behind the gateway (FirecREST's `system` in every path)."""

    name: str = Field(min_length=1, description="The system's name in the API's paths (compared "
                                                "case-insensitively).")
    ssh: SSHConfig = Field(description="How the core reaches the login node.")
    scheduler: SchedulerConfig = Field(SchedulerConfig(), description="The workload manager.")
    filesystems: tuple[FileSystemConfig, ...] = Field((), description="The file systems users may reach.")
    datatransfer_jobs_directives: tuple[str, ...] = Field(
        (), description="Extra `#SBATCH` lines of the data-mover jobs behind staged transfers (e.g. a partition)."
    )
    max_ops_file_size: int = Field(
        5 * 1024 * 1024, gt=0, description="Largest file, in bytes, for direct upload, download and view (5 MiB); "
                                           "larger ones go through the transfer endpoints.",
    )
    streamer: StreamerConfig | None = Field(None, description="The streamer transfer method; null: not offered.")
    ops_timeout: int = Field(
        30, gt=0, le=3600, description="Seconds a direct file operation (ls, checksum, compress...) may run on "
                                       "the login node before it is stopped (408); longer work goes through the "
                                       "transfer endpoints.",
    )


class S3Config(Settings):
    """The S3 staging store of large transfers (presigned URLs, multipart uploads)."""

    endpoint: str = Field(description="host:port the core reaches the store at.")
    access_key: str = Field(description="The gateway's access key.")
    secret_key: str = Field(repr=False, description="The gateway's secret key.")
    secure: bool = Field(False, description="HTTPS to `endpoint`.")
    region: str = Field("us-east-1", description="The store's region (part of every signature).")
    bucket: str = Field("firecrest-staging", description="The staging bucket (created when missing).")
    url_expiry: int = Field(3600, gt=0, description="Seconds a presigned URL is valid.")
    multipart_part_size: int = Field(1024**3, gt=0, description="Bytes per part of a multipart upload (1 GiB).")
    max_part_count: int = Field(10000, ge=1, le=10000, description="Most parts of one upload (S3 allows 10000).")
    public_endpoint: str = Field(
        "", description="host:port written into presigned URLs (what clients and transfer jobs reach) when it "
                        "differs from `endpoint`; the store must accept that Host. Empty: `endpoint`.",
    )
    public_secure: bool | None = Field(None, description="HTTPS in presigned URLs; null: as `secure`.")
    janitor_interval: float = Field(
        60.0, gt=0, description="Seconds between two passes of the staging janitor (orphans, expired downloads, "
                                "stale uploads), and between two looks at transfer tasks when none is running.",
    )


class TaskStoreConfig(Settings):
    """Where tasks (every job and transfer) live: `sqlite`, one file for one core; `postgres`, one
    database shared by every core replica."""

    type: Literal["sqlite", "postgres"] = Field("sqlite", description="sqlite (embedded, one core) or postgres "
                                                                      "(N core replicas).")
    path: Path = Field(Path("/var/lib/firecrest/tasks.db"), description="sqlite: the database file (older "
                                                                        "configs: top-level `task_db`).")
    dsn: str = Field("", repr=False, description="postgres: a libpq connection string.")
    dsn_file: Path | None = Field(None, description="postgres: a file holding the connection string (instead "
                                                    "of `dsn`, which then stays out of the config).")
    poll_interval: float = Field(
        2.0, gt=0, description="Seconds between two re-reads of a task by its waiters (notifications usually wake "
                               "them first).",
    )

    @model_validator(mode="after")
    def _postgres_needs_a_dsn(self) -> TaskStoreConfig:
        if self.type == "postgres" and not (self.dsn or self.dsn_file):
            raise ValueError("type postgres needs dsn or dsn_file")
        return self

    def connection_string(self) -> str:
        if self.dsn_file is not None:
            return self.dsn_file.read_text().strip()
        return self.dsn


class CertificateConfig(Settings):
    """The SSH user CA: the core signs a short-lived certificate per user with it, which the login
    nodes' sshd trusts (TrustedUserCAKeys)."""

    ca_key: Path = Field(description="The CA's private key (OpenSSH format).")
    lifetime: int = Field(600, gt=0, description="Seconds a per-user certificate is valid.")
    key_id_prefix: str = Field("firecrest", description="Start of each certificate's key id (sshd logs it).")
    allowed_groups: tuple[str, ...] = Field(
        (), description="The accounts the gateway acts for (certificates, every SSH-backed call) are members of "
                        "one of these Unix groups; empty: any account.",
    )
    allowed_uids: tuple[int, int] | None = Field(
        (1000, 60000), description="...and have a uid in this range (first, last); null: any uid but 0.",
    )


class MetricsConfig(Settings):
    """Prometheus metrics. With `tls`, HTTPS that only answers a client certificate from
    tls.client_ca (the scraper's), so other local users cannot read them."""

    listen: str = Field(description="host:port of the metrics endpoint.")
    tls: TLSConfig | None = Field(None, description="HTTPS with client certificates; null: plain HTTP.")


class JobsConfig(Settings):
    """How the core follows job tasks to their final state (every replica follows every unfinished
    job)."""

    poll_interval: float = Field(2.0, gt=0, description="Seconds between two looks at a user's young jobs "
                                                        "(also the least time between two tracker passes).")
    max_poll_interval: float = Field(
        30.0, gt=0, description="At most this many seconds between two looks at a user's jobs (older jobs are "
                                "looked at less often: a tenth of their age).",
    )
    idle_interval: float = Field(
        30.0, gt=0, description="Seconds between two looks for unfinished job tasks when the tracker has none "
                                "(a submission wakes it at once).",
    )
    submit_grace: float = Field(
        180.0, gt=0, description="A job task still without a job this many seconds after its creation lost its "
                                 "submitter (a core that died during sbatch): it is settled by the job's tag "
                                 "(the job exists) or fails. Longer than any sbatch may take.",
    )
    lost_after: float = Field(
        3600.0, gt=0, description="A submitted job the scheduler's accounting still does not know this many "
                                  "seconds after submission fails its task.",
    )
    partial_grace: float = Field(
        600.0, ge=0, description="Seconds to wait for a job's own accounting record when only a partial one is "
                                 "known, before using it.",
    )
    cancel_wait: float = Field(
        10.0, ge=0, description="Seconds a task cancel (`POST /tasks/{id}:cancel`) waits for the job to end "
                                "before answering with the task as it is.",
    )


class TransfersConfig(Settings):
    """How the core follows transfer tasks (data-mover jobs) and cleans the staging store."""

    poll_interval: float = Field(2.0, gt=0, description="Seconds between two looks at running transfers.")
    finishing_interval: float = Field(
        0.5, gt=0, description="Seconds between two looks while a transfer is in its last step (an upload's object "
                               "is being fetched onto the cluster, a download's last part is sent), for at most "
                               "FINISHING_FOR (60) seconds after its job reported that step.",
    )
    lost_after: float = Field(
        3600.0, gt=0, description="A transfer job the scheduler still does not know this many seconds after "
                                  "submission fails its task.",
    )
    orphan_grace: float = Field(
        600.0, ge=0, description="Staged objects without a transfer task are removed by the janitor once they "
                                 "are this many seconds old.",
    )


class Config(Settings):
    """The systems behind the gateway and how the core reaches them (SSH, the user CA, the scheduler),
    where tasks live, the S3 staging store, the core's own listener and metrics, and the timings of
    its trackers."""

    listen: str = Field("127.0.0.1:28490", description="host:port of the core's gRPC server (Envoy's "
                                                       "`core_address`).")
    identity_header: str = Field(
        "x-f7t-user", description="The header Envoy puts the caller's username in (the edge's "
                                  "`identity_header`); lower-cased.",
    )
    certificate: CertificateConfig = Field(description="The SSH user CA and whom the gateway acts for.")
    systems: tuple[SystemConfig, ...] = Field(description="The HPC systems behind the gateway.")
    tls: TLSConfig | None = Field(None, description="mTLS between Envoy and the core (`client_ca` signs Envoy's "
                                                    "client certificate); null: plaintext, with a warning.")
    task_store: TaskStoreConfig = Field(TaskStoreConfig(), description="Where tasks live.")
    health_max_age: float = Field(
        5.0, ge=0, description="Seconds a system's health probes (the SSH banner, the scheduler's ping) are "
                               "reused by /status/systems before they are taken again.",
    )
    s3: S3Config | None = Field(None, description="The staging store of large transfers; null: staged transfers "
                                                  "are refused.")
    worker_threads: int = Field(32, ge=1, description="Threads running blocking SSH and S3 calls.")
    max_queued_commands: int = Field(
        1024, ge=1, description="SSH commands that may wait for one of the worker_threads; a command beyond "
                                "that is refused at once (503, 'the gateway is busy').",
    )
    app_version: str = Field("2.5.6", description="The FirecREST v2 version the core reports.")
    task_retention: float = Field(
        30 * 86400.0, gt=0, description="Seconds finished tasks are kept (30 days); then they and the gateway's "
                                        "directories for them in users' homes are purged.",
    )
    task_purge_interval: float = Field(3600.0, gt=0, description="Seconds between two purges of old tasks.")
    shutdown_grace: float = Field(
        30.0, ge=0, description="On SIGTERM, seconds the calls in flight get to finish before the core exits.",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", description="The core's event loop: uvloop (libuv; about 15% more calls per second of one "
                              "CPU than asyncio's own, BENCHMARKS.md) or asyncio (the standard library's). "
                              "uvloop falls back to asyncio, with a warning, where it is not installed.",
    )
    metrics: MetricsConfig | None = Field(None, description="Prometheus metrics; null: none.")
    jobs: JobsConfig = Field(JobsConfig(), description="Following job tasks.")
    transfers: TransfersConfig = Field(TransfersConfig(), description="Following transfer tasks.")

    @model_validator(mode="before")
    @classmethod
    def _older_spellings(cls, data: Any) -> Any:
        if isinstance(data, dict) and "task_db" in data:  # the older spelling of the SQLite file
            data = dict(data)
            path = data.pop("task_db")
            store = dict(data.get("task_store") or {})
            store.setdefault("path", path)
            data["task_store"] = store
        return data

    @field_validator("identity_header")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()

    def system(self, name: str) -> SystemConfig | None:
        for s in self.systems:
            if s.name.lower() == name.lower():
                return s
        return None


def from_dict(d: Any, where: str = "core config") -> Config:
    """The configuration from parsed YAML; ConfigError names every bad key."""
    return validate(Config, d, where)


def load(path: str | os.PathLike[str] | None = None) -> Config:
    p = path or os.environ.get("F7T_CONFIG")
    if not p:
        raise ConfigError("no configuration: pass --config or set F7T_CONFIG")
    try:
        with open(p, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the configuration: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML: {e}") from None
    return from_dict(data, str(p))
