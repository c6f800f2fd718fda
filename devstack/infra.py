"""Infrastructure of the local stack: sshd (user CA), munge, MariaDB, slurmdbd, slurmctld, slurmd, s3rver."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from devstack.layout import Layout
from devstack.services import Service, command_ok, http_answers, tcp_banner

REPO_ROOT = Path(__file__).resolve().parent.parent
# python3-venv: the streamer's venv for transfer jobs is built from the system's Python
APT_PACKAGES = [
    "slurm-wlm", "munge", "slurmdbd", "mariadb-server", "openssh-server", "postgresql", "prometheus", "python3-venv",
    "acl",  # setfacl: lets the gateway user traverse to a checkout under a private directory
]
S3RVER_PACKAGE = "@20minutes/s3rver@^4"
S3RVER_MODULE = Path("node_modules/@20minutes/s3rver")

Log = Callable[[str], None]


def _run(argv: list[str], **kw) -> subprocess.CompletedProcess[str]:
    kw.setdefault("check", True)
    kw.setdefault("text", True)
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("capture_output", True)
    try:
        return subprocess.run(argv, **kw)
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(
            f"command failed ({exc.returncode}): {' '.join(argv)}\n{exc.stdout or ''}{exc.stderr or ''}"
        ) from exc


# ---------------------------------------------------------------- packages


def _missing_packages(packages: list[str]) -> list[str]:
    r = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n", *packages],
        capture_output=True,
        text=True,
    )
    installed = {ln.split()[0] for ln in r.stdout.splitlines() if ln.endswith(" installed")}
    return [p for p in packages if p not in installed]


def ensure_packages(log: Log) -> None:
    wanted = list(APT_PACKAGES)
    if not shutil.which("node") or not shutil.which("npm"):
        wanted += ["nodejs", "npm"]
    missing = _missing_packages(wanted)
    if not missing:
        log("apt packages present")
        return
    log(f"installing apt packages: {' '.join(missing)} (this takes a while)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=900"]
    _run(["apt-get", *lock, "update", "-q"], env=env)
    _run(["apt-get", *lock, "install", "-y", "-q", "--no-install-recommends", *missing], env=env)


def find_s3rver(layout: Layout) -> Path | None:
    """The installed s3rver module directory (repo-root node_modules first, then the state dir)."""
    for base in (REPO_ROOT, layout.npm_dir):
        mod = base / S3RVER_MODULE
        if (mod / "lib" / "s3rver.js").exists():
            return mod
    return None


def ensure_s3rver(layout: Layout, log: Log) -> Path:
    mod = find_s3rver(layout)
    if mod is not None:
        log(f"s3rver present ({mod})")
        return mod
    log(f"npm install {S3RVER_PACKAGE} into {layout.npm_dir}")
    layout.npm_dir.mkdir(parents=True, exist_ok=True)
    _run(
        [
            "npm",
            "install",
            "--prefix",
            str(layout.npm_dir),
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            S3RVER_PACKAGE,
        ]
    )
    mod = find_s3rver(layout)
    if mod is None:
        raise RuntimeError("npm install of s3rver did not produce lib/s3rver.js")
    return mod


DOCS_PACKAGE = "swagger-ui-dist@^5"
DOCS_MODULE = Path("node_modules/swagger-ui-dist")


def find_docs_renderer(layout: Layout) -> Path | None:
    """The installed swagger-ui-dist directory (repo-root node_modules first, then the state dir)."""
    for base in (REPO_ROOT, layout.npm_dir):
        mod = base / DOCS_MODULE
        if (mod / "swagger-ui-bundle.js").exists():
            return mod
    return None


def ensure_docs_renderer(layout: Layout, log: Log) -> Path:
    """swagger-ui-dist from npm: Envoy serves its bundle for the docs page at /docs/ (no CDN)."""
    mod = find_docs_renderer(layout)
    if mod is not None:
        return mod
    log(f"npm install {DOCS_PACKAGE} into {layout.npm_dir}")
    layout.npm_dir.mkdir(parents=True, exist_ok=True)
    _run(["npm", "install", "--prefix", str(layout.npm_dir), "--no-audit", "--no-fund", "--loglevel=error",
          DOCS_PACKAGE])
    mod = find_docs_renderer(layout)
    if mod is None:
        raise RuntimeError("npm install of swagger-ui-dist did not produce swagger-ui-bundle.js")
    return mod


# ---------------------------------------------------------------- users, keys, files


def ensure_users(layout: Layout, log: Log) -> None:
    try:
        grp.getgrnam(layout.users_group)
    except KeyError:
        _run(["groupadd", layout.users_group])
    created = []
    for user in layout.users:
        try:
            pwd.getpwnam(user)
        except KeyError:
            _run(["useradd", "-m", "-s", "/bin/bash", user])
            created.append(user)
        # an unlocked account without password ('*'), else sshd refuses it
        shadow = _shadow_field(user)
        if shadow is None or shadow.startswith("!"):
            _run(["usermod", "-p", "*", user])
        if user not in grp.getgrnam(layout.users_group).gr_mem:
            _run(["usermod", "-a", "-G", layout.users_group, user])
        # a home is private, as on a real centre (useradd -m leaves it 0755 on Debian)
        home = Path(pwd.getpwnam(user).pw_dir)
        if home.is_dir() and home.stat().st_mode & 0o077:
            home.chmod(0o700)
    log(f"users {', '.join(layout.users)} ready" + (f" (created {', '.join(created)})" if created else ""))


def _shadow_field(user: str) -> str | None:
    try:
        for line in Path("/etc/shadow").read_text().splitlines():
            parts = line.split(":")
            if parts[0] == user:
                return parts[1]
    except OSError:
        return None
    return None


def _mkdir(path: Path, mode: int = 0o755, owner: str | None = None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if owner:
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _write(path: Path, content: str | bytes, mode: int = 0o644, owner: str | None = None) -> bool:
    """Write ``content`` if it differs; return True if the file changed."""
    data = content.encode() if isinstance(content, str) else content
    try:
        changed = path.read_bytes() != data
    except FileNotFoundError:
        changed = True
    if changed:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    os.chmod(path, mode)
    if owner:
        pw = pwd.getpwnam(owner)
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return changed


def make_dirs(layout: Layout) -> None:
    _mkdir(layout.state_dir, 0o755)
    _mkdir(layout.run_dir, 0o755)
    _mkdir(layout.log_dir, 0o755)
    _mkdir(layout.ca_dir, 0o700)
    _mkdir(layout.ssh_dir, 0o755)
    _mkdir(layout.munge_dir, 0o700, "munge")
    _mkdir(layout.munge_run_dir, 0o755, "munge")
    _mkdir(layout.mariadb_dir, 0o755, "mysql")
    _mkdir(layout.mariadb_socket.parent, 0o755, "mysql")
    _mkdir(layout.slurm_dir, 0o755)
    _mkdir(layout.slurm_dir / "run", 0o755)
    _mkdir(layout.slurm_state_dir, 0o700)
    _mkdir(layout.slurmd_spool_dir, 0o755)
    _mkdir(layout.s3_dir, 0o700)
    _mkdir(layout.s3_data_dir, 0o700)
    _mkdir(layout.gateway_dir, 0o755)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    layout.credentials()  # generate secrets once


def _ensure_ed25519(key: Path, pub: Path, comment: str) -> bool:
    """An ed25519 key pair at key/pub (made with ssh-keygen if either is missing); True if made."""
    if key.exists() and pub.exists():
        return False
    key.unlink(missing_ok=True)
    pub.unlink(missing_ok=True)
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
    return True


def ensure_keys(layout: Layout, log: Log) -> None:
    if _ensure_ed25519(layout.ca_key, layout.ca_pub, "firecrest-stack user CA"):
        log(f"created user CA {layout.ca_key}")
    os.chmod(layout.ca_key, 0o600)
    os.chmod(layout.ca_pub, 0o644)
    _ensure_ed25519(layout.ssh_host_key, layout.ssh_host_pub, "firecrest-stack sshd")
    os.chmod(layout.ssh_host_key, 0o600)
    if not layout.munge_key.exists():
        _write(layout.munge_key, os.urandom(1024), 0o600, "munge")
        log("created munge key")
    pw = pwd.getpwnam("munge")
    os.chown(layout.munge_key, pw.pw_uid, pw.pw_gid)
    os.chmod(layout.munge_key, 0o600)


def cgroup_mode(layout: Layout) -> bool:
    """Use proctrack/cgroup + task/cgroup (OOM detection)?  F7T_SLURM_CGROUP=0/1 overrides;
    a previous fallback is remembered in <slurm_dir>/no-cgroup."""
    forced = os.environ.get("F7T_SLURM_CGROUP")
    if forced is not None:
        return forced not in ("0", "no", "false")
    if (layout.slurm_dir / "no-cgroup").exists():
        return False
    mem = Path("/sys/fs/cgroup/memory")
    return mem.is_dir() and os.access(mem, os.W_OK)


def _real_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return max(256, int(int(line.split()[1]) / 1024 * 0.9))
    return 1000


def write_configs(layout: Layout) -> set[str]:
    """(Re)write config files; return the names of services whose config changed."""
    p = layout.ports
    creds = layout.credentials()
    changed: set[str] = set()
    sshd = f"""# generated by firecrest-stack
