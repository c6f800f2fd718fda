"""PostgreSQL for the local stack: the task store shared by core replicas.

Debian's PostgreSQL server (package `postgresql`) run as the `postgres` user with all state in
<state>/postgres (data directory, Unix socket), listening on 127.0.0.1:<ports.postgres> with
password (SCRAM) authentication. Each gateway profile gets a database of its own.
"""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
from pathlib import Path

from devstack.layout import Layout
from devstack.services import Service, command_ok

SUPERUSER = "firecrest"


def _bin(name: str) -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if not versions:
        raise FileNotFoundError(f"PostgreSQL's {name} is not installed (Debian package postgresql)")
    return versions[-1]


def _dir(layout: Layout) -> Path:
    return layout.state_dir / "postgres"


def password(layout: Layout) -> str:
    f = _dir(layout) / "password"
    if not f.exists():
        _dir(layout).mkdir(parents=True, exist_ok=True)
        f.write_text(secrets.token_urlsafe(24))
        f.chmod(0o600)
    return f.read_text().strip()


def port(layout: Layout) -> int:
    return layout.ports.postgres


def dsn(layout: Layout, database: str) -> str:
    return (
        f"host=127.0.0.1 port={port(layout)} dbname={database} user={SUPERUSER} "
        f"password={password(layout)} connect_timeout=5"
    )


def ensure_cluster(layout: Layout, log: object) -> None:
    """initdb once (as postgres, superuser `firecrest` with a random password)."""
    d = _dir(layout)
    data = d / "data"
    if (data / "PG_VERSION").exists():
        return
    pw = pwd.getpwnam("postgres")
    for sub in (d, d / "run"):
        sub.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o755)  # noqa: S103 (postgres traverses it to its socket and data)
    os.chown(d / "run", pw.pw_uid, pw.pw_gid)
    data.mkdir(mode=0o700, exist_ok=True)
    os.chown(data, pw.pw_uid, pw.pw_gid)
    pwfile = d / "run" / "initdb.pw"
    pwfile.write_text(password(layout) + "\n")
    os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    pwfile.chmod(0o600)
    try:
        subprocess.run(
            [
                "runuser", "-u", "postgres", "--", str(_bin("initdb")), "-D", str(data), "-U", SUPERUSER,
                f"--pwfile={pwfile}", "--auth-local=scram-sha-256", "--auth-host=scram-sha-256",
                "-E", "UTF8", "--no-instructions",
            ],
            check=True, capture_output=True, text=True, cwd="/",
        )
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"initdb failed: {e.stderr[-2000:]}") from e
    finally:
        pwfile.unlink(missing_ok=True)
    if callable(log):
        log(f"postgres: initialised {data}")


def service(layout: Layout) -> Service:
    d = _dir(layout)
    return Service(
        name="postgres",
        argv=[
            str(_bin("postgres")), "-D", str(d / "data"), "-p", str(port(layout)), "-k", str(d / "run"),
            "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=100",
        ],
        ready=command_ok(
            [str(_bin("pg_isready")), "-h", "127.0.0.1", "-p", str(port(layout)), "-U", SUPERUSER, "-q"]
        ),
        user="postgres",
        pidfile=layout.pidfile("postgres"),
        log=layout.log("postgres"),
        cwd=d,
    )


def ensure_database(layout: Layout, database: str) -> None:
    import psycopg

    with psycopg.connect(dsn(layout, "postgres"), autocommit=True) as conn:
        found = conn.execute("select 1 from pg_database where datname = %s", [database]).fetchone()
        if not found:
            conn.execute(f'create database "{database}"')
