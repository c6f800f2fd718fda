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

from edge.issuer.config import PUBLIC_CLIENT_ID, load_config, make_config

REPO = Path(__file__).resolve().parents[2]
REDIRECT = "http://127.0.0.1:8765/callback"


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
    config = make_config(state, port, ["alice", "bob"])
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
