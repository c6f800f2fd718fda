"""Issuer configuration: its settings (pydantic models; CONFIGURATION.md lists them), loading and
validation, and ``make_config`` for the stack tool."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, PositiveInt, StringConstraints, ValidationInfo, field_validator, model_validator

from core.settings import ConfigError, Settings, validate
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


NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class Client(Settings):
    """A client registered at the issuer."""

    client_id: str = Field(min_length=1, description="The client's id.")
    client_secret: str | None = Field(
        None, repr=False, description="A confidential client's secret; a public client (`public: true`) has none.")
    public: bool = Field(False, description="A public client (a browser or CLI): authorization code with PKCE "
                                            "only, no secret.")
    username: str | None = Field(
        None, description="The user that client_credentials tokens of this client are for; null: the client "
                          "cannot use client_credentials.",
    )
    scope: str = Field(DEFAULT_SCOPE, description="The scopes the client may ask for (space-separated; "
                                                  "`openid profile email offline_access` are always allowed).")
    redirect_uris: tuple[NonEmpty, ...] = Field(
        (), description="Where codes may be sent (`*` matches a port); empty: the issuer-wide `redirect_uris`.")
    post_logout_redirect_uris: tuple[NonEmpty, ...] = Field(
        (), description="Where logout may return; empty: the issuer-wide `post_logout_redirect_uris`.")
    web_origins: tuple[NonEmpty, ...] = Field(
        (), description="Origins whose browser scripts may call the token and userinfo endpoints (CORS).")
    token_lifetime: PositiveInt | None = Field(
        None, description="Seconds this client's access tokens live; null: the issuer-wide `token_lifetime`.")

    @model_validator(mode="before")
    @classmethod
    def _empty_is_none(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {**data, **{k: None for k in ("client_secret", "username") if data.get(k) == ""}}
        return data

    @model_validator(mode="after")
    def _secret_or_public(self) -> Client:
        if self.public and self.client_secret:
            raise ValueError("a public client must not have a client_secret")
        if not self.public and not self.client_secret:
            raise ValueError('a confidential client needs a client_secret (or set "public": true)')
        return self


class User(Settings):
    """A user who can sign in at the issuer's login form."""

    username: str = Field(min_length=1, description="The login name (the tokens' username claim).")
    password: str = Field(repr=False, description="The password.")
    name: str = Field("", description="The full name (userinfo, ID token `name`).")
    email: str = Field("", description="The e-mail address (userinfo, ID token `email`).")


class IssuerConfig(Settings):
    """The development OIDC issuer: its URL and listener, its signing key, token lifetimes, its
    clients and the users of its login form."""

    issuer: str = Field(description="The issuer URL (tokens' `iss`; its path is the realm's, e.g. /realms/f7t).")
    host: str = Field("127.0.0.1", description="The address the issuer listens on.")
    port: int = Field(ge=0, le=65535, description="The port the issuer listens on.",
                      json_schema_extra={"doc_default": "the issuer URL's port (80, 443)"})
    audience: str = Field(description="The audience (`aud`) of every access token.")
    key_file: Path = Field(description="The RSA signing key (PEM; created when missing); relative: to the config "
                                       "file's directory.")
    kid: str | None = Field(None, description="The signing key's id in the JWKS; null: its RFC 7638 thumbprint.")
    token_lifetime: PositiveInt = Field(300, description="Seconds an access token lives.")
    code_lifetime: PositiveInt = Field(60, description="Seconds an authorization code lives.")
    refresh_token_lifetime: PositiveInt = Field(1800, description="Seconds an unused refresh token lives (idle).")
    session_lifetime: PositiveInt = Field(36000, description="Seconds after a login when its refresh tokens die.")
    username_claim: str = Field("preferred_username", description="The claim that carries the username.")
    clients: tuple[Client, ...] = Field((), description="The registered clients.")
    users: tuple[User, ...] = Field((), description="The users of the login form.")
    redirect_uris: tuple[NonEmpty, ...] = Field(
        (), description="Where codes may be sent for clients without their own list (`*` matches a port).")
    post_logout_redirect_uris: tuple[NonEmpty, ...] = Field(
        (), description="Where logout may return for clients without their own list.")

    @model_validator(mode="before")
    @classmethod
    def _port_from_issuer(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("port") is None and isinstance(data.get("issuer"), str):
            parts = urlsplit(data["issuer"])
            with contextlib.suppress(ValueError):  # a bad port in the URL: `port` is then missing
                data = {**data, "port": parts.port or (443 if parts.scheme == "https" else 80)}
        return data

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, v: str) -> str:
        v = v.rstrip("/")
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be an http(s) URL without query or fragment")
        return v

    @field_validator("kid")
    @classmethod
    def _empty_kid(cls, v: str | None) -> str | None:
        return v or None

    @field_validator("key_file")
    @classmethod
    def _key_file(cls, v: Path, info: ValidationInfo) -> Path:
        v = v.expanduser()
        base = (info.context or {}).get("base_dir")
        return Path(base) / v if base is not None and not v.is_absolute() else v

    @field_validator("clients")
    @classmethod
    def _distinct_clients(cls, v: tuple[Client, ...]) -> tuple[Client, ...]:
        ids = [c.client_id for c in v]
        if dup := sorted({i for i in ids if ids.count(i) > 1}):
            raise ValueError(f"duplicate client_id {', '.join(dup)}")
        return v

    @field_validator("users")
    @classmethod
    def _distinct_users(cls, v: tuple[User, ...]) -> tuple[User, ...]:
        names = [u.username for u in v]
        if dup := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"duplicate username {', '.join(dup)}")
        return v

    def client(self, client_id: str) -> Client | None:
        return next((c for c in self.clients if c.client_id == client_id), None)

    def user(self, username: str) -> User | None:
        return next((u for u in self.users if u.username == username), None)

    @property
    def base_path(self) -> str:
        """Path part of the issuer URL without trailing slash ('' for a bare host)."""
        return urlsplit(self.issuer).path.rstrip("/")

    def __repr__(self) -> str:  # keep passwords out of logs and tracebacks
        return f"IssuerConfig(issuer={self.issuer!r}, host={self.host!r}, port={self.port})"


def parse_config(data: Any, base_dir: Path | None = None, where: str = "config") -> IssuerConfig:
    """Validate a config mapping. Relative ``key_file`` paths resolve against ``base_dir``."""
    return validate(IssuerConfig, data, where, context={"base_dir": base_dir})


def load_config(path: Path | str) -> IssuerConfig:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"config {path} is not valid JSON: {exc}") from exc
    return parse_config(data, base_dir=path.parent, where=str(path))


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