ListenAddress 127.0.0.1
Port {p.sshd}
HostKey {layout.ssh_host_key}
PidFile {layout.pidfile("sshd")}
TrustedUserCAKeys {layout.ca_pub}
AuthorizedKeysFile none
AuthorizedPrincipalsFile none
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
HostbasedAuthentication no
UsePAM no
PermitRootLogin no
PermitEmptyPasswords no
SetEnv SLURM_CONF={layout.slurm_conf}
Subsystem sftp internal-sftp
MaxSessions 64
MaxStartups 64:30:200
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
LogLevel INFO
"""
    if _write(layout.sshd_config, sshd, 0o644):
        changed.add("sshd")

    sock = layout.munge_socket
    cg = cgroup_mode(layout)
    run = layout.slurm_dir / "run"
    # job slots: at least 8, whatever the machine has. Test and transfer jobs mostly wait (a staged
    # upload's job waits for the client), and two real cores must not serialise them; slurmd
    # accepts more CPUs than it sees with SlurmdParameters=config_overrides.
    ncpu = max(8, os.cpu_count() or 1)
    # Stacks side by side on one host (F7T_PORT_BASE) share the cgroup tree, whose paths carry the
    # job id (slurm/uid_N/job_M): give each stack its own range of job ids.
    first_job_id = 1 + max(0, p.envoy - 28400) * 1000
    slurm = f"""# generated by firecrest-stack
