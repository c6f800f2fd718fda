"""HTTP side of the dev issuer: discovery, JWKS, token, authorization, userinfo and logout.

What portals written for Keycloak expect: PKCE required from public clients and optional for
confidential ones, the standard scopes (openid profile email) accepted on top of a client's own,
refresh tokens with rotation (a rotated refresh token presented again revokes its whole login),
RP-initiated logout, and CORS for the browser origins a client is registered with.

Paths mirror Keycloak's (``{issuer}/protocol/openid-connect/...``) so clients configured for a
Keycloak realm, e.g. pyfirecrest's ``ClientCredentialsAuth(token_uri=...)``, work unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit, urlunsplit

import jwt

from edge.issuer.config import STANDARD_SCOPES, Client, IssuerConfig
from edge.issuer.keys import SIGNING_ALG, jwk_thumbprint, load_or_create_key, public_jwk

logger = logging.getLogger("edge.issuer")

DISCOVERY_PATH = "/.well-known/openid-configuration"
CERTS_PATH = "/protocol/openid-connect/certs"
TOKEN_PATH = "/protocol/openid-connect/token"  # noqa: S105 - a URL path, not a secret
AUTH_PATH = "/protocol/openid-connect/auth"
USERINFO_PATH = "/protocol/openid-connect/userinfo"
LOGOUT_PATH = "/protocol/openid-connect/logout"
HEALTH_PATH = "/healthz"

MAX_BODY = 64 * 1024
_VERIFIER_RE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_S256_CHALLENGE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_FORM_TYPE = "application/x-www-form-urlencoded"


def endpoints(issuer: str) -> dict[str, str]:
    """Absolute endpoint URLs for an issuer URL."""
    base = issuer.rstrip("/")
    return {
        "discovery": base + DISCOVERY_PATH,
        "jwks_uri": base + CERTS_PATH,
        "token_endpoint": base + TOKEN_PATH,
        "authorization_endpoint": base + AUTH_PATH,
        "userinfo_endpoint": base + USERINFO_PATH,
        "end_session_endpoint": base + LOGOUT_PATH,
    }


class OAuthError(Exception):
    """An RFC 6749 section 5.2 / 4.1.2.1 error."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


