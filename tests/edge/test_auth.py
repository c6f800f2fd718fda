"""The edge refuses every call that does not carry a valid token from the configured issuer, and the
identity the core acts on comes from the token alone. The core itself is unreachable around Envoy."""

from __future__ import annotations

import json
import socket
import ssl
import time
import uuid
from pathlib import Path

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from core.proto.firecrest.status.v1 import status_pb2 as pb
from core.proto.firecrest.status.v1 import status_pb2_grpc
from tests.helpers import assert_firecrest_error


@pytest.fixture(scope="module")
def issuer_cfg(stack):
    return json.loads((Path(stack["F7T_STACK_DIR"]) / "gateway/issuer/config.json").read_text())


@pytest.fixture(scope="module")
def signing_key(issuer_cfg):
    """The issuer's real key: lets a test forge tokens that differ from a good one in one claim."""
    return Path(issuer_cfg["key_file"]).read_bytes()


def _claims(cfg, **over):
    now = int(time.time())
    c = {
        "iss": cfg["issuer"],
        "aud": cfg["audience"],
        "sub": "alice",
        "preferred_username": "alice",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def _sign(claims, key, kid):
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def _userinfo(api, token, headers=None):
    h = {"Authorization": f"Bearer {token}"} if token else {}
    h.update(headers or {})
    return api(None).get("/status/{system}/userinfo", headers=h)


def test_forged_control_token_is_accepted(api, issuer_cfg, signing_key):
    """The forging helper itself makes good tokens: every refusal below is about one claim."""
    r = _userinfo(api, _sign(_claims(issuer_cfg), signing_key, issuer_cfg["kid"]))
    assert r.status_code == 200, r.text
    assert r.json()["user"]["name"] == "alice"


def test_no_token(api):
    body = assert_firecrest_error(_userinfo(api, None), 401)
    assert body["message"] == "Not authenticated"  # FirecREST v2's words


def test_garbage_token(api):
    assert_firecrest_error(_userinfo(api, "not.a.jwt"), 401)


def test_bad_signature(api, issuer_cfg):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_firecrest_error(_userinfo(api, _sign(_claims(issuer_cfg), other, issuer_cfg["kid"])), 401)


def test_tampered_payload(api, token):
    h, p, s = token("alice").split(".")
    import base64

    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims["preferred_username"] = "bob"
    p2 = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert_firecrest_error(_userinfo(api, f"{h}.{p2}.{s}"), 401)


def test_other_issuer(api, issuer_cfg, signing_key):
    tok = _sign(_claims(issuer_cfg, iss="https://evil.example/realms/x"), signing_key, issuer_cfg["kid"])
    assert_firecrest_error(_userinfo(api, tok), 401)


def test_other_issuer_with_its_own_key(api, issuer_cfg):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tok = _sign(_claims(issuer_cfg, iss="https://evil.example/realms/x"), other, "evil-1")
    assert_firecrest_error(_userinfo(api, tok), 401)


def test_wrong_audience(api, issuer_cfg, signing_key):
    tok = _sign(_claims(issuer_cfg, aud="some-other-api"), signing_key, issuer_cfg["kid"])
    # jwt_authn answers a wrong audience with 403 ("Audiences in Jwt are not allowed")
    r = _userinfo(api, tok)
    assert r.status_code in (401, 403)
    assert_firecrest_error(r, r.status_code)


def test_expired(api, issuer_cfg, signing_key):
    now = int(time.time())
    tok = _sign(_claims(issuer_cfg, iat=now - 900, nbf=now - 900, exp=now - 300), signing_key, issuer_cfg["kid"])
    body = assert_firecrest_error(_userinfo(api, tok), 401)
    assert "expired" in body["message"].lower()


def test_not_yet_valid(api, issuer_cfg, signing_key):
    now = int(time.time())
    tok = _sign(_claims(issuer_cfg, nbf=now + 600, iat=now + 600, exp=now + 900), signing_key, issuer_cfg["kid"])
    assert_firecrest_error(_userinfo(api, tok), 401)


def test_alg_none(api, issuer_cfg):
    tok = jwt.encode(_claims(issuer_cfg), key=None, algorithm="none")
    assert_firecrest_error(_userinfo(api, tok), 401)


def test_hs256_with_public_key_as_secret(api, issuer_cfg, stack):
    """The classic algorithm-confusion attack: sign HS256 with the JWKS's public material."""
    import base64
    import hashlib
    import hmac

    import requests

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    jwks = requests.get(f"{issuer_cfg['issuer']}/protocol/openid-connect/certs", timeout=10).content
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": issuer_cfg["kid"]}).encode())
    body = b64(json.dumps(_claims(issuer_cfg)).encode())
    sig = b64(hmac.new(jwks, f"{head}.{body}".encode(), hashlib.sha256).digest())
    tok = f"{head}.{body}.{sig}"
    assert_firecrest_error(_userinfo(api, tok), 401)


def test_token_without_username_claim(api, issuer_cfg, signing_key):
    tok = _sign(_claims(issuer_cfg, preferred_username=None), signing_key, issuer_cfg["kid"])
    r = _userinfo(api, tok, headers={"x-f7t-user": "bob"})
    assert_firecrest_error(r, 401)


def test_root_is_never_a_caller(api, issuer_cfg, signing_key):
    tok = _sign(_claims(issuer_cfg, sub="root", preferred_username="root"), signing_key, issuer_cfg["kid"])
    assert_firecrest_error(_userinfo(api, tok), 401)


def test_spoofed_identity_header_is_ignored(api, token):
    r = _userinfo(api, token("alice"), headers={"x-f7t-user": "bob", "X-F7T-User": "root"})
    assert r.status_code == 200, r.text
    assert r.json()["user"]["name"] == "alice"


def test_spoofed_identity_header_without_token(api):
    assert_firecrest_error(_userinfo(api, None, headers={"x-f7t-user": "alice"}), 401)


# ---------------------------------------------------------------- native gRPC
def _grpc_userinfo(channel, system, md):
    stub = status_pb2_grpc.StatusServiceStub(channel)
    return stub.GetUserInfo(pb.GetUserInfoRequest(system_name=system), metadata=md, timeout=30)


@pytest.mark.parametrize(
    "case",
    ["none", "garbage", "expired", "spoof-only"],
)
def test_grpc_refused(channel, system, issuer_cfg, signing_key, case):
    now = int(time.time())
    md = {
        "none": (),
        "garbage": (("authorization", "Bearer abc.def.ghi"),),
        "expired": (
            ("authorization", "Bearer " + _sign(_claims(issuer_cfg, exp=now - 300, iat=now - 900, nbf=now - 900),
                                                signing_key, issuer_cfg["kid"])),
        ),
        "spoof-only": (("x-f7t-user", "alice"),),
    }[case]
    with pytest.raises(grpc.RpcError) as e:
        _grpc_userinfo(channel, system, md)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_grpc_spoofed_identity_header_is_ignored(channel, system, auth):
    resp = _grpc_userinfo(channel, system, (*auth("bob"), ("x-f7t-user", "alice")))
    assert resp.user.name == "bob"


# ---------------------------------------------------------------- the core is not reachable around Envoy
def _core_port(stack) -> int:
    import yaml

    cfg = yaml.safe_load((Path(stack["F7T_STACK_DIR"]) / "gateway/core.yaml").read_text())
    return int(cfg["listen"].rsplit(":", 1)[1])


def test_core_refuses_plaintext_grpc(stack, system):
    ch = grpc.insecure_channel(f"127.0.0.1:{_core_port(stack)}")
    stub = status_pb2_grpc.StatusServiceStub(ch)
    with pytest.raises(grpc.RpcError) as e:
        stub.GetUserInfo(pb.GetUserInfoRequest(system_name=system), metadata=(("x-f7t-user", "alice"),), timeout=5)
    assert e.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    ch.close()


def test_core_refuses_tls_without_client_certificate(stack):
    ctx = ssl.create_default_context(cafile=str(Path(stack["F7T_STACK_DIR"]) / "gateway/tls/ca.crt"))
    ctx.check_hostname = False
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", _core_port(stack)), timeout=5) as raw, pytest.raises(
        (ssl.SSLError, ConnectionResetError, BrokenPipeError)
    ), ctx.wrap_socket(raw) as s:
        # TLS 1.3: the server's refusal of the missing certificate arrives on first read/write
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        if not s.recv(1):
            raise ConnectionResetError("closed")


