"""Issuer configuration: JSON schema, loading/validation, and ``make_config`` for the stack tool."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edge.issuer.keys import load_or_create_key

CONFIG_FILENAME = "config.json"
KEY_FILENAME = "signing-key.pem"
DEFAULT_REALM_PATH = "/realms/f7t"
DEFAULT_AUDIENCE = "firecrest"
DEFAULT_KID = "f7t-dev-1"
DEFAULT_SCOPE = "openid firecrest"
PUBLIC_CLIENT_ID = "f7t-public"
DEFAULT_REDIRECT_URIS = ("http://127.0.0.1:*/callback", "http://localhost:*/callback")
PORTAL_CLIENT_ID = "f7t-portal"
# scopes any client may ask for on top of its own (what OIDC libraries send by default)
STANDARD_SCOPES = ("openid", "profile", "email", "offline_access")


class ConfigError(ValueError):
    """The issuer configuration is missing or malformed."""


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str | None  # None: public client (authorization_code + PKCE only)
    username: str | None  # identity of client_credentials tokens; None: no client_credentials
    scope: str
    # where codes may be sent and where logout may return; empty: the issuer-wide lists
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    # origins whose browser scripts may call the token and userinfo endpoints (CORS)
    web_origins: tuple[str, ...] = ()
    token_lifetime: int | None = None  # access-token lifetime for this client; None: issuer-wide

    @property
    def public(self) -> bool:
        return self.client_secret is None

    def __repr__(self) -> str:  # never show the secret
        return f"Client(client_id={self.client_id!r}, public={self.public}, username={self.username!r})"


@dataclass(frozen=True)
class IssuerConfig:
    issuer: str
    host: str
    port: int
    audience: str
    key_file: Path
    kid: str | None
    token_lifetime: int
    code_lifetime: int
    username_claim: str
    clients: dict[str, Client]
    users: dict[str, str]  # username -> password
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    profiles: dict[str, dict[str, str]] = field(default_factory=dict)  # username -> name, email
    refresh_token_lifetime: int = 1800  # idle: a refresh token unused this long is dead
    session_lifetime: int = 36000  # a login's refresh tokens die this long after the login

    @property
    def base_path(self) -> str:
        """Path part of the issuer URL without trailing slash ('' for a bare host)."""
        return urlsplit(self.issuer).path.rstrip("/")

    def __repr__(self) -> str:  # keep passwords out of logs and tracebacks
        return f"IssuerConfig(issuer={self.issuer!r}, host={self.host!r}, port={self.port})"


def _req(data: dict[str, Any], key: str, typ: type, where: str = "config") -> Any:
    if key not in data:
        raise ConfigError(f"{where}: missing required field {key!r}")
    value = data[key]
    if not isinstance(value, typ) or (isinstance(value, bool) and typ is not bool):
        raise ConfigError(f"{where}: field {key!r} must be {typ.__name__}")
    return value


def _opt(data: dict[str, Any], key: str, typ: type, default: Any, where: str = "config") -> Any:
    if data.get(key) is None:
        return default
    return _req(data, key, typ, where)


def parse_config(data: Any, base_dir: Path | None = None) -> IssuerConfig:
    """Validate a config mapping. Relative ``key_file`` paths resolve against ``base_dir``."""
    if not isinstance(data, dict):
        raise ConfigError("config: top level must be a JSON object")
    issuer = _req(data, "issuer", str).rstrip("/")
    parts = urlsplit(issuer)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError("config: 'issuer' must be an http(s) URL without query or fragment")
    default_port = parts.port or (443 if parts.scheme == "https" else 80)
    port = _opt(data, "port", int, default_port)
    if not 0 <= port <= 65535:
        raise ConfigError("config: 'port' out of range")

    key_file = Path(_req(data, "key_file", str)).expanduser()
    if not key_file.is_absolute() and base_dir is not None:
        key_file = base_dir / key_file

    token_lifetime = _opt(data, "token_lifetime", int, 300)
    code_lifetime = _opt(data, "code_lifetime", int, 60)
    if token_lifetime <= 0 or code_lifetime <= 0:
        raise ConfigError("config: lifetimes must be positive")

    refresh_lifetime = _opt(data, "refresh_token_lifetime", int, 1800)
    session_lifetime = _opt(data, "session_lifetime", int, 36000)
    if refresh_lifetime <= 0 or session_lifetime <= 0:
        raise ConfigError("config: lifetimes must be positive")

    users: dict[str, str] = {}
    profiles: dict[str, dict[str, str]] = {}
    for i, entry in enumerate(_opt(data, "users", list, [])):
        where = f"config.users[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be an object")
        name = _req(entry, "username", str, where)
        if not name or name in users:
            raise ConfigError(f"{where}: empty or duplicate username")
        users[name] = _req(entry, "password", str, where)
        profiles[name] = {k: _opt(entry, k, str, "", where) for k in ("name", "email")}

    clients: dict[str, Client] = {}
    for i, entry in enumerate(_opt(data, "clients", list, [])):
        where = f"config.clients[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: must be an object")
        cid = _req(entry, "client_id", str, where)
        if not cid or cid in clients:
            raise ConfigError(f"{where}: empty or duplicate client_id")
        secret = _opt(entry, "client_secret", str, None, where) or None
        public = _opt(entry, "public", bool, False, where)
        if public and secret:
            raise ConfigError(f"{where}: a public client must not have a client_secret")
        if not public and not secret:
            raise ConfigError(f"{where}: confidential client needs a client_secret (or set \"public\": true)")
        lifetime = _opt(entry, "token_lifetime", int, None, where)
        if lifetime is not None and lifetime <= 0:
            raise ConfigError(f"{where}: 'token_lifetime' must be positive")
        clients[cid] = Client(
            client_id=cid,
            client_secret=secret,
            username=_opt(entry, "username", str, None, where) or None,
            scope=_opt(entry, "scope", str, DEFAULT_SCOPE, where),
            redirect_uris=_str_list(entry, "redirect_uris", where),
            post_logout_redirect_uris=_str_list(entry, "post_logout_redirect_uris", where),
            web_origins=_str_list(entry, "web_origins", where),
            token_lifetime=lifetime,
        )

    redirect_uris = _str_list(data, "redirect_uris", "config")

    return IssuerConfig(
        issuer=issuer,
        host=_opt(data, "host", str, "127.0.0.1"),
        port=port,
        audience=_req(data, "audience", str),
        key_file=key_file,
        kid=_opt(data, "kid", str, None) or None,
        token_lifetime=token_lifetime,
        code_lifetime=code_lifetime,
        username_claim=_opt(data, "username_claim", str, "preferred_username"),
        clients=clients,
        users=users,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=_str_list(data, "post_logout_redirect_uris", "config"),
        profiles=profiles,
        refresh_token_lifetime=refresh_lifetime,
        session_lifetime=session_lifetime,
    )


def _str_list(data: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    values = _opt(data, key, list, [], where)
    if not all(isinstance(u, str) and u for u in values):
        raise ConfigError(f"{where}: {key!r} must be a list of non-empty strings")
    return tuple(values)


def load_config(path: Path | str) -> IssuerConfig:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config {path} is not valid JSON: {exc}") from exc
    return parse_config(data, base_dir=path.parent)


def portal_client(portal_url: str, token_lifetime: int | None = None) -> dict[str, Any]:
    """The public client of a single-page portal served at ``portal_url`` (code + PKCE, refresh)."""
    parts = urlsplit(portal_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    entry: dict[str, Any] = {
        "client_id": PORTAL_CLIENT_ID,
        "public": True,
        "scope": DEFAULT_SCOPE,
        "redirect_uris": [portal_url],
        "post_logout_redirect_uris": [portal_url],
        "web_origins": [origin],
    }
    if token_lifetime is not None:
        entry["token_lifetime"] = token_lifetime
    return entry


def make_config(state_dir: Path, port: int, users: list[str], portal_url: str | None = None,
                portal_token_lifetime: int | None = None) -> dict:
    """Create (once) and return the dev issuer config in ``state_dir/config.json``.

    One confidential client ``f"{user}-client"`` per user (client_credentials tokens for that
    user), plus the public client ``f7t-public`` for the authorization-code + PKCE flow, and, given
    ``portal_url``, the portal's public client ``f7t-portal``. Secrets and passwords come from
    ``secrets.token_urlsafe``. The signing key is created too, so a JWKS can be derived before the
    issuer is started.

    Idempotent: if ``config.json`` already exists it is returned unchanged (``port`` and ``users``
    are then ignored), except that the portal client is added or brought up to date. The file is
    written with mode 600 and created atomically.
    """
    state_dir = Path(state_dir)
    path = state_dir / CONFIG_FILENAME
    if path.exists():
        existing = json.loads(path.read_text())
        if portal_url is None:
            return existing
        wanted = portal_client(portal_url, portal_token_lifetime)
        others = [c for c in existing["clients"] if c.get("client_id") != PORTAL_CLIENT_ID]
        if [c for c in existing["clients"] if c.get("client_id") == PORTAL_CLIENT_ID] == [wanted]:
            return existing
        existing["clients"] = [*others, wanted]
        parse_config(existing)
        _write_private(state_dir, path, existing, replace=True)
        return existing
    names = list(users)
    if len(set(names)) != len(names) or not all(isinstance(u, str) and u for u in names):
        raise ValueError("users must be distinct non-empty strings")

    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_file = (state_dir / KEY_FILENAME).resolve()
    config: dict[str, Any] = {
        "issuer": f"http://127.0.0.1:{port}{DEFAULT_REALM_PATH}",
        "host": "127.0.0.1",
        "port": port,
        "audience": DEFAULT_AUDIENCE,
        "key_file": str(key_file),
        "kid": DEFAULT_KID,
        "token_lifetime": 300,
        "code_lifetime": 60,
        "refresh_token_lifetime": 1800,
        "username_claim": "preferred_username",
        "clients": [
            {
                "client_id": f"{user}-client",
                "client_secret": secrets.token_urlsafe(32),
                "username": user,
                "scope": DEFAULT_SCOPE,
            }
            for user in names
        ]
        + [{"client_id": PUBLIC_CLIENT_ID, "public": True, "scope": DEFAULT_SCOPE}]
        + ([portal_client(portal_url, portal_token_lifetime)] if portal_url else []),
        "users": [
            {"username": user, "password": secrets.token_urlsafe(16), "name": user.capitalize(),
             "email": f"{user}@localhost"}
            for user in names
        ],
        "redirect_uris": list(DEFAULT_REDIRECT_URIS),
        "post_logout_redirect_uris": list(DEFAULT_REDIRECT_URIS),
    }
    parse_config(config)  # fail here rather than at issuer start-up
    load_or_create_key(key_file)
    if not _write_private(state_dir, path, config, replace=False):
        return json.loads(path.read_text())
    return config


def _write_private(state_dir: Path, path: Path, config: dict[str, Any], *, replace: bool) -> bool:
    """Write ``config`` to ``path`` (mode 600) through a private temp file; False if it existed.

    Without ``replace`` the temp file is hard-linked into place: never overwrites a config written
    concurrently by someone else, and readers never see a partial file.
    """
    tmp = state_dir / f".{CONFIG_FILENAME}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(config, fh, indent=2)
            fh.write("\n")
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def add_users(state_dir: Path, users: list[str]) -> bool:
    """Give users missing from an existing ``state_dir/config.json`` a client, a password and a
    profile (the others keep theirs; a user without a profile gets one). True if the file changed: the issuer must then be restarted."""
    path = Path(state_dir) / CONFIG_FILENAME
    config = json.loads(path.read_text())
    known = {c.get("username") for c in config["clients"]}
    missing = [u for u in users if u not in known]
    # a stack made before users had a profile: give them the one a new stack gives them
    unnamed = [e for e in config["users"] if "name" not in e or "email" not in e]
    for e in unnamed:
        e.setdefault("name", e["username"].capitalize())
        e.setdefault("email", f"{e['username']}@localhost")
    if not missing and not unnamed:
        return False
    public = [c for c in config["clients"] if not c.get("username")]
    config["clients"] = [c for c in config["clients"] if c.get("username")] + [
        {"client_id": f"{u}-client", "client_secret": secrets.token_urlsafe(32), "username": u, "scope": DEFAULT_SCOPE}
        for u in missing
    ] + public
    config["users"] += [
        {"username": u, "password": secrets.token_urlsafe(16), "name": u.capitalize(), "email": f"{u}@localhost"}
        for u in missing
    ]
    parse_config(config)
    tmp = path.with_name(f".{CONFIG_FILENAME}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(config, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)
    return True
