"""End-to-end tests for the development OIDC issuer (edge.issuer), run as a subprocess."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests

from edge.issuer.config import PORTAL_CLIENT_ID, PUBLIC_CLIENT_ID, load_config, make_config

REPO = Path(__file__).resolve().parents[2]
REDIRECT = "http://127.0.0.1:8765/callback"
PORTAL = "http://127.0.0.1:8766/portal/"
PORTAL_ORIGIN = "http://127.0.0.1:8766"
PORTAL_TOKEN_LIFETIME = 2  # seconds: the tests outlive it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Issuer:
    def __init__(self, proc: subprocess.Popen, config: dict, config_path: Path) -> None:
        self.proc = proc
        self.config = config
        self.config_path = config_path
        self.issuer = config["issuer"]
        self.token_uri = self.issuer + "/protocol/openid-connect/token"
        self.auth_uri = self.issuer + "/protocol/openid-connect/auth"
        self.jwks_uri = self.issuer + "/protocol/openid-connect/certs"

    def client(self, user: str) -> dict:
        return next(c for c in self.config["clients"] if c["client_id"] == f"{user}-client")

    def password(self, user: str) -> str:
        return next(u["password"] for u in self.config["users"] if u["username"] == user)

    def verify(self, token: str, audience: str | None = None) -> dict:
        jwk_client = jwt.PyJWKClient(self.jwks_uri)
        key = jwk_client.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=audience or self.config["audience"],
            issuer=self.issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )


def _start(config_path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "edge.issuer", "--config", str(config_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_healthy(proc: subprocess.Popen, url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"issuer exited early:\n{proc.stderr.read() if proc.stderr else ''}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise RuntimeError("issuer did not become healthy")


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("issuer")
    port = _free_port()
    config = make_config(state, port, ["alice", "bob"], portal_url=PORTAL,
                         portal_token_lifetime=PORTAL_TOKEN_LIFETIME)
    config_path = state / "config.json"
    proc = _start(config_path)
    try:
        _wait_healthy(proc, f"http://127.0.0.1:{port}/healthz")
        yield Issuer(proc, config, config_path)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stderr = proc.stderr.read() if proc.stderr else ""
        # secrets, passwords and tokens never reach the log
        for client in config["clients"]:
            if client.get("client_secret"):
                assert client["client_secret"] not in stderr
        for user in config["users"]:
            assert user["password"] not in stderr
        assert "eyJ" not in stderr


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action")
        elif tag == "input" and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""


def _authorize(issuer: Issuer, client_id: str, challenge: str, user: str = "alice",
               password: str | None = None, state: str = "st-123", nonce: str = "n-456") -> requests.Response:
    """GET the login form, then POST the credentials back; returns the (unfollowed) POST response."""
    s = requests.Session()
    r = s.get(issuer.auth_uri, params={
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
        "scope": "openid firecrest", "state": state, "nonce": nonce,
        "code_challenge": challenge, "code_challenge_method": "S256",
    }, allow_redirects=False, timeout=5)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/html")
    form = _FormParser()
    form.feed(r.text)
    assert form.action and "password" in form.fields and "username" in form.fields
    form.fields.update(username=user, password=password if password is not None else issuer.password(user))
    action = f"{urlsplit(issuer.issuer).scheme}://{urlsplit(issuer.issuer).netloc}{form.action}"
    return s.post(action, data=form.fields, allow_redirects=False, timeout=5)


def _code_from(resp: requests.Response, issuer: Issuer, state: str = "st-123") -> str:
    assert resp.status_code == 302, resp.text
    loc = urlsplit(resp.headers["Location"])
    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == REDIRECT
    q = parse_qs(loc.query)
    assert q["state"] == [state]
    assert q["iss"] == [issuer.issuer]
    return q["code"][0]


# -- discovery / JWKS -------------------------------------------------------------------------


def test_discovery(issuer: Issuer) -> None:
    r = requests.get(issuer.issuer + "/.well-known/openid-configuration", timeout=5)
    assert r.status_code == 200
    d = r.json()
    assert d["issuer"] == issuer.issuer
    assert d["jwks_uri"] == issuer.jwks_uri
    assert d["token_endpoint"] == issuer.token_uri
    assert d["authorization_endpoint"] == issuer.auth_uri
    assert "code" in d["response_types_supported"]
    assert {"client_credentials", "authorization_code"} <= set(d["grant_types_supported"])
    assert d["code_challenge_methods_supported"] == ["S256"]
    assert d["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"client_secret_basic", "client_secret_post"} <= set(d["token_endpoint_auth_methods_supported"])


def test_jwks(issuer: Issuer) -> None:
    keys = requests.get(issuer.jwks_uri, timeout=5).json()["keys"]
    assert len(keys) == 1
    k = keys[0]
    assert k["kid"] == "f7t-dev-1" and k["kty"] == "RSA" and k["use"] == "sig" and k["alg"] == "RS256"
    assert k["n"] and k["e"] and "d" not in k and "p" not in k


def test_key_file_created_private(issuer: Issuer) -> None:
    key_file = Path(issuer.config["key_file"])
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(issuer.config_path.stat().st_mode) == 0o600


def test_healthz_and_unknown_path(issuer: Issuer) -> None:
    assert requests.get(issuer.issuer + "/healthz", timeout=5).status_code == 200
    assert requests.get(issuer.issuer + "/nope", timeout=5).status_code == 404


# -- client credentials ----------------------------------------------------------------------


def _check_access_token(issuer: Issuer, token: str, user: str, client_id: str) -> dict:
    header = jwt.get_unverified_header(token)
    assert header["kid"] == "f7t-dev-1" and header["alg"] == "RS256"
    claims = issuer.verify(token)
    assert claims["iss"] == issuer.issuer
    assert claims["aud"] == "firecrest"
    assert claims["preferred_username"] == user
    assert claims["sub"] == user
    assert claims["azp"] == client_id
    assert claims["typ"] == "Bearer"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["nbf"] <= time.time() + 1
    assert claims["jti"]
    assert "firecrest" in claims["scope"].split()
    return claims


def test_client_credentials_post(issuer: Issuer) -> None:
    c = issuer.client("alice")
    r = requests.post(issuer.token_uri, data={
        "grant_type": "client_credentials", "client_id": c["client_id"], "client_secret": c["client_secret"],
    }, timeout=5)
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    _check_access_token(issuer, body["access_token"], "alice", "alice-client")


def test_client_credentials_basic(issuer: Issuer) -> None:
    c = issuer.client("bob")
    r = requests.post(issuer.token_uri, data={"grant_type": "client_credentials"},
                      auth=(c["client_id"], c["client_secret"]), timeout=5)
    assert r.status_code == 200, r.text
    _check_access_token(issuer, r.json()["access_token"], "bob", "bob-client")


@pytest.mark.parametrize("how", ["post", "basic", "unknown-client", "no-auth"])
def test_client_credentials_refused(issuer: Issuer, how: str) -> None:
    c = issuer.client("alice")
    data = {"grant_type": "client_credentials"}
    auth = None
    if how == "post":
        data |= {"client_id": c["client_id"], "client_secret": "wrong"}
    elif how == "basic":
        auth = (c["client_id"], "wrong")
    elif how == "unknown-client":
        data |= {"client_id": "mallory-client", "client_secret": "x"}
    r = requests.post(issuer.token_uri, data=data, auth=auth, timeout=5)
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert "error_description" in r.json()
    assert "access_token" not in r.json()


def test_token_endpoint_errors(issuer: Issuer) -> None:
    c = issuer.client("alice")
    creds = {"client_id": c["client_id"], "client_secret": c["client_secret"]}
    r = requests.post(issuer.token_uri, data={"grant_type": "password", **creds}, timeout=5)
    assert (r.status_code, r.json()["error"]) == (400, "unsupported_grant_type")
    r = requests.post(issuer.token_uri, data={"grant_type": "client_credentials", "scope": "admin", **creds},
                      timeout=5)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_scope")
    r = requests.post(issuer.token_uri, data={"grant_type": "client_credentials"},
                      auth=(PUBLIC_CLIENT_ID, ""), timeout=5)
    assert r.status_code in (400, 401)
    assert requests.get(issuer.token_uri, timeout=5).status_code == 405


def test_pyfirecrest_client_credentials(issuer: Issuer) -> None:
    import firecrest
    c = issuer.client("alice")
    auth = firecrest.ClientCredentialsAuth(c["client_id"], c["client_secret"], issuer.token_uri)
    token = auth.get_access_token()
    _check_access_token(issuer, token, "alice", "alice-client")
    assert auth.get_access_token() == token  # cached via expires_in
    basic = firecrest.ClientCredentialsAuth(c["client_id"], c["client_secret"], issuer.token_uri,
                                            client_auth_method="client_secret_basic")
    _check_access_token(issuer, basic.get_access_token(), "alice", "alice-client")
    bad = firecrest.ClientCredentialsAuth(c["client_id"], "wrong", issuer.token_uri)
    with pytest.raises(Exception, match=r"401|invalid_client"):
        bad.get_access_token()


# -- authorization code + PKCE ---------------------------------------------------------------


def _exchange(issuer: Issuer, code: str, verifier: str, client_id: str = PUBLIC_CLIENT_ID,
              auth: tuple[str, str] | None = None, redirect_uri: str = REDIRECT) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "code_verifier": verifier}
    if auth is None:
        data["client_id"] = client_id
    return requests.post(issuer.token_uri, data=data, auth=auth, timeout=5)


def test_auth_code_pkce_public_client(issuer: Issuer) -> None:
    verifier, challenge = _pkce()
    code = _code_from(_authorize(issuer, PUBLIC_CLIENT_ID, challenge), issuer)
    r = _exchange(issuer, code, verifier)
    assert r.status_code == 200, r.text
    body = r.json()
    claims = _check_access_token(issuer, body["access_token"], "alice", PUBLIC_CLIENT_ID)
    assert claims["scope"] == "openid firecrest"
    id_claims = issuer.verify(body["id_token"], audience=PUBLIC_CLIENT_ID)
    assert id_claims["sub"] == "alice" and id_claims["nonce"] == "n-456"
    # the code is single-use
    again = _exchange(issuer, code, verifier)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


def test_auth_code_wrong_verifier(issuer: Issuer) -> None:
    verifier, challenge = _pkce()
    code = _code_from(_authorize(issuer, PUBLIC_CLIENT_ID, challenge), issuer)
    wrong, _ = _pkce()
    r = _exchange(issuer, code, wrong)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
    assert "access_token" not in r.json()
    # a failed attempt burns the code
    assert _exchange(issuer, code, verifier).status_code == 400


def test_auth_code_bound_to_client_and_redirect(issuer: Issuer) -> None:
    verifier, challenge = _pkce()
    code = _code_from(_authorize(issuer, PUBLIC_CLIENT_ID, challenge), issuer)
    bob = issuer.client("bob")
    r = _exchange(issuer, code, verifier, auth=(bob["client_id"], bob["client_secret"]))
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")

    verifier, challenge = _pkce()
    code = _code_from(_authorize(issuer, PUBLIC_CLIENT_ID, challenge), issuer)
    r = _exchange(issuer, code, verifier, redirect_uri="http://127.0.0.1:9999/callback")
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")


def test_auth_code_confidential_client(issuer: Issuer) -> None:
    c = issuer.client("bob")
    verifier, challenge = _pkce()
    code = _code_from(_authorize(issuer, c["client_id"], challenge, user="bob"), issuer)
    r = _exchange(issuer, code, verifier, client_id=c["client_id"])  # no secret: refused
    assert (r.status_code, r.json()["error"]) == (401, "invalid_client")

    verifier, challenge = _pkce()
    code = _code_from(_authorize(issuer, c["client_id"], challenge, user="bob"), issuer)
    r = _exchange(issuer, code, verifier, auth=(c["client_id"], c["client_secret"]))
    assert r.status_code == 200, r.text
    _check_access_token(issuer, r.json()["access_token"], "bob", "bob-client")


def test_login_wrong_password(issuer: Issuer) -> None:
    _, challenge = _pkce()
    r = _authorize(issuer, PUBLIC_CLIENT_ID, challenge, password="not-the-password")
    assert r.status_code == 200
    assert "Location" not in r.headers
    assert "Invalid username or password" in r.text


def test_authorize_rejects_bad_requests(issuer: Issuer) -> None:
    _, challenge = _pkce()
    base = {"response_type": "code", "client_id": PUBLIC_CLIENT_ID, "redirect_uri": REDIRECT,
            "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"}

    def get(**over: str) -> requests.Response:
        params = {k: v for k, v in (base | over).items() if v is not None}
        return requests.get(issuer.auth_uri, params=params, allow_redirects=False, timeout=5)

    # unregistered redirect_uri / client: error page, never a redirect
    for uri in ("http://evil.example/callback", "http://127.0.0.1:1@evil.example/callback",
                "http://127.0.0.1:8765/other"):
        r = get(redirect_uri=uri)
        assert r.status_code == 400 and "Location" not in r.headers, uri
    assert get(client_id="nobody").status_code == 400
    # other errors are redirected back to the client
    for over, err in (({"code_challenge": None}, "invalid_request"),
                      ({"code_challenge_method": "plain"}, "invalid_request"),
                      ({"response_type": "token"}, "unsupported_response_type"),
                      ({"prompt": "none"}, "login_required"),
                      ({"scope": "openid admin"}, "invalid_scope")):
        r = get(**over)
        assert r.status_code == 302, over
        q = parse_qs(urlsplit(r.headers["Location"]).query)
        assert q["error"] == [err] and q["state"] == ["s"]


def test_login_form_escapes_input(issuer: Issuer) -> None:
    _, challenge = _pkce()
    r = requests.get(issuer.auth_uri, params={
        "response_type": "code", "client_id": PUBLIC_CLIENT_ID, "redirect_uri": REDIRECT,
        "state": '"><script>alert(1)</script>', "code_challenge": challenge, "code_challenge_method": "S256",
    }, timeout=5)
    assert r.status_code == 200
    assert "<script>" not in r.text


# -- config helper / lifecycle -----------------------------------------------------------------


def test_make_config_idempotent(tmp_path: Path) -> None:
    first = make_config(tmp_path, 12345, ["alice", "bob"])
    assert [c["client_id"] for c in first["clients"]][:2] == ["alice-client", "bob-client"]
    assert first["issuer"] == "http://127.0.0.1:12345/realms/f7t"
    assert json.loads((tmp_path / "config.json").read_text()) == first
    assert make_config(tmp_path, 9999, ["carol"]) == first
    assert Path(first["key_file"]).exists()
    cfg = load_config(tmp_path / "config.json")
    assert cfg.base_path == "/realms/f7t"
    assert first["clients"][0]["client_secret"] not in repr(cfg)


def test_sigterm_graceful(tmp_path: Path) -> None:
    port = _free_port()
    config = make_config(tmp_path, port, ["alice"])
    # generate the key at start-up this time
    os.unlink(config["key_file"])
    proc = _start(tmp_path / "config.json")
    try:
        _wait_healthy(proc, config["issuer"] + "/healthz")
        assert stat.S_IMODE(Path(config["key_file"]).stat().st_mode) == 0o600
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        err = proc.stderr.read() if proc.stderr else ""
        assert re.search(r'"GET /realms/f7t/healthz" 200', err), err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bad_config_exits_nonzero(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"issuer": "http://127.0.0.1:1", "key_file": "k.pem"}))
    proc = _start(bad)
    assert proc.wait(timeout=10) == 2
    assert "audience" in (proc.stderr.read() if proc.stderr else "")


# -- what portals written for Keycloak expect ---------------------------------------------------
# Each flow below is driven by Authlib's OAuth2Session, the client side of many Python portals,
# with only the issuer's discovery document and the registered client as input.


def _discover(issuer: Issuer) -> dict:
    return requests.get(issuer.issuer + "/.well-known/openid-configuration", timeout=5).json()


def _log_in(auth_url: str, user: str, password: str) -> str:
    """A user at the login form: GET it, fill it in, POST; returns the redirect Location."""
    s = requests.Session()
    r = s.get(auth_url, allow_redirects=False, timeout=5)
    assert r.status_code == 200, r.text
    form = _FormParser()
    form.feed(r.text)
    form.fields.update(username=user, password=password)
    parts = urlsplit(auth_url)
    r = s.post(f"{parts.scheme}://{parts.netloc}{form.action}", data=form.fields, allow_redirects=False,
               timeout=5)
    assert r.status_code == 302, r.text
    return r.headers["Location"]


def _portal_session(issuer: Issuer, user: str = "alice", client_id: str = PORTAL_CLIENT_ID,
                    secret: str | None = None, redirect_uri: str = PORTAL, pkce: bool = True):
    from authlib.integrations.requests_client import OAuth2Session

    meta = _discover(issuer)
    session = OAuth2Session(
        client_id, secret, scope="openid profile email", redirect_uri=redirect_uri,
        code_challenge_method="S256" if pkce else None,
        token_endpoint_auth_method="client_secret_basic" if secret else "none",
    )
    verifier = secrets.token_urlsafe(48) if pkce else None
    url, state = session.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier,
                                                  nonce="n-1")
    if pkce:
        assert "code_challenge=" in url
    else:
        assert "code_challenge" not in url
    location = _log_in(url, user, issuer.password(user))
    assert location.startswith(redirect_uri)
    token = session.fetch_token(meta["token_endpoint"], authorization_response=location, state=state,
                                code_verifier=verifier)
    return session, token, meta


def test_discovery_has_what_portals_read(issuer: Issuer) -> None:
    d = _discover(issuer)
    assert d["userinfo_endpoint"] == issuer.issuer + "/protocol/openid-connect/userinfo"
    assert d["end_session_endpoint"] == issuer.issuer + "/protocol/openid-connect/logout"
    assert "refresh_token" in d["grant_types_supported"]
    assert {"openid", "profile", "email", "firecrest"} <= set(d["scopes_supported"])


def test_confidential_client_without_pkce(issuer: Issuer) -> None:
    c = issuer.client("bob")
    _, token, _ = _portal_session(issuer, "bob", c["client_id"], c["client_secret"], REDIRECT, pkce=False)
    claims = issuer.verify(token["access_token"])  # the gateway's audience is still set
    assert claims["aud"] == "firecrest" and claims["preferred_username"] == "bob"
    assert set(claims["scope"].split()) == {"openid", "profile", "email", "firecrest"}
    id_claims = issuer.verify(token["id_token"], audience=c["client_id"])
    assert (id_claims["name"], id_claims["email"], id_claims["nonce"]) == ("Bob", "bob@localhost", "n-1")
    assert token["refresh_token"]


def test_pkce_downgrade_and_public_client_without_pkce_refused(issuer: Issuer) -> None:
    c = issuer.client("bob")
    # a code issued without a challenge cannot be redeemed with a verifier (RFC 9700 2.1.1)
    url = issuer.auth_uri + "?" + "&".join(f"{k}={v}" for k, v in {
        "response_type": "code", "client_id": c["client_id"], "redirect_uri": REDIRECT, "state": "s"}.items())
    code = parse_qs(urlsplit(_log_in(url, "bob", issuer.password("bob"))).query)["code"][0]
    verifier, _ = _pkce()
    r = _exchange(issuer, code, verifier, auth=(c["client_id"], c["client_secret"]))
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
    # a public client must use PKCE
    r = requests.get(issuer.auth_uri, params={"response_type": "code", "client_id": PORTAL_CLIENT_ID,
                                              "redirect_uri": PORTAL, "state": "s"},
                     allow_redirects=False, timeout=5)
    assert r.status_code == 302
    assert parse_qs(urlsplit(r.headers["Location"]).query)["error"] == ["invalid_request"]


def test_redirect_uris_per_client(issuer: Issuer) -> None:
    _, challenge = _pkce()
    base = {"response_type": "code", "client_id": PORTAL_CLIENT_ID, "state": "s",
            "code_challenge": challenge, "code_challenge_method": "S256"}
    ok = requests.get(issuer.auth_uri, params={**base, "redirect_uri": PORTAL}, timeout=5)
    assert ok.status_code == 200
    # in the issuer-wide list but not the portal's own: refused, never redirected
    r = requests.get(issuer.auth_uri, params={**base, "redirect_uri": REDIRECT}, allow_redirects=False,
                     timeout=5)
    assert r.status_code == 400 and "Location" not in r.headers


def test_public_client_refresh_after_expiry(issuer: Issuer) -> None:
    session, token, meta = _portal_session(issuer)
    assert token["expires_in"] == PORTAL_TOKEN_LIFETIME
    first = token["access_token"]
    deadline = time.monotonic() + 30
    while True:  # until the access token has expired
        try:
            issuer.verify(first)
        except jwt.ExpiredSignatureError:
            break
        assert time.monotonic() < deadline
        time.sleep(0.5)
    new = session.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
    assert new["access_token"] != first and new["refresh_token"] != token["refresh_token"]
    claims = issuer.verify(new["access_token"])
    assert claims["preferred_username"] == "alice" and claims["azp"] == PORTAL_CLIENT_ID
    assert issuer.verify(new["id_token"], audience=PORTAL_CLIENT_ID)["sub"] == "alice"


def _refresh(issuer: Issuer, refresh_token: str, client_id: str = PORTAL_CLIENT_ID, **extra: str):
    return requests.post(issuer.token_uri, data={"grant_type": "refresh_token", "client_id": client_id,
                                                 "refresh_token": refresh_token, **extra}, timeout=5)


def test_refresh_token_rotation_and_reuse(issuer: Issuer) -> None:
    _, token, _ = _portal_session(issuer)
    rt1 = token["refresh_token"]
    r = _refresh(issuer, rt1)
    assert r.status_code == 200, r.text
    rt2 = r.json()["refresh_token"]
    # a rotated token presented again: refused, and the whole login with it (a stolen copy)
    again = _refresh(issuer, rt1)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    after = _refresh(issuer, rt2)
    assert (after.status_code, after.json()["error"]) == (400, "invalid_grant")


def test_refresh_token_bound_to_client_and_scope(issuer: Issuer) -> None:
    _, token, _ = _portal_session(issuer)
    bob = issuer.client("bob")
    r = requests.post(issuer.token_uri, data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
                      auth=(bob["client_id"], bob["client_secret"]), timeout=5)
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
    _, token, _ = _portal_session(issuer)
    r = _refresh(issuer, token["refresh_token"], scope="openid admin")
    assert (r.status_code, r.json()["error"]) == (400, "invalid_scope")
    r = _refresh(issuer, token["refresh_token"], scope="openid firecrest")  # narrowing is fine
    assert r.status_code == 200 and r.json()["scope"] == "openid firecrest"
    assert _refresh(issuer, "not-a-token").json()["error"] == "invalid_grant"


def test_userinfo(issuer: Issuer) -> None:
    session, token, meta = _portal_session(issuer, "bob", issuer.client("bob")["client_id"],
                                           issuer.client("bob")["client_secret"], REDIRECT, pkce=False)
    info = session.get(meta["userinfo_endpoint"], timeout=5)
    assert info.status_code == 200, info.text
    assert info.json() == {"sub": "bob", "preferred_username": "bob", "name": "Bob", "email": "bob@localhost",
                           "email_verified": False}
    post = requests.post(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {token['access_token']}"},
                         timeout=5)
    assert post.json()["sub"] == "bob"
    for header in ({}, {"Authorization": "Bearer " + token["id_token"]},
                   {"Authorization": "Bearer " + token["access_token"][:-4] + "AAAA"}):
        r = requests.get(meta["userinfo_endpoint"], headers=header, timeout=5)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer"), header
    # client-credentials tokens carry only what the client asked for
    c = issuer.client("alice")
    cc = requests.post(issuer.token_uri, data={"grant_type": "client_credentials"},
                       auth=(c["client_id"], c["client_secret"]), timeout=5).json()["access_token"]
    r = requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {cc}"}, timeout=5)
    assert r.json() == {"sub": "alice", "preferred_username": "alice"}


def test_rp_initiated_logout(issuer: Issuer) -> None:
    _, token, meta = _portal_session(issuer)
    end = meta["end_session_endpoint"]
    # a post_logout_redirect_uri the client did not register: refused, no redirect
    r = requests.get(end, params={"id_token_hint": token["id_token"], "post_logout_redirect_uri": REDIRECT},
                     allow_redirects=False, timeout=5)
    assert r.status_code == 400 and "Location" not in r.headers
    assert _refresh(issuer, token["refresh_token"]).status_code == 200  # still logged in
    _, token, _ = _portal_session(issuer)
    r = requests.get(end, params={"id_token_hint": token["id_token"], "post_logout_redirect_uri": PORTAL,
                                  "state": "bye"}, allow_redirects=False, timeout=5)
    assert r.status_code == 302 and r.headers["Location"] == PORTAL + "?state=bye"
    r = _refresh(issuer, token["refresh_token"])
    assert (r.status_code, r.json()["error"]) == (400, "invalid_grant")
    # without a redirect: a page saying so; a forged hint: refused
    r = requests.get(end, timeout=5)
    assert r.status_code == 200 and "signed out" in r.text
    forged = jwt.encode({"iss": issuer.issuer, "sub": "alice", "exp": time.time() + 60, "sid": "x"},
                        "k" * 32, algorithm="HS256")
    r = requests.get(end, params={"id_token_hint": forged, "post_logout_redirect_uri": PORTAL},
                     allow_redirects=False, timeout=5)
    assert r.status_code == 400 and "Location" not in r.headers


def test_cors_for_registered_origins(issuer: Issuer) -> None:
    pre = requests.options(issuer.token_uri, headers={
        "Origin": PORTAL_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"}, timeout=5)
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == PORTAL_ORIGIN
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    other = requests.options(issuer.token_uri, headers={"Origin": "http://evil.example",
                                                        "Access-Control-Request-Method": "POST"}, timeout=5)
    assert "Access-Control-Allow-Origin" not in other.headers
    r = requests.get(issuer.issuer + "/.well-known/openid-configuration", headers={"Origin": PORTAL_ORIGIN},
                     timeout=5)
    assert r.headers["Access-Control-Allow-Origin"] == PORTAL_ORIGIN
    r = requests.get(issuer.auth_uri, headers={"Origin": PORTAL_ORIGIN}, timeout=5)
    assert "Access-Control-Allow-Origin" not in r.headers  # the login form is navigated to, not fetched


def test_make_config_adds_the_portal_client(tmp_path: Path) -> None:
    first = make_config(tmp_path, 12345, ["alice"])
    assert PORTAL_CLIENT_ID not in [c["client_id"] for c in first["clients"]]
    second = make_config(tmp_path, 12345, ["alice"], portal_url=PORTAL, portal_token_lifetime=60)
    portal = next(c for c in second["clients"] if c["client_id"] == PORTAL_CLIENT_ID)
    assert portal["redirect_uris"] == [PORTAL] and portal["web_origins"] == [PORTAL_ORIGIN]
    assert portal["token_lifetime"] == 60 and "client_secret" not in portal
    assert [c for c in second["clients"] if c["client_id"] != PORTAL_CLIENT_ID] == first["clients"]
    assert second["users"] == first["users"]
    assert stat.S_IMODE((tmp_path / "config.json").stat().st_mode) == 0o600
    portal = load_config(tmp_path / "config.json").client(PORTAL_CLIENT_ID)
    assert portal is not None and portal.public