class PageError(Exception):
    """Authorization request error that must NOT be redirected (bad client_id/redirect_uri)."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def s256(verifier: str) -> str:
    """PKCE S256 code challenge for ``verifier`` (RFC 7636 section 4.2)."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def redirect_uri_allowed(uri: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``uri`` matches one of the configured (fnmatch) patterns.

    Structural checks first, so a wildcard cannot be abused to smuggle in another host
    (``http://127.0.0.1:1@evil.example/callback``) or a fragment.
    """
    if any(c.isspace() or ord(c) < 0x20 or c in "\\#" for c in uri):
        return False
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return False
    try:
        parts.port  # noqa: B018 - raises ValueError for a non-numeric port
    except ValueError:
        return False
    return any(uri == p or fnmatchcase(uri, p) for p in patterns)


def _add_query(uri: str, params: dict[str, str]) -> str:
    parts = urlsplit(uri)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def _single(params: dict[str, list[str]]) -> dict[str, str]:
    """Flatten parse_qs output; RFC 6749 forbids repeating a parameter."""
    out: dict[str, str] = {}
    for key, values in params.items():
        if len(values) != 1:
            raise OAuthError("invalid_request", f"parameter {key!r} repeated")
        out[key] = values[0]
    return out


@dataclass
class _CodeGrant:
    client_id: str
    redirect_uri: str
    code_challenge: str | None  # None: a confidential client that sent no PKCE challenge
    username: str
    scope: str
    nonce: str | None
    auth_time: int
    expires_at: float
    sid: str = ""  # the login this code belongs to


@dataclass
class _Refresh:
    """A refresh token's record (the token itself is kept only as a hash)."""

    client_id: str
    username: str
    scope: str
    sid: str
    auth_time: int
    expires_at: float
    session_expires_at: float
    used: bool = False


@dataclass
class _AuthzRequest:
    client: Client
    redirect_uri: str
    state: str | None
    code_challenge: str | None
    scope: str
    nonce: str | None
    params: dict[str, str]


class IssuerState:
    """Everything the handlers share: config, signing key, pending authorization codes."""

    def __init__(self, config: IssuerConfig) -> None:
        self.config = config
        self.key = load_or_create_key(config.key_file)
        self.kid = config.kid or jwk_thumbprint(self.key)
        self.jwks = {"keys": [public_jwk(self.key, self.kid)]}
        self.urls = endpoints(config.issuer)
        self._codes: dict[str, _CodeGrant] = {}
        self._refresh: dict[str, _Refresh] = {}  # sha256(token) -> record
        self._revoked_sids: set[str] = set()
        self._lock = threading.Lock()
        self.origins = frozenset(o for c in config.clients for o in c.web_origins)

    # -- authorization codes -------------------------------------------------------------
    def issue_code(self, grant: _CodeGrant) -> str:
        code = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            for stale in [c for c, g in self._codes.items() if g.expires_at <= now]:
                del self._codes[stale]
            self._codes[code] = grant
        return code

    def take_code(self, code: str) -> _CodeGrant | None:
        """Remove and return the grant for ``code``: a code is consumed by its first use."""
        with self._lock:
            grant = self._codes.pop(code, None)
        if grant is None or grant.expires_at <= time.time():
            return None
        return grant

    # -- refresh tokens (rotated on every use) -------------------------------------------
    @staticmethod
    def _hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def issue_refresh(self, client_id: str, username: str, scope: str, sid: str, auth_time: int,
                      session_expires_at: float | None = None) -> str:
        token = secrets.token_urlsafe(48)
        now = time.time()
        session_end = session_expires_at or auth_time + self.config.session_lifetime
        record = _Refresh(client_id, username, scope, sid, auth_time,
                          min(now + self.config.refresh_token_lifetime, session_end), session_end)
        with self._lock:
            for stale in [h for h, r in self._refresh.items() if r.expires_at <= now]:
                del self._refresh[stale]
            self._refresh[self._hash(token)] = record
        return token

    def rotate_refresh(self, token: str, client_id: str, scope: str | None = None) -> _Refresh:
        """Consume ``token`` and return its record; a second use revokes the whole login.

        ``scope`` (RFC 6749 section 6) may narrow the record's scope, never widen it; a refused
        request leaves the token usable.
        """
        with self._lock:
            record = self._refresh.get(self._hash(token))
            if record is None or record.sid in self._revoked_sids or record.expires_at <= time.time():
                raise OAuthError("invalid_grant", "refresh token is invalid, expired or revoked")
            if record.client_id != client_id:
                raise OAuthError("invalid_grant", "refresh token was issued to another client")
            if record.used:
                self._revoke_locked(record.sid)
                raise OAuthError("invalid_grant", "refresh token was already used; the session is revoked")
            if scope is not None:
                wanted = list(dict.fromkeys(scope.split()))
                if not set(wanted) <= set(record.scope.split()):
                    raise OAuthError("invalid_scope", "a refresh cannot add scopes")
                record = replace(record, scope=" ".join(wanted))
            self._refresh[self._hash(token)].used = True
            return record

    def revoke_session(self, sid: str) -> None:
        with self._lock:
            self._revoke_locked(sid)

    def _revoke_locked(self, sid: str) -> None:
        self._revoked_sids.add(sid)
        for h in [h for h, r in self._refresh.items() if r.sid == sid]:
            del self._refresh[h]

    # -- tokens --------------------------------------------------------------------------
    def lifetime(self, client_id: str) -> int:
        client = self.config.client(client_id)
        return (client.token_lifetime if client else None) or self.config.token_lifetime

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm=SIGNING_ALG, headers={"kid": self.kid, "typ": "JWT"})

    def access_token(self, username: str, client_id: str, scope: str) -> tuple[str, dict[str, Any]]:
        cfg = self.config
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": cfg.issuer,
            "sub": username,
            "aud": cfg.audience,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime(client_id),
            "jti": str(uuid.uuid4()),
            "typ": "Bearer",
            "azp": client_id,
            "scope": scope,
            "preferred_username": username,
        }
        claims[cfg.username_claim] = username
        return self.sign(claims), claims

    def id_token(self, grant: _CodeGrant, access_token: str) -> str:
        cfg = self.config
        now = int(time.time())
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        claims: dict[str, Any] = {
            "iss": cfg.issuer,
            "sub": grant.username,
            "aud": grant.client_id,
            "iat": now,
            "exp": now + self.lifetime(grant.client_id),
            "auth_time": grant.auth_time,
            "azp": grant.client_id,
            "typ": "ID",
            "at_hash": _b64url(digest[: len(digest) // 2]),
            "sid": grant.sid,
            **self.user_claims(grant.username, grant.scope),
        }
        claims[cfg.username_claim] = grant.username
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        return self.sign(claims)

    def user_claims(self, username: str, scope: str) -> dict[str, Any]:
        """Standard claims about ``username`` released for ``scope`` (OIDC Core 5.4)."""
        scopes = scope.split()
        profile = self.config.user(username)
        claims: dict[str, Any] = {"sub": username, "preferred_username": username}
        if "profile" in scopes and profile and profile.name:
            claims["name"] = profile.name
        if "email" in scopes and profile and profile.email:
            claims["email"] = profile.email
            claims["email_verified"] = False
        return claims

    def verify_own(self, token: str, *, verify_exp: bool = True) -> dict[str, Any]:
        """Claims of a token this issuer signed (signature, issuer, expiry); jwt.PyJWTError if not."""
        return jwt.decode(token, self.key.public_key(), algorithms=[SIGNING_ALG], issuer=self.config.issuer,
                          options={"verify_aud": False, "verify_exp": verify_exp, "require": ["iss", "sub", "exp"]})

    def discovery(self) -> dict[str, Any]:
        scopes = set(STANDARD_SCOPES)
        for client in self.config.clients:
            scopes.update(client.scope.split())
        return {
            "issuer": self.config.issuer,
            "authorization_endpoint": self.urls["authorization_endpoint"],
            "token_endpoint": self.urls["token_endpoint"],
            "jwks_uri": self.urls["jwks_uri"],
            "userinfo_endpoint": self.urls["userinfo_endpoint"],
            "end_session_endpoint": self.urls["end_session_endpoint"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [SIGNING_ALG],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": sorted(scopes),
            "claims_supported": sorted(
                {"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "sid", "preferred_username",
                 "name", "email", "email_verified", self.config.username_claim}
            ),
            "authorization_response_iss_parameter_supported": True,
            "userinfo_signing_alg_values_supported": ["none"],
        }


def _resolve_scope(requested: str | None, client: Client) -> str:
    own = client.scope.split()
    if requested is None or not requested.strip():
        return " ".join(own)
    wanted = list(dict.fromkeys(requested.split()))
    extra = [s for s in wanted if s not in own and s not in STANDARD_SCOPES]
    if extra:
        raise OAuthError("invalid_scope", f"scope not allowed for this client: {' '.join(extra)}")
    # the gateway's audience scope stays on the token whatever standard scopes a library asks for
    return " ".join(wanted + [s for s in own if s not in wanted and s not in STANDARD_SCOPES])


_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - FirecREST dev issuer</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:22em;margin:4em auto;padding:0 1em}}
label,input{{display:block;width:100%;margin:.3em 0;font:inherit}}input{{padding:.45em;box-sizing:border-box}}
input[type=submit]{{margin-top:1em;cursor:pointer}}.err{{color:#b00}}</style></head>
<body><h1>Sign in</h1><p>Client <code>{client_id}</code> requests access ({scope}).</p>{error}
<form method="post" action="{action}">{hidden}
<label for="username">Username</label><input id="username" name="username" autocomplete="username" value="{username}" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<input type="submit" value="Sign in"></form>
<p><small>Development identity provider. Not for production.</small></p></body></html>
"""

_AUTHZ_FIELDS = (
    "response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
    "code_challenge_method", "prompt",
)


class IssuerHandler(BaseHTTPRequestHandler):
    server: IssuerServer
    protocol_version = "HTTP/1.1"
    server_version = "f7t-dev-issuer/1"
    sys_version = ""
    timeout = 30  # seconds; idle/slow connections must not pin threads forever
    _log_note = ""  # extra context for this request's log line (never secrets)

    # -- plumbing ------------------------------------------------------------------------
    @property
    def state(self) -> IssuerState:
        return self.server.state

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # One line per request. The query string is dropped (it can carry state/code values)
        # and bodies/headers are never logged, so secrets, passwords and tokens stay out.
        path = urlsplit(getattr(self, "path", "") or "").path or "-"
        status = code.value if isinstance(code, HTTPStatus) else code
        note = getattr(self, "_log_note", "")
        logger.info('%s "%s %s" %s%s', self.client_address[0], getattr(self, "command", None) or "-",
                    path, status, f" {note}" if note else "")

    def log_error(self, format: str, *args: Any) -> None:
        logger.debug(format, *args)

    def log_message(self, format: str, *args: Any) -> None:
        logger.info(format, *args)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in {**self._cors_headers(), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self._send(status, body, "application/json", headers)

    def _oauth_error(self, err: OAuthError) -> None:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if err.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="dev-issuer"'
        self._log_note = f"{self._log_note} error={err.error}".strip()
        self._json(err.status, {"error": err.error, "error_description": err.description}, headers)

    def _html(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/html; charset=utf-8", {
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        })

    def _read_form(self) -> dict[str, str]:
        if self.headers.get("Transfer-Encoding"):
            raise OAuthError("invalid_request", "chunked request bodies are not supported")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != _FORM_TYPE:
            raise OAuthError("invalid_request", f"Content-Type must be {_FORM_TYPE}")
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            raise OAuthError("invalid_request", "bad Content-Length") from None
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            raise OAuthError("invalid_request", "request body too large")
        raw = self.rfile.read(length).decode("utf-8", errors="replace")
        return _single(parse_qs(raw, keep_blank_values=True))

    def _query(self) -> dict[str, str]:
        return _single(parse_qs(urlsplit(self.path).query, keep_blank_values=True))

    # -- dispatch ------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_OPTIONS(self) -> None:
        """CORS preflight, answered for the origins clients are registered with."""
        self._log_note = ""
        headers = {"Access-Control-Max-Age": "600"}
        if self._cors_headers():
            headers |= {"Access-Control-Allow-Methods": "GET, POST",
                        "Access-Control-Allow-Headers": "authorization, content-type"}
        self._send(204, b"", "text/plain", headers)

    # endpoints a browser script calls directly; the others are navigated to
    _CORS_PATHS = (DISCOVERY_PATH, CERTS_PATH, TOKEN_PATH, USERINFO_PATH)

    def _cors_headers(self) -> dict[str, str]:
        origin = self.headers.get("Origin") if hasattr(self, "headers") else None
        path = urlsplit(getattr(self, "path", "") or "").path
        if not origin or origin not in self.state.origins or not path.endswith(self._CORS_PATHS):
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def _dispatch(self, method: str) -> None:
        self._log_note = ""
        path = urlsplit(self.path).path
        base = self.state.config.base_path
        rel = path[len(base):] if base and path.startswith(base + "/") else path
        if path == HEALTH_PATH:
            rel = HEALTH_PATH
        routes = {
            HEALTH_PATH: {"GET": self._healthz},
            DISCOVERY_PATH: {"GET": self._discovery},
            CERTS_PATH: {"GET": self._certs},
            TOKEN_PATH: {"POST": self._token},
            AUTH_PATH: {"GET": self._authorize_get, "POST": self._authorize_post},
            USERINFO_PATH: {"GET": self._userinfo, "POST": self._userinfo},
            LOGOUT_PATH: {"GET": self._logout, "POST": self._logout},
        }
        if (base and not path.startswith(base + "/") and path != HEALTH_PATH) or rel not in routes:
            self._json(404, {"error": "not_found", "error_description": "no such endpoint"})
            return
        handler = routes[rel].get(method)
        if handler is None:
            self._json(405, {"error": "invalid_request", "error_description": f"{method} not allowed"},
                       {"Allow": ", ".join(routes[rel])})
            return
        try:
            handler()
        except OAuthError as err:
            self._oauth_error(err)
        except Exception:
            logger.exception("internal error handling %s %s", method, path)
            self.close_connection = True
            self._json(500, {"error": "server_error", "error_description": "internal error"})

    # -- simple endpoints ----------------------------------------------------------------
    def _healthz(self) -> None:
        self._json(200, {"status": "ok"})

    def _discovery(self) -> None:
        self._json(200, self.state.discovery(), {"Cache-Control": "max-age=60"})

    def _certs(self) -> None:
        self._json(200, self.state.jwks, {"Cache-Control": "max-age=60"})

    # -- token endpoint ------------------------------------------------------------------
    def _authenticate_client(self, form: dict[str, str]) -> Client:
        """client_secret_basic, client_secret_post, or 'none' for public clients."""
        client_id = form.get("client_id")
        secret = form.get("client_secret")
        header = self.headers.get("Authorization")
        basic_candidates: tuple[str, ...] = ()
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "basic":
                raise OAuthError("invalid_client", "unsupported client authentication scheme", 401)
            if secret is not None:
                raise OAuthError("invalid_request", "use only one client authentication method")
            try:
                decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
            raw_id, sep, raw_secret = decoded.partition(":")
            if not sep:
                raise OAuthError("invalid_client", "malformed Basic credentials", 401)
            # RFC 6749 2.3.1 form-encodes id and secret before Base64; many clients do not.
            basic_id = unquote_plus(raw_id)
            if client_id is not None and client_id not in (raw_id, basic_id):
                raise OAuthError("invalid_request", "client_id does not match the Authorization header")
            client_id = raw_id if self.state.config.client(raw_id) is not None else basic_id
            basic_candidates = (raw_secret, unquote_plus(raw_secret))
        if not client_id:
            raise OAuthError("invalid_client", "client authentication required", 401)
        client = self.state.config.client(client_id)
        if client is None:
            raise OAuthError("invalid_client", "client authentication failed", 401)
        self._log_note = f"client={client.client_id}"
        presented = basic_candidates or ((secret,) if secret is not None else ())
        if client.client_secret is None:
            if presented:
                raise OAuthError("invalid_client", "public client must not send a secret", 401)
            return client
        expected = client.client_secret.encode()
        if not any(hmac.compare_digest(p.encode(), expected) for p in presented):
            raise OAuthError("invalid_client", "client authentication failed", 401)
        return client

    def _token(self) -> None:
        form = self._read_form()
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "missing grant_type")
        if grant_type == "client_credentials":
            payload = self._grant_client_credentials(form)
        elif grant_type == "authorization_code":
            payload = self._grant_authorization_code(form)
        elif grant_type == "refresh_token":
            payload = self._grant_refresh_token(form)
        else:
            raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        self._log_note += f" grant={grant_type}"
        self._json(200, payload, {"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _grant_client_credentials(self, form: dict[str, str]) -> dict[str, Any]:
        client = self._authenticate_client(form)
        if client.public or not client.username:
            raise OAuthError("unauthorized_client", "client may not use the client_credentials grant")
        scope = _resolve_scope(form.get("scope"), client)
        token, _ = self.state.access_token(client.username, client.client_id, scope)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.state.config.token_lifetime,
            "scope": scope,
        }

    def _grant_authorization_code(self, form: dict[str, str]) -> dict[str, Any]:
        client = self._authenticate_client(form)
        code = form.get("code")
        verifier = form.get("code_verifier")
        redirect_uri = form.get("redirect_uri")
        if not code or not redirect_uri:
            raise OAuthError("invalid_request", "code and redirect_uri are required")
        if not verifier and client.public:
            raise OAuthError("invalid_request", "code_verifier is required (PKCE)")
        grant = self.state.take_code(code)  # consumed even if the checks below fail
        if grant is None:
            raise OAuthError("invalid_grant", "authorization code is invalid, expired or already used")
        if grant.client_id != client.client_id:
            raise OAuthError("invalid_grant", "authorization code was issued to another client")
        if grant.redirect_uri != redirect_uri:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
        if grant.code_challenge is None:
            # RFC 9700 2.1.1: a verifier without a challenge is refused (a PKCE downgrade)
            if verifier:
                raise OAuthError("invalid_grant", "code_verifier sent but the authorization request had no PKCE")
        elif not verifier:
            raise OAuthError("invalid_request", "code_verifier is required (PKCE)")
        elif not _VERIFIER_RE.match(verifier) or not hmac.compare_digest(s256(verifier), grant.code_challenge):
            raise OAuthError("invalid_grant", "PKCE verification failed")
        self._log_note += f" user={grant.username}"
        return self._code_flow_tokens(grant)

    def _code_flow_tokens(self, grant: _CodeGrant, session_expires_at: float | None = None) -> dict[str, Any]:
        """Access token, refresh token (a new one each time) and, for openid, an ID token."""
        state = self.state
        token, _ = state.access_token(grant.username, grant.client_id, grant.scope)
        payload: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": state.lifetime(grant.client_id),
            "scope": grant.scope,
            "refresh_token": state.issue_refresh(grant.client_id, grant.username, grant.scope, grant.sid,
                                                 grant.auth_time, session_expires_at),
            "refresh_expires_in": state.config.refresh_token_lifetime,
        }
        if "openid" in grant.scope.split():
            payload["id_token"] = state.id_token(grant, token)
        return payload

    def _grant_refresh_token(self, form: dict[str, str]) -> dict[str, Any]:
        client = self._authenticate_client(form)
        token = form.get("refresh_token")
        if not token:
            raise OAuthError("invalid_request", "refresh_token is required")
        record = self.state.rotate_refresh(token, client.client_id, form.get("scope") or None)
        scope = record.scope
        self._log_note += f" user={record.username}"
        grant = _CodeGrant(client.client_id, "", None, record.username, scope, None, record.auth_time, 0.0,
                           record.sid)
        return self._code_flow_tokens(grant, record.session_expires_at)

    # -- authorization endpoint ----------------------------------------------------------
    def _parse_authz(self, params: dict[str, str]) -> _AuthzRequest:
        cfg = self.state.config
        client = cfg.client(params.get("client_id", ""))
        if client is None:
            raise PageError("Unknown client_id.")
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri or not redirect_uri_allowed(redirect_uri, client.redirect_uris or cfg.redirect_uris):
            raise PageError("Missing or unregistered redirect_uri.")
        self._log_note = f"client={client.client_id}"
        state = params.get("state")

        def fail(error: str, description: str) -> OAuthRedirect:
            return OAuthRedirect(redirect_uri, error, description, state)

        if params.get("response_type") != "code":
            raise fail("unsupported_response_type", "only response_type=code is supported")
        if "none" in params.get("prompt", "").split():
            # no single sign-on session here: a silent renewal must use its refresh token
            raise fail("login_required", "the user must sign in")
        challenge = params.get("code_challenge") or None
        if challenge is None and client.public:
            raise fail("invalid_request", "PKCE code_challenge is required")
        if challenge is not None and params.get("code_challenge_method") != "S256":
            raise fail("invalid_request", "code_challenge_method must be S256")
        if challenge is not None and not _S256_CHALLENGE_RE.match(challenge):
            raise fail("invalid_request", "malformed code_challenge")
        try:
            scope = _resolve_scope(params.get("scope"), client)
        except OAuthError as err:
            raise fail(err.error, err.description) from None
        return _AuthzRequest(client, redirect_uri, state, challenge, scope, params.get("nonce"), params)

    def _login_page(self, req: _AuthzRequest, status: int = 200, error: str = "", username: str = "") -> None:
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(req.params[name])}">'
            for name in _AUTHZ_FIELDS if name in req.params
        )
        page = _LOGIN_PAGE.format(
            client_id=html.escape(req.client.client_id),
            scope=html.escape(req.scope),
            error=f'<p class="err">{html.escape(error)}</p>' if error else "",
            action=html.escape(urlsplit(self.state.urls["authorization_endpoint"]).path),
            hidden=hidden,
            username=html.escape(username),
        )
        self._html(status, page)

    def _authorize(self, params_source: str) -> None:
        try:
            params = self._query() if params_source == "query" else self._read_form()
            req = self._parse_authz(params)
            if params_source == "query":
                self._login_page(req)
            else:
                self._login(req, params)
        except PageError as err:
            self._log_note = "error=invalid_request"
            self._html(400, f"<!doctype html><title>Bad request</title><h1>Bad request</h1>"
                            f"<p>{html.escape(err.description)}</p>")
        except OAuthError as err:  # malformed query/form before client and redirect_uri are known
            self._log_note = f"error={err.error}"
            self._html(err.status, f"<!doctype html><title>Bad request</title><h1>Bad request</h1>"
                                   f"<p>{html.escape(err.description)}</p>")
        except OAuthRedirect as redirect:
            self._log_note += f" error={redirect.error}"
            self._redirect(redirect.location())

    def _authorize_get(self) -> None:
        self._authorize("query")

    def _authorize_post(self) -> None:
        self._authorize("form")

    def _login(self, req: _AuthzRequest, form: dict[str, str]) -> None:
        username = form.get("username", "")
        password = form.get("password", "")
        user = self.state.config.user(username)
        expected = user.password if user is not None else None
        # Compare against something even for unknown users to keep timing uniform.
        ok = hmac.compare_digest(password.encode(), (expected if expected is not None else "\0" * 32).encode())
        if expected is None or not ok:
            self._log_note += " login=failed"
            self._login_page(req, status=200, error="Invalid username or password.", username=username)
            return
        now = time.time()
        code = self.state.issue_code(_CodeGrant(
            client_id=req.client.client_id,
            redirect_uri=req.redirect_uri,
            code_challenge=req.code_challenge,
            username=username,
            scope=req.scope,
            nonce=req.nonce,
            auth_time=int(now),
            expires_at=now + self.state.config.code_lifetime,
            sid=secrets.token_urlsafe(16),
        ))
        self._log_note += f" user={username} login=ok"
        params = {"code": code}
        if req.state is not None:
            params["state"] = req.state
        params["iss"] = self.state.config.issuer  # RFC 9207
        self._redirect(_add_query(req.redirect_uri, params))

    # -- userinfo (OIDC Core 5.3) ---------------------------------------------------------
    def _userinfo(self) -> None:
        header = self.headers.get("Authorization") or ""
        scheme, _, token = header.partition(" ")

        def refuse(error: str, description: str, status: int = 401) -> None:
            self._log_note = f"error={error}"
            challenge = f'Bearer error="{error}", error_description="{description}"'
            self._json(status, {"error": error, "error_description": description},
                       {"WWW-Authenticate": challenge, "Cache-Control": "no-store"})

        if scheme.lower() != "bearer" or not token.strip():
            refuse("invalid_request", "a Bearer access token is required")
            return
        try:
            claims = self.state.verify_own(token.strip())
        except jwt.PyJWTError:
            refuse("invalid_token", "the access token is invalid or expired")
            return
        if claims.get("typ") != "Bearer":
            refuse("invalid_token", "not an access token")
            return
        username = str(claims.get("preferred_username") or claims["sub"])
        self._log_note = f"user={username}"
        self._json(200, self.state.user_claims(username, str(claims.get("scope", ""))),
                   {"Cache-Control": "no-store"})

    # -- RP-initiated logout (OIDC RP-Initiated Logout 1.0) -----------------------------------
    def _logout(self) -> None:
        try:
            params = self._query() if self.command == "GET" else self._read_form()
        except OAuthError as err:
            self._page(400, "Bad request", err.description)
            return
        cfg = self.state.config
        client = cfg.client(params.get("client_id", "")) if params.get("client_id") else None
        if params.get("client_id") and client is None:
            self._page(400, "Bad request", "Unknown client_id.")
            return
        sid = None
        hint = params.get("id_token_hint")
        if hint:
            try:
                claims = self.state.verify_own(hint, verify_exp=False)  # an expired hint still names the login
            except jwt.PyJWTError:
                self._page(400, "Bad request", "The id_token_hint was not issued by this provider.")
                return
            aud = claims.get("aud")
            hinted = cfg.client(aud if isinstance(aud, str) else "")
            if client is not None and hinted is not None and hinted is not client:
                self._page(400, "Bad request", "client_id does not match the id_token_hint.")
                return
            client = client or hinted
            sid = claims.get("sid")
        target = params.get("post_logout_redirect_uri")
        if target:
            allowed = (client.post_logout_redirect_uris or cfg.post_logout_redirect_uris) if client else ()
            if not redirect_uri_allowed(target, allowed):
                self._log_note = "error=invalid_request"
                self._page(400, "Bad request", "Missing client or unregistered post_logout_redirect_uri.")
                return
        if sid:
            self.state.revoke_session(str(sid))
        self._log_note = f"client={client.client_id if client else '-'} logout={'session' if sid else 'none'}"
        if target:
            extra = {"state": params["state"]} if params.get("state") is not None else {}
            self._redirect(_add_query(target, extra))
        else:
            self._page(200, "Signed out", "You are signed out.")

    def _page(self, status: int, title: str, text: str) -> None:
        self._html(status, f"<!doctype html><title>{html.escape(title)}</title><h1>{html.escape(title)}</h1>"
                           f"<p>{html.escape(text)}</p>")

    def _redirect(self, location: str) -> None:
        self._send(302, b"", "text/plain", {"Location": location, "Cache-Control": "no-store"})


class OAuthRedirect(Exception):
    """Authorization error reported to the client by redirecting (RFC 6749 4.1.2.1)."""

    def __init__(self, redirect_uri: str, error: str, description: str, state: str | None) -> None:
        super().__init__(error)
        self.redirect_uri = redirect_uri
        self.error = error
        self.description = description
        self.state = state

    def location(self) -> str:
        params = {"error": self.error, "error_description": self.description}
        if self.state is not None:
            params["state"] = self.state
        return _add_query(self.redirect_uri, params)


class IssuerServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, config: IssuerConfig) -> None:
        self.state = IssuerState(config)
        super().__init__((config.host, config.port), IssuerHandler)


def make_server(config: IssuerConfig) -> IssuerServer:
    """Bind (but do not start) the issuer. Run it with ``serve_forever()``."""
    return IssuerServer(config)
