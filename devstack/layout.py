"""Where the local stack keeps its state, and which ports it uses.

Everything lives under one state directory outside the source tree
(``$F7T_STACK_DIR``, default ``/var/lib/firecrest-stack``).  Nothing in the
repository is written to.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, fields
from pathlib import Path

DEFAULT_STATE_DIR = "/var/lib/firecrest-stack"
DEFAULT_PORT_BASE = 28400

# offset of each port from F7T_PORT_BASE
_PORT_OFFSETS = {
    "envoy": 0,
    "envoy_admin": 1,
    "mariadb": 6,
    "slurmctld": 17,
    "slurmd": 18,
    "slurmdbd": 19,
    "sshd": 22,
    "issuer": 43,
    "core": 51,
    "postgres": 59,
    "core_metrics": 80,
    "prometheus": 93,
    "envoy_stats": 94,
    "s3": 90,
}


@dataclass(frozen=True)
class Ports:
    """TCP ports of the stack, all bound to 127.0.0.1.

    Defaults (F7T_PORT_BASE=28400): envoy 28400 (REST + native gRPC listener),
    envoy_admin 28401 (unused: Envoy's admin is a Unix socket), mariadb 28406, slurmctld 28417, slurmd 28418,
    slurmdbd 28419, sshd 28422, issuer 28443, core 28451 (gRPC core, behind
    Envoy; replicas 28452...), postgres 28459 (task store of replicated cores), core_metrics 28480.. (each core replica's Prometheus metrics,
    HTTPS with a client certificate), s3 28490 (s3rver), prometheus 28493 (Prometheus server),
    envoy_stats 28494 (Envoy's Prometheus stats only, nothing else of its admin interface).
    Gateway profiles (devstack/gateway.py) take blocks of their own: ha 28460-28469, solo
    28470-28479.

    ``Ports.from_env()`` honours ``F7T_PORT_BASE`` (all ports move with it)
    and per-port overrides ``F7T_PORT_<NAME>`` (e.g. ``F7T_PORT_SSHD=2222``).
    """

    envoy: int = DEFAULT_PORT_BASE + _PORT_OFFSETS["envoy"]
    envoy_admin: int = DEFAULT_PORT_BASE + _PORT_OFFSETS["envoy_admin"]
    mariadb: int = DEFAULT_PORT_BASE + _PORT_OFFSETS["mariadb"]
    slurmctld: int = DEFAULT_PORT_BASE + _PORT_OFFSETS["slurmctld"]
    slurmd: int = DEFAULT_PORT_BASE + _PORT_OFFSETS["slurmd"]
    slurmdbd: int = DEFAULT_PORT_BASE + _PORT_OFFSETS["slurmdbd"]
    sshd: int = DEFAULT_PORT_BASE + _PORT_OFFSETS["sshd"]
    issuer: int = DEFAULT_PORT_BASE + _PORT_OFFSETS["issuer"]
    core: int = DEFAULT_PORT_BASE + _PORT_OFFSETS["core"]
    postgres: int = DEFAULT_PORT_BASE + _PORT_OFFSETS["postgres"]
    core_metrics: int = DEFAULT_PORT_BASE + _PORT_OFFSETS["core_metrics"]
    prometheus: int = DEFAULT_PORT_BASE + _PORT_OFFSETS["prometheus"]
    envoy_stats: int = DEFAULT_PORT_BASE + _PORT_OFFSETS["envoy_stats"]
    s3: int = DEFAULT_PORT_BASE + _PORT_OFFSETS["s3"]

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(**{name: base + off for name, off in _PORT_OFFSETS.items()})

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Ports:
        environ = dict(os.environ if environ is None else environ)
        base = int(environ.get("F7T_PORT_BASE", DEFAULT_PORT_BASE))
        values = {name: base + off for name, off in _PORT_OFFSETS.items()}
        for f in fields(cls):
            override = environ.get(f"F7T_PORT_{f.name.upper()}")
            if override:
                values[f.name] = int(override)
        return cls(**values)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Layout:
    """Paths of the local stack under ``state_dir`` (plus its ``ports``).

    Directories
      state_dir         root of all state (mode 755: users traverse it)
      run_dir           <state>/run        pidfiles written by the tool (``pidfile(name)``)
      log_dir           <state>/log        one log per service (``log(name)``)
      ca_dir            <state>/ca         (700) user CA
      ssh_dir           <state>/ssh        sshd config and host key
      munge_dir         <state>/munge      (700, owner munge) key, seed, pid
      munge_run_dir     <state>/munge-run  (755, owner munge) munge socket
      mariadb_dir       <state>/mariadb    (owner mysql) datadir + socket dir
      slurm_dir         <state>/slurm      (755) slurm.conf, cgroup.conf, slurmdbd.conf
      slurm_state_dir   <state>/slurm/state   StateSaveLocation
      slurmd_spool_dir  <state>/slurm/spool   SlurmdSpoolDir
      s3_dir            <state>/s3         s3rver launcher; ``s3_data_dir`` = <state>/s3/data
      npm_dir           <state>/npm        npm prefix holding node_modules/@20minutes/s3rver
      gateway_dir       <state>/gateway    for the gateway's own configs (issuer, core, envoy);
                                           devstack/gateway.py owns its contents

    Files
      ca_key, ca_pub         ed25519 user CA (OpenSSH private key, 600) and its public key;
                             sshd trusts it via TrustedUserCAKeys
      ssh_host_key, ssh_host_pub   sshd host key (ed25519)
      sshd_config            sshd's config
      munge_key, munge_socket      munge key (owner munge, 600), munge socket path
      mariadb_datadir, mariadb_socket
      slurm_conf             slurm.conf (644; export SLURM_CONF=<this> for every Slurm client)
      slurmdbd_conf, cgroup_conf
      credentials_file       <state>/credentials.json (600): db_password, s3_access_key,
                             s3_secret_key; read with ``credentials()``

    Helpers
      pidfile(name) -> <run_dir>/<name>.pid,  log(name) -> <log_dir>/<name>.log
      credentials() -> dict (created with random values on first use)
      ssh_host = "127.0.0.1", s3_url = "http://127.0.0.1:<ports.s3>"
      slurm_env() -> {"SLURM_CONF": ...}
      cluster_name = "f7t", slurm_account = "f7t", users = ("alice", "bob", "carol"),
      users_group = "f7t" (shared Unix group of the demo users)
    """

    cluster_name = "f7t"
    slurm_account = "f7t"
    users = ("alice", "bob", "carol")
    users_group = "f7t"
    ssh_host = "127.0.0.1"
    # the unprivileged system user the gateway's services run as (devstack/lockdown.py)
    gateway_user = "firecrest"

    def __init__(self, state_dir: str | os.PathLike[str], ports: Ports | None = None) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.ports = ports or Ports()
        s = self.state_dir
        self.run_dir = s / "run"
        self.log_dir = s / "log"
        self.ca_dir = s / "ca"
        self.ca_key = self.ca_dir / "user_ca"
        self.ca_pub = self.ca_dir / "user_ca.pub"
        self.ssh_dir = s / "ssh"
        self.ssh_host_key = self.ssh_dir / "ssh_host_ed25519_key"
        self.ssh_host_pub = self.ssh_dir / "ssh_host_ed25519_key.pub"
        self.sshd_config = self.ssh_dir / "sshd_config"
        self.munge_dir = s / "munge"
        self.munge_key = self.munge_dir / "munge.key"
        self.munge_run_dir = s / "munge-run"
        self.munge_socket = self.munge_run_dir / "munge.socket.2"
        self.mariadb_dir = s / "mariadb"
        self.mariadb_datadir = self.mariadb_dir / "data"
        self.mariadb_socket = self.mariadb_dir / "run" / "mysqld.sock"
        self.slurm_dir = s / "slurm"
        self.slurm_conf = self.slurm_dir / "slurm.conf"
        self.slurmdbd_conf = self.slurm_dir / "slurmdbd.conf"
        self.cgroup_conf = self.slurm_dir / "cgroup.conf"
        self.slurm_state_dir = self.slurm_dir / "state"
        self.slurmd_spool_dir = self.slurm_dir / "spool"
        self.s3_dir = s / "s3"
        self.s3_data_dir = self.s3_dir / "data"
        self.npm_dir = s / "npm"
        self.gateway_dir = s / "gateway"
        # Envoy's admin interface: a Unix socket inside the gateway user's 0700 directory
        self.envoy_admin_socket = self.gateway_dir / "envoy-admin.sock"
        self.credentials_file = s / "credentials.json"

    def __repr__(self) -> str:
        return f"Layout({str(self.state_dir)!r}, {self.ports!r})"

    def pidfile(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    def slurm_env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.slurm_conf)}

    def credentials(self) -> dict[str, str]:
        """Generated secrets of the stack (created on first use, then stable)."""
        try:
            data: dict[str, str] = json.loads(self.credentials_file.read_text())
        except FileNotFoundError:
            data = {}
        wanted = {
            "db_password": lambda: secrets.token_urlsafe(18),
            "s3_access_key": lambda: "F7T" + secrets.token_hex(8).upper(),
            "s3_secret_key": lambda: secrets.token_urlsafe(30),
        }
        missing = [k for k in wanted if k not in data]
        if missing:
            for k in missing:
                data[k] = wanted[k]()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.credentials_file.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, indent=2)
            os.replace(tmp, self.credentials_file)
        return data


def load_layout() -> Layout:
    """The Layout for the current environment (F7T_STACK_DIR, F7T_PORT_BASE, F7T_PORT_<NAME>)."""
    return Layout(os.environ.get("F7T_STACK_DIR", DEFAULT_STATE_DIR), Ports.from_env())
