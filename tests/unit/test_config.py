"""The three configurations (core, edge, development issuer): a bad file stops the program at start
with the key's path and no traceback; every default is what CONFIGURATION.md says; the reference is
current; the settings that used to be hard-coded reach the services."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from core.config import ConfigError, from_dict
from edge.envoy_config import EdgeConfig
from edge.issuer.config import parse_config

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "CONFIGURATION.md"


def _core(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "certificate": {"ca_key": "/etc/firecrest/ca"},
        "systems": [{"name": "cluster", "ssh": {"host": "login.example.org"}}],
    }
    cfg.update(over)
    return cfg


def _edge(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "issuer": "https://auth.example.org/realms/hpc",
        "audiences": ["firecrest"],
        "jwks_uri": "https://auth.example.org/realms/hpc/protocol/openid-connect/certs",
        "core_address": "10.0.0.5:9443",
        "core_sni": "core.internal",
        "client_cert": "/etc/firecrest/envoy.crt",
        "client_key": "/etc/firecrest/envoy.key",
        "core_ca": "/etc/firecrest/ca.crt",
        "lua_out": "/var/lib/firecrest/filter.lua",
    }
    cfg.update(over)
    return cfg


def _issuer(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"issuer": "http://127.0.0.1:8080/realms/f7t", "audience": "firecrest",
                           "key_file": "/etc/issuer/key.pem"}
    cfg.update(over)
    return cfg


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


# ---- a bad file: the key's path, exit status 2, no traceback ----------------------------------
def test_the_core_refuses_a_bad_config_naming_each_key(tmp_path: Path) -> None:
    cfg = _core(systems=[{"name": "cluster", "ssh": {"host": "login", "port": "twenty-two", "prot": 22},
                          "streamer": {"python": "/usr/bin/python3", "port_range": [5000, 4000]}}],
                task_store={"type": "postgres"}, jobs={"submit_grace": "soon"})
    del cfg["certificate"]
    (tmp_path / "core.yaml").write_text(yaml.safe_dump(cfg))
    r = _run(["-m", "core", "--config", str(tmp_path / "core.yaml")], tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == f"firecrest-core: {tmp_path / 'core.yaml'}: invalid configuration"
    assert sorted(line.strip() for line in lines[1:]) == [
        "certificate: Field required",
        "jobs.submit_grace: Input should be a valid number, unable to parse string as a number",
        "systems[0].ssh.port: Input should be a valid integer, unable to parse string as an integer",
        "systems[0].ssh.prot: unknown setting (CONFIGURATION.md lists every setting)",
        "systems[0].streamer.port_range: [5000, 4000] is not a range of ports (first <= last, 1..65535)",
        "task_store: type postgres needs dsn or dsn_file",
    ]


def _ca_key(tmp_path: Path) -> str:
    """A real CA key file (the core reads it at start)."""
    key = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    (tmp_path / "ca").write_bytes(key)
    return str(tmp_path / "ca")


def test_the_core_names_an_unknown_scheduler_type(tmp_path: Path) -> None:
    cfg = _core(certificate={"ca_key": _ca_key(tmp_path)}, listen="127.0.0.1:0",
                task_store={"path": str(tmp_path / "tasks.db")},
                systems=[{"name": "c", "ssh": {"host": "login"}, "scheduler": {"type": "pbs"}}])
    (tmp_path / "core.yaml").write_text(yaml.safe_dump(cfg))
    r = _run(["-m", "core", "--config", str(tmp_path / "core.yaml")], tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "systems[0].scheduler.type: 'pbs' is not one of ['slurm']" in r.stderr


@pytest.mark.parametrize("text, why", [
    ("systems: [\n", "not valid YAML"),
    ("- a list\n", "(top level): must be a mapping of settings"),
])
def test_the_core_refuses_a_file_that_is_no_config(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "core.yaml").write_text(text)
    r = _run(["-m", "core", "--config", str(tmp_path / "core.yaml")], tmp_path)
    assert r.returncode == 2 and why in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_the_edge_refuses_a_bad_config_naming_each_key(tmp_path: Path) -> None:
    cfg = _edge(listen_port="http", jwks_uri="file:///etc/passwd", identity_header="x-user\nx-evil: 1",
                core_addresses=["10.0.0.5:9443", "10.0.0.6"], tls_cert="/etc/tls.crt", colour="blue")
    (tmp_path / "edge.yaml").write_text(yaml.safe_dump(cfg))
    r = _run(["-m", "edge.envoy_config", str(tmp_path / "edge.yaml"), "--out", str(tmp_path / "envoy.yaml")],
             tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "envoy.yaml").exists()
    assert sorted(line.strip() for line in r.stderr.splitlines()[1:]) == [
        "colour: unknown setting (CONFIGURATION.md lists every setting)",
        "core_addresses: core address '10.0.0.6' must be host:port",
        "identity_header: 'x-user\\nx-evil: 1' must be a plain header/claim name",
        "jwks_uri: 'file:///etc/passwd' must be an http(s) URL",
        "listen_port: Input should be a valid integer, unable to parse string as an integer",
    ]
    # the pair rule is checked once the keys themselves are right
    with pytest.raises(ConfigError, match=r"\(top level\): tls_cert and tls_key go together"):
        EdgeConfig.load(_write(tmp_path / "pair.yaml", yaml.safe_dump(_edge(tls_cert="/etc/tls.crt"))))


def test_the_issuer_refuses_a_bad_config_naming_each_key(tmp_path: Path) -> None:
    cfg = _issuer(token_lifetime=0, clients=[
        {"client_id": "a", "client_secret": "s"},
        {"client_id": "b", "public": True, "client_secret": "s"},
        {"client_id": "c", "client_secret": "s", "token_lifetime": "long"},
    ], users=[{"username": "alice"}])
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    r = _run(["-m", "edge.issuer", "--config", str(tmp_path / "config.json")], tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(line.strip() for line in r.stderr.splitlines()[1:]) == [
        "clients[1]: a public client must not have a client_secret",
        "clients[2].token_lifetime: Input should be a valid integer, unable to parse string as an integer",
        "token_lifetime: Input should be greater than 0",
        "users[0].password: Field required",
    ]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---- defaults: what CONFIGURATION.md says, and what they always were --------------------------
def _documented(anchor: str) -> dict[str, str]:
    """key path -> default cell of one file's tables in CONFIGURATION.md."""
    text = REFERENCE.read_text()
    part = text.split(f'<a id="{anchor}"></a>', 1)[1].split("<a id=", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| [^|]*(?:\\\|[^|]*)* \| (.*?) \| .* \|$", part, re.M)
    return dict(rows)


def _plain(v: Any) -> Any:
    if hasattr(v, "model_dump"):
        return _plain(v.model_dump())
    if isinstance(v, tuple | list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return str(v) if isinstance(v, Path) else v


def _lookup(obj: Any, path: str) -> tuple[bool, Any]:
    """(given, value) of `path` (`[]` = the first element) in a dict or a model."""
    for part in path.split("."):
        name, index = part.removesuffix("[]"), part.endswith("[]")
        if isinstance(obj, dict):
            if name not in obj:
                return False, None
            obj = obj[name]
        else:
            obj = getattr(obj, name)
        if index:
            obj = obj[0]
    return True, obj


@pytest.mark.parametrize("anchor, data, load", [
    ("core", _core(
        systems=[{"name": "c", "ssh": {"host": "h"}, "filesystems": [{"path": "/home"}],
                  "streamer": {"python": "/usr/bin/python3"}}],
        tls={"cert": "c", "key": "k", "client_ca": "ca"}, s3={"endpoint": "s3:9000", "access_key": "a",
                                                             "secret_key": "s"},
        metrics={"listen": "127.0.0.1:9100", "tls": {"cert": "c", "key": "k", "client_ca": "ca"}}),
     from_dict),
    ("edge", _edge(), lambda d: EdgeConfig.model_validate(d)),
    ("issuer", _issuer(clients=[{"client_id": "web", "public": True}], users=[{"username": "u", "password": "p"}]),
     parse_config),
])
def test_defaults_are_what_the_reference_says(anchor: str, data: dict[str, Any], load: Any) -> None:
    documented = _documented(anchor)
    assert len(documented) > 10
    cfg = load(data)
    checked = 0
    for path, default in documented.items():
        given, _ = _lookup(data, path)
        if given or not default.startswith("`"):  # required, a section, or said in words (below)
            continue
        _, value = _lookup(cfg, path)
        assert _plain(value) == json.loads(default.strip("`")), path
        checked += 1
    assert checked > 10


def test_defaults_that_deployments_rely_on() -> None:
    core = from_dict(_core())
    assert core.jobs.submit_grace == 180 and core.jobs.cancel_wait == 10 and core.transfers.orphan_grace == 600
    assert core.listen == "127.0.0.1:28490" and core.identity_header == "x-f7t-user"
    assert core.certificate.allowed_uids == (1000, 60000) and core.certificate.lifetime == 600
    assert core.task_store.type == "sqlite" and core.task_store.path == Path("/var/lib/firecrest/tasks.db")
    assert core.s3 is None and core.tls is None and core.systems[0].ssh.port == 22
    edge = EdgeConfig.model_validate(_edge())
    assert (edge.listen_port, edge.app_version, edge.username_claim) == (8000, "2.6.0", "preferred_username")
    assert Path(edge.descriptor) == REPO / "edge" / "descriptor.pb"
    assert "edge/descriptor.pb" in _documented("edge")["descriptor"]
    issuer = parse_config(_issuer(issuer="https://auth.example.org/realms/f7t/"))
    assert issuer.port == 443 and issuer.issuer == "https://auth.example.org/realms/f7t"
    assert parse_config(_issuer()).port == 8080
    assert "the issuer URL's port" in _documented("issuer")["port"]


def test_older_files_still_load() -> None:
    """What the local stack and earlier deployments write: the older `task_db`, null meaning the
    default, YAML's numbers and strings where the model wants the other (lax, exact only)."""
    cfg = from_dict(_core(task_db="/srv/tasks.db", worker_threads=None, shutdown_grace="20",
                          identity_header="X-F7T-User",
                          certificate={"ca_key": "/ca", "allowed_uids": None, "lifetime": 600.0}))
    assert cfg.task_store.path == Path("/srv/tasks.db")
    assert cfg.worker_threads == 32 and cfg.shutdown_grace == 20.0 and cfg.identity_header == "x-f7t-user"
    assert cfg.certificate.allowed_uids is None  # null is one of its values: any uid but 0
    with pytest.raises(ConfigError, match=r"certificate\.lifetime: Input should be a valid integer"):
        from_dict(_core(certificate={"ca_key": "/ca", "lifetime": 600.5}))


# ---- the reference is current ----------------------------------------------------------------
def test_the_reference_is_current_and_the_check_catches_a_stale_one(tmp_path: Path) -> None:
    r = _run(["-m", "edge.configref", "--check"], REPO)
    assert r.returncode == 0, r.stderr
    stale = tmp_path / "CONFIGURATION.md"
    stale.write_text(REFERENCE.read_text().replace("| `jobs.submit_grace` | number (> 0) | `180` |",
                                                   "| `jobs.submit_grace` | number (> 0) | `120` |"))
    assert stale.read_text() != REFERENCE.read_text()
    r = _run(["-m", "edge.configref", "--check", "--out", str(stale)], REPO)
    assert r.returncode == 1
    assert "is not current" in r.stderr and "+| `jobs.submit_grace` | number (> 0) | `180` |" in r.stderr


# ---- settings that were hard-coded reach the services -----------------------------------------
def _core_with_ca(tmp_path: Path, **over: Any) -> Any:
    """A core config whose CA key and task store exist, so that a real Gateway can be built."""
    return from_dict(_core(certificate={"ca_key": _ca_key(tmp_path)},
                           task_store={"path": str(tmp_path / "tasks.db")}, **over))


async def test_the_trackers_timings_come_from_the_config(tmp_path: Path) -> None:
    from core.wiring import Gateway

    cfg = _core_with_ca(tmp_path,
                        jobs={"submit_grace": 45, "poll_interval": 3, "idle_interval": 12, "cancel_wait": 4,
                              "lost_after": 900, "partial_grace": 60, "max_poll_interval": 20},
                        transfers={"poll_interval": 5, "lost_after": 1200, "orphan_grace": 300})
    gw = Gateway(cfg)
    try:
        jobs, transfers = gw.jobs, gw.transfers
        assert (jobs.submit_grace, jobs.poll_interval, jobs.cancel_wait, jobs.lost_after, jobs.partial_grace,
                jobs.max_poll_interval) == (45, 3, 4, 900, 60, 20)
        assert (jobs.tracker.busy_interval, jobs.tracker.idle_interval) == (3, 12)
        assert (transfers.poll_interval, transfers.lost_after, transfers.orphan_grace) == (5, 1200, 300)
        assert transfers.tracker.busy_interval == 5
    finally:
        await gw.close()


async def test_the_file_operations_limit_and_the_health_cache_come_from_the_config(tmp_path: Path) -> None:
    from core.adapters.commands import ExecResult
    from core.adapters.files import Stat
    from core.wiring import Gateway

    cfg = _core_with_ca(tmp_path, health_max_age=20,
                        systems=[{"name": "cluster", "ssh": {"host": "login.example.org"}, "ops_timeout": 90}])
    gw = Gateway(cfg)
    try:
        assert gw.filesystems("cluster").ops_timeout == 90  # type: ignore[attr-defined]
        assert gw.status.max_age == 20
        # what the login node runs, and what the caller reads when the limit stops it
        cmd = Stat("/home/alice/x", False).limited(90)
        assert cmd.argv()[:6] == ["env", "LC_ALL=C", "timeout", "-k", "5", "90"] and cmd.timeout == 100
        err = cmd.error(ExecResult(124, b"", b""))
        assert err.reason.value == "TIMEOUT" and "within 90 s" in err.message
    finally:
        await gw.close()


def test_the_core_names_a_file_it_cannot_read(tmp_path: Path) -> None:
    cfg = _core(certificate={"ca_key": str(tmp_path / "no-such-ca")}, task_store={"path": str(tmp_path / "t.db")})
    (tmp_path / "core.yaml").write_text(yaml.safe_dump(cfg))
    r = _run(["-m", "core", "--config", str(tmp_path / "core.yaml")], tmp_path)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.strip() == (
        f"firecrest-core: {tmp_path / 'core.yaml'}: cannot read {tmp_path / 'no-such-ca'}: No such file or directory"
    )