ClusterName={layout.cluster_name}
FirstJobId={first_job_id}
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
SlurmctldPort={p.slurmctld}
SlurmdPort={p.slurmd}
# bind to the address the host names resolve to (127.0.0.1), never to every interface
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
AuthType=auth/munge
AuthInfo=socket={sock}
CredType=cred/munge
StateSaveLocation={layout.slurm_state_dir}
SlurmdSpoolDir={layout.slurmd_spool_dir}
SlurmctldPidFile={run}/slurmctld.pid
SlurmdPidFile={run}/slurmd.pid
MailProg=/bin/true
MpiDefault=none
ReturnToService=2
MinJobAge=120
SlurmdParameters=config_overrides
KillWait=5
InactiveLimit=0
Waittime=0
SchedulerType=sched/backfill
# a batch job is scheduled when it is submitted, not up to 3 s later (the default delay, meant for
# sites that take hundreds of submissions a second): a job started 2.7 s after sbatch, back to back
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU={min(1024, _real_memory_mb() // ncpu)}
"""
    if cg:
        slurm += """ProctrackType=proctrack/cgroup
TaskPlugin=task/cgroup
JobAcctGatherType=jobacct_gather/linux
"""
    else:
        slurm += """ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherParams=OverMemoryKill
JobAcctGatherFrequency=task=1
"""
    slurm += f"""JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={p.slurmdbd}
AccountingStoragePass={sock}
AccountingStorageEnforce=associations
NodeName=localhost NodeAddr=127.0.0.1 CPUs={ncpu} RealMemory={_real_memory_mb()} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=long Nodes=localhost Default=NO MaxTime=INFINITE State=UP
"""
    cgroup = """# generated by firecrest-stack
CgroupPlugin=cgroup/v1
CgroupAutomount=yes
ConstrainCores=no
ConstrainRAMSpace=yes
ConstrainSwapSpace=no
"""
    if _write(layout.slurm_conf, slurm, 0o644) | _write(layout.cgroup_conf, cgroup, 0o644):
        changed.update({"slurmctld", "slurmd"})

    dbd = f"""# generated by firecrest-stack
AuthType=auth/munge
AuthInfo=socket={sock}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={p.slurmdbd}
# bind to the address this host resolves to, not to every interface
CommunicationParameters=NoInAddrAny
SlurmUser=root
PidFile={run}/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={p.mariadb}
StorageUser=slurm
StoragePass={creds["db_password"]}
StorageLoc=slurm_acct_db
"""
    if _write(layout.slurmdbd_conf, dbd, 0o600, "root"):
        changed.add("slurmdbd")

    if _write(layout.s3_dir / "s3rver-launch.js", S3RVER_LAUNCHER, 0o644):
        changed.add("s3rver")
    return changed


S3RVER_LAUNCHER = r"""'use strict';
// generated by firecrest-stack: run s3rver with the stack's own access key and secret.
// s3rver only knows a hard-coded account (S3RVER/S3RVER); replace its key pair.
const path = require('path');
const mod = process.env.F7T_S3RVER_MODULE;
// s3rver checks a signature only when one is present and serves anonymous requests otherwise:
// wrap its authentication middleware (before s3rver loads it) so that a request whose signature
// (Authorization header, or a presigned URL's query) did not verify is refused, whatever it asks.
// CORS preflights (OPTIONS) carry no signature and return no data.
const authPath = require.resolve(path.join(mod, 'lib', 'middleware', 'authentication.js'));
const S3Error = require(path.join(mod, 'lib', 'models', 'error.js'));
const authentication = require(authPath);
require.cache[authPath].exports = (...args) => {
  const verify = authentication(...args);
  return async function signedOnly(ctx, next) {
    return verify(ctx, async () => {
      if (!ctx.state.account && ctx.method !== 'OPTIONS') {
        throw new S3Error('AccessDenied', 'Access Denied: every request must be signed');
      }
      return next();
    });
  };
};
// s3rver writes an object in place and shows it while it is still being written (a multipart
// upload's assembly takes seconds): a HEAD, GET or listing then reads the partial file whole to
// hash it, once per look (a transfer job's looks during the assembly of a 1 GiB upload took it
// from 3.6 to 5.2 s), and answers with its partial size. S3, MinIO and Ceph show an object only
// once it is complete; so does this one: its MD5 file, which s3rver writes last, is the mark.
const FilesystemStore = require(path.join(mod, 'lib', 'stores', 'filesystem.js'));
const getMetadata = FilesystemStore.prototype.getMetadata;
FilesystemStore.prototype.getMetadata = async function whenComplete(bucket, key) {
  await require('fs').promises.access(this.getResourcePath(bucket, key, 'object.md5'));  // ENOENT: not yet
  return getMetadata.call(this, bucket, key);
};
const S3rver = require(path.join(mod, 'lib', 's3rver.js'));
const { DUMMY_ACCOUNT } = require(path.join(mod, 'lib', 'models', 'account.js'));
DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
DUMMY_ACCOUNT.createKeyPair(process.env.F7T_S3_ACCESS_KEY, process.env.F7T_S3_SECRET_KEY);
const server = new S3rver({
  address: process.env.F7T_S3_ADDRESS || '127.0.0.1',
  port: Number(process.env.F7T_S3_PORT),
  directory: process.env.F7T_S3_DIRECTORY,
  silent: process.env.F7T_S3_SILENT === '1',
  vhostBuckets: false,
  // browsers (the portal) PUT parts and GET objects with presigned URLs: CORS on the staging bucket
  configureBuckets: process.env.F7T_S3_CORS_ORIGINS ? [{
    name: process.env.F7T_S3_BUCKET || 'firecrest-staging',
    configs: ['<CORSConfiguration>' + process.env.F7T_S3_CORS_ORIGINS.split(',').map((o) =>
      '<CORSRule><AllowedOrigin>' + o + '</AllowedOrigin><AllowedMethod>GET</AllowedMethod>' +
      '<AllowedMethod>PUT</AllowedMethod><AllowedMethod>POST</AllowedMethod><AllowedHeader>*</AllowedHeader>' +
      '<ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>600</MaxAgeSeconds></CORSRule>').join('') +
      '</CORSConfiguration>'],
  }] : [],
});
server.run().then(({ address, port }) => {
  console.log(`S3rver listening on ${address}:${port}`);
}).catch((err) => { console.error(err); process.exit(1); });
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => { server.close().finally(() => process.exit(0)); });
}
"""


# ---------------------------------------------------------------- services


def _slurm_env(layout: Layout) -> dict[str, str]:
    return layout.slurm_env()


def _slurmd_ok(out: str) -> bool:
    states = [s.strip().rstrip("*~#!%$@^-+").lower() for s in out.split()]
    return bool(states) and all(s.startswith(("idle", "mix", "alloc", "comp")) for s in states)


def infra_services(layout: Layout) -> list[Service]:
    """Infrastructure services in start order (``down`` stops them in reverse)."""
    p = layout.ports
    creds = layout.credentials()
    senv = _slurm_env(layout)
    sock = str(layout.munge_socket)
    mod = find_s3rver(layout)
    node = shutil.which("node") or "/usr/bin/node"
    return [
        Service(
            name="sshd",
            argv=["/usr/sbin/sshd", "-f", str(layout.sshd_config), "-E", str(layout.log("sshd"))],
            ready=tcp_banner("127.0.0.1", p.sshd, b"SSH-"),
            daemonizes=True,
            pidfile=layout.pidfile("sshd"),
            log=layout.log("sshd"),
            ready_timeout=20,
        ),
        Service(
            name="munged",
            argv=[
                "/usr/sbin/munged",
                "-F",
                f"--socket={sock}",
                f"--key-file={layout.munge_key}",
                f"--log-file={layout.log('munged')}",
                f"--pid-file={layout.munge_dir / 'munged.pid'}",
                f"--seed-file={layout.munge_dir / 'munged.seed'}",
            ],
            ready=command_ok(f"munge -n -S {sock} | unmunge -S {sock}"),
            user="munge",
            pidfile=layout.pidfile("munged"),
            log=layout.log("munged"),
            cwd=layout.munge_dir,
            ready_timeout=20,
        ),
        Service(
            name="mariadb",
            argv=[
                "/usr/sbin/mariadbd",
                "--no-defaults",
                "--user=mysql",
                f"--datadir={layout.mariadb_datadir}",
                f"--socket={layout.mariadb_socket}",
                f"--port={p.mariadb}",
                "--bind-address=127.0.0.1",
                f"--pid-file={layout.mariadb_dir / 'run' / 'mariadbd.pid'}",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=256M",
                "--innodb-log-file-size=64M",
                "--innodb-lock-wait-timeout=900",
                "--max-connections=200",
            ],
            ready=command_ok(
                ["mariadb-admin", "--no-defaults", f"--socket={layout.mariadb_socket}", "-u", "root", "ping"]
            ),
            pidfile=layout.pidfile("mariadb"),
            log=layout.log("mariadb"),
            ready_timeout=60,
        ),
        Service(
            name="slurmdbd",
            argv=["/usr/sbin/slurmdbd", "-D"],
            ready=command_ok(["sacctmgr", "-n", "show", "cluster"], env=senv),
            env=senv,
            pidfile=layout.pidfile("slurmdbd"),
            log=layout.log("slurmdbd"),
            cwd=layout.slurm_dir,
            ready_timeout=60,
        ),
        Service(
            name="slurmctld",
            argv=["/usr/sbin/slurmctld", "-D", "-f", str(layout.slurm_conf)],
            ready=command_ok(["scontrol", "ping"], env=senv, check_output=lambda o: "is UP" in o),
            env=senv,
            pidfile=layout.pidfile("slurmctld"),
            log=layout.log("slurmctld"),
            cwd=layout.slurm_state_dir,
            ready_timeout=60,
        ),
        Service(
            name="slurmd",
            argv=["/usr/sbin/slurmd", "-D", "-N", "localhost", "-f", str(layout.slurm_conf)],
            ready=command_ok(
                ["sinfo", "-h", "-n", "localhost", "-o", "%T"], env=senv, check_output=_slurmd_ok
            ),
            # the kernel's OOM killer should never pick slurmd or a job's slurmstepd: in a job's
            # small memory cgroup slurmstepd's few MB can be the largest process, and a job whose
            # stepd was killed stays RUNNING for ever. Lowering the score needs CAP_SYS_RESOURCE,
            # which some sandboxes (this project's CI among them) do not give: there it has no
            # effect, and tests/integration/test_stack.py's memory hog raises its own score
            env={**senv, "SLURMD_OOM_ADJ": "-1000", "SLURMSTEPD_OOM_ADJ": "-1000"},
            pidfile=layout.pidfile("slurmd"),
            log=layout.log("slurmd"),
            cwd=layout.slurmd_spool_dir,
            ready_timeout=60,
        ),
        Service(
            name="s3rver",
            argv=[node, str(layout.s3_dir / "s3rver-launch.js")],
            ready=http_answers(f"http://127.0.0.1:{p.s3}/"),
            env={
                "F7T_S3RVER_MODULE": str(mod) if mod else "",
                "F7T_S3_ACCESS_KEY": creds["s3_access_key"],
                "F7T_S3_SECRET_KEY": creds["s3_secret_key"],
                "F7T_S3_ADDRESS": "127.0.0.1",
                "F7T_S3_PORT": str(p.s3),
                "F7T_S3_DIRECTORY": str(layout.s3_data_dir),
                "F7T_S3_SILENT": os.environ.get("F7T_S3_SILENT", "0"),
                # the portal's origin (devstack.gateway.portal_origin): Envoy's listener
                "F7T_S3_CORS_ORIGINS": f"http://127.0.0.1:{p.envoy}",
            },
            pidfile=layout.pidfile("s3rver"),
            log=layout.log("s3rver"),
            cwd=layout.s3_dir,
            user=layout.gateway_user,
            umask=0o077,
            ready_timeout=30,
        ),
    ]


INFRA_PORTS = {
    "sshd": "sshd",
    "mariadb": "mariadb",
    "slurmdbd": "slurmdbd",
    "slurmctld": "slurmctld",
    "slurmd": "slurmd",
    "s3rver": "s3",
}


# ---------------------------------------------------------------- one-off setup steps


def init_mariadb(layout: Layout, log: Log) -> None:
    """Create the MariaDB datadir once (before mariadbd starts)."""
    marker = layout.mariadb_dir / "initialised"
    if marker.exists() and (layout.mariadb_datadir / "mysql").is_dir():
        return
    log("initialising MariaDB datadir")
    if layout.mariadb_datadir.exists():
        shutil.rmtree(layout.mariadb_datadir)  # a half-done earlier attempt
    _mkdir(layout.mariadb_datadir, 0o750, "mysql")
    _run(
        [
            "mariadb-install-db",
            "--no-defaults",
            "--user=mysql",
            f"--datadir={layout.mariadb_datadir}",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ]
    )
    marker.touch()


def bootstrap_db(layout: Layout) -> None:
    pw = layout.credentials()["db_password"]
    sql = ["CREATE DATABASE IF NOT EXISTS slurm_acct_db;"]
    for host in ("localhost", "127.0.0.1"):
        sql += [
            f"CREATE USER IF NOT EXISTS 'slurm'@'{host}' IDENTIFIED BY '{pw}';",
            f"ALTER USER 'slurm'@'{host}' IDENTIFIED BY '{pw}';",
            f"GRANT ALL ON slurm_acct_db.* TO 'slurm'@'{host}';",
        ]
    _run(["mariadb", "--no-defaults", f"--socket={layout.mariadb_socket}", "-u", "root", "-e", " ".join(sql)])


def setup_accounting(layout: Layout, log: Log) -> None:
    env = dict(os.environ, **layout.slurm_env())
    out = _run(["sacctmgr", "-n", "-P", "show", "assoc", "format=cluster,account,user"], env=env).stdout
    rows = {tuple(line.split("|")) for line in out.splitlines() if line.strip()}
    clusters = {r[0] for r in rows}
    accounts = {(r[0], r[1]) for r in rows}
    users = {(r[0], r[1], r[2]) for r in rows}
    c, a = layout.cluster_name, layout.slurm_account
    if c not in clusters and not _run(
        ["sacctmgr", "-n", "-P", "show", "cluster", "format=cluster"], env=env
    ).stdout.split().count(c):
        _run(["sacctmgr", "-i", "add", "cluster", c], env=env)
        log(f"sacctmgr: added cluster {c}")
    if (c, a) not in accounts:
        _run(
            [
                "sacctmgr",
                "-i",
                "add",
                "account",
                a,
                f"cluster={c}",
                "Description=FirecREST demo",
                "Organization=f7t",
            ],
            env=env,
        )
        log(f"sacctmgr: added account {a}")
    for u in layout.users:
        if (c, a, u) not in users:
            _run(
                ["sacctmgr", "-i", "add", "user", u, f"account={a}", f"defaultaccount={a}", f"cluster={c}"],
                env=env,
            )
            log(f"sacctmgr: added user {u} to account {a}")


def infra_env(layout: Layout) -> dict[str, str]:
    creds = layout.credentials()
    return {
        "F7T_STACK_DIR": str(layout.state_dir),
        "F7T_S3_URL": layout.s3_url,
        "F7T_S3_ACCESS_KEY": creds["s3_access_key"],
        "F7T_S3_SECRET_KEY": creds["s3_secret_key"],
        "F7T_S3_REGION": "us-east-1",
        "F7T_SSH_HOST": layout.ssh_host,
        "F7T_SSH_PORT": str(layout.ports.sshd),
        "F7T_SSH_CA_KEY": str(layout.ca_key),
        "F7T_SSH_HOST_KEY_PUB": str(layout.ssh_host_pub),
        "SLURM_CONF": str(layout.slurm_conf),
    }