def test_core_refuses_grpc_with_a_client_certificate_from_another_ca(stack, system, tmp_path):
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "envoy")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    creds = grpc.ssl_channel_credentials(
        root_certificates=(Path(stack["F7T_STACK_DIR"]) / "gateway/tls/ca.crt").read_bytes(),
        private_key=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()),
        certificate_chain=cert.public_bytes(serialization.Encoding.PEM),
    )
    ch = grpc.secure_channel(f"127.0.0.1:{_core_port(stack)}", creds,
                             options=(("grpc.ssl_target_name_override", "core.firecrest.internal"),))
    stub = status_pb2_grpc.StatusServiceStub(ch)
    with pytest.raises(grpc.RpcError) as e:
        stub.GetUserInfo(pb.GetUserInfoRequest(system_name=system), metadata=(("x-f7t-user", "alice"),), timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    ch.close()


def test_core_listens_on_loopback_only(stack):
    import yaml

    cfg = yaml.safe_load((Path(stack["F7T_STACK_DIR"]) / "gateway/core.yaml").read_text())
    assert cfg["listen"].startswith("127.0.0.1:")
    assert "tls" in cfg and cfg["tls"]["client_ca"]


# ---------------------------------------------------------------- malformed bodies
@pytest.mark.parametrize(
    "body",
    [
        '{"job": {"env": {"x": {}}, "script": "#!/bin/bash\\ntrue\\n", "workingDirectory": "/tmp"}}',
        '{"job": {"env": {"x": [1, 2]}, "script": "#!/bin/bash\\ntrue\\n", "workingDirectory": "/tmp"}}',
        '{"job": "not an object"}',
        '{"job": {"script": 12}}',
        "not json at all",
    ],
)
def test_ill_typed_json_is_a_400_never_a_500(alice, body):
    """Found by schemathesis: for some ill-typed JSON Envoy's transcoder forwards a corrupt message;
    the core answers it as the caller's mistake."""
    r = alice.post("/compute/{system}/jobs", data=body, headers={"Content-Type": "application/json"})
    assert_firecrest_error(r, 400)


# ---------------------------------------------------------------- REST over HTTP/2 (h2c)
def test_rest_over_h2c_has_no_grpc_leftovers(stack, token, system):
    """An HTTP/2 REST client gets the same status codes and no gRPC trailers (curl, prior knowledge)."""
    import subprocess

    url = f"{stack['F7T_URL']}/status/{system}/partitions"
    out = subprocess.run(
        ["curl", "-s", "-i", "--http2-prior-knowledge", "-H", f"Authorization: Bearer {token('alice')}", url],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    assert out.startswith("HTTP/2 200"), out[:300]
    assert "grpc-status" not in out and "grpc-message" not in out, out
    assert '"partitions"' in out
