"""Render Envoy's configuration (envoy/envoy.yaml.tmpl) and the Lua filter from one edge config.

Everything a deployment decides lives in the edge config (YAML): where Envoy listens, the OIDC
issuer, audiences, JWKS URI (http or https) and username claim, the identity header, the core's
address and the mTLS files. The local stack builds it in devstack/gateway.py; a centre writes its
own and runs

    python -m edge.envoy_config edge.yaml --out /etc/firecrest/envoy.yaml
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "envoy" / "envoy.yaml.tmpl"
LUA = Path(__file__).resolve().parent / "filter.lua"
DESCRIPTOR = Path(__file__).resolve().parent / "descriptor.pb"
SERVICES = (
    "firecrest.status.v1.StatusService",
    "firecrest.compute.v1.ComputeService",
    "firecrest.storage.v1.StorageService",
    "firecrest.tasks.v1.TasksService",
    "firecrest.certificate.v1.CertificateService",
)
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@dataclass
class EdgeConfig:
    issuer: str
    audiences: list[str]
    jwks_uri: str
    core_address: str  # host:port
    core_sni: str
    client_cert: str
    client_key: str
    core_ca: str
    lua_out: str  # where the rendered Lua filter is written
    access_log: str = "/dev/stdout"
    listen_address: str = "0.0.0.0"
    listen_port: int = 8000
    admin_port: int = 9901
    username_claim: str = "preferred_username"
    identity_header: str = "x-f7t-user"
    app_version: str = "2.5.6"
    max_body: int = 64 * 1024 * 1024
    jwks_ca_bundle: str = SYSTEM_CA_BUNDLE
    # TLS on the listener (HTTPS and gRPC over TLS, ALPN h2 + http/1.1); empty: plaintext, for a
    # deployment that terminates TLS in front of Envoy, or the local stack on loopback
    tls_cert: str = ""
    tls_key: str = ""
    # browser origins allowed to call the gateway (CORS, REST and gRPC-Web); empty: none
    cors_allowed_origins: list[str] = field(default_factory=list)
    # the web portal: its built files (index.html, app.js, app.css) and its config.json, served
    # without a token under /portal/; empty: no portal
    portal_dir: str = ""
    portal_config: str = ""
    # origins the portal's scripts may connect to besides its own (Content-Security-Policy
    # connect-src): the OIDC provider's, the S3 staging store's presigned URLs
    portal_connect_origins: list[str] = field(default_factory=list)
    descriptor: str = str(DESCRIPTOR)
    services: list[str] = field(default_factory=lambda: list(SERVICES))

    @classmethod
    def load(cls, path: str | Path) -> EdgeConfig:
        return cls(**yaml.safe_load(Path(path).read_text()))


def _jwks_tls(host: str, bundle: str) -> str:
    return (
        "    transport_socket:\n"
        "      name: envoy.transport_sockets.tls\n"
        "      typed_config:\n"
        '        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n'
        f"        sni: {host}\n"
        "        common_tls_context:\n"
        f"          validation_context: {{trusted_ca: {{filename: {bundle}}}}}\n"
    )


def _downstream_tls(cert: str, key: str) -> str:
    return (
        "\n      transport_socket:\n"
        "        name: envoy.transport_sockets.tls\n"
        "        typed_config:\n"
        '          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n'
        "          common_tls_context:\n"
        "            alpn_protocols: [h2, http/1.1]\n"
        "            tls_params: {tls_minimum_protocol_version: TLSv1_2}\n"
        f"            tls_certificates: [{{certificate_chain: {{filename: {cert}}}, private_key: {{filename: {key}}}}}]"
    )


CORS_ALLOW_HEADERS = (
    "authorization, content-type, idempotency-key, x-grpc-web, x-user-agent, grpc-timeout, "
    "connect-protocol-version, connect-timeout-ms"
)
CORS_EXPOSE_HEADERS = "grpc-status, grpc-message, grpc-status-details-bin, f7t-appversion, content-disposition"
PORTAL_FILES = (("", "index.html", "text/html; charset=utf-8"),
                ("app.js", "app.js", "text/javascript; charset=utf-8"),
                ("app.css", "app.css", "text/css; charset=utf-8"))


def _cors_policy(origins: list[str]) -> str:
    if not origins:
        return ""
    for o in origins:
        _check_origin(o)
    matchers = ", ".join(f"{{exact: {json.dumps(o)}}}" for o in origins)
    return (
        "\n              typed_per_filter_config:\n"
        "                envoy.filters.http.cors:\n"
        '                  "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy\n'
        f"                  allow_origin_string_match: [{matchers}]\n"
        "                  allow_methods: GET, POST, PUT, DELETE, OPTIONS\n"
        f'                  allow_headers: "{CORS_ALLOW_HEADERS}"\n'
        f'                  expose_headers: "{CORS_EXPOSE_HEADERS}"\n'
        '                  max_age: "600"'
    )


def _check_origin(o: str) -> None:
    u = urlsplit(o)
    if u.scheme not in ("http", "https") or not u.netloc or u.path or o != f"{u.scheme}://{u.netloc}" or any(
            c in o for c in " ;,'\"\n"):
        raise ValueError(f"origin {o!r} must be scheme://host[:port]")


def _portal_routes(portal_dir: str, portal_config: str, connect: list[str]) -> tuple[str, str]:
    """Routes serving the portal's files (direct responses: no token, no upstream) and the
    jwt_authn rules letting them through; a hash of the files names the build, so a rebuilt portal
    changes Envoy's configuration (and the stack restarts Envoy)."""
    if not portal_dir:
        return "", ""
    files = [(f"/portal/{route}", Path(portal_dir) / name, ctype) for route, name, ctype in PORTAL_FILES]
    files.append(("/portal/config.json", Path(portal_config), "application/json"))
    digest = hashlib.sha256()
    for _, path, _ in files:
        if not path.is_file():
            raise ValueError(f"portal file {path} is missing (build the portal first)")
        digest.update(path.read_bytes())
    no_transcoding = (
        "                typed_per_filter_config:\n"
        "                  envoy.filters.http.grpc_json_transcoder:\n"
        '                    "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig\n'
        "                    disabled: true\n"
    )
    sources = " ".join(["'self'", *connect])
    csp = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           f"connect-src {sources}; frame-ancestors 'none'; base-uri 'none'; "
           "form-action 'none'; object-src 'none'")
    headers = (
        "                response_headers_to_add:\n"
        "                - header: {key: content-type, value: %s}\n"
        "                  append_action: OVERWRITE_IF_EXISTS_OR_ADD\n"
        "                - header: {key: cache-control, value: no-cache}\n"
        "                - header: {key: x-content-type-options, value: nosniff}\n"
        "                - header: {key: x-frame-options, value: DENY}\n"
        f"                - header: {{key: content-security-policy, value: {json.dumps(csp)}}}\n"
        "                - header: {key: referrer-policy, value: no-referrer}\n"
    )
    out = [f"\n              # portal build {digest.hexdigest()[:16]}",
           "              - match: {path: /portal}",
           "                redirect: {path_redirect: /portal/}",
           no_transcoding.rstrip("\n")]
    for route, path, ctype in files:
        out.append(f"              - match: {{path: {route}}}")
        out.append(f"                direct_response: {{status: 200, body: {{filename: {path}}}}}")
        out.append((headers % json.dumps(ctype)).rstrip("\n"))
        out.append(no_transcoding.rstrip("\n"))
    rules = "\n              - match: {path: /portal}\n              - match: {prefix: /portal/}"
    return "\n".join(out), rules


def render(cfg: EdgeConfig) -> str:
    """Write the Lua filter to cfg.lua_out and return Envoy's YAML."""
    for name, value in (("identity_header", cfg.identity_header), ("username_claim", cfg.username_claim)):
        if not value.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"{name} {value!r} must be a plain header/claim name")
    lua = LUA.read_text().replace("__IDENTITY_HEADER__", cfg.identity_header.lower())
    lua = lua.replace("__APP_VERSION__", cfg.app_version)
    Path(cfg.lua_out).write_text(lua)
    u = urlsplit(cfg.jwks_uri)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"jwks_uri {cfg.jwks_uri!r} must be an http(s) URL")
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise ValueError("tls_cert and tls_key go together")
    for origin in cfg.portal_connect_origins:
        _check_origin(origin)
    core_host, _, core_port = cfg.core_address.rpartition(":")
    portal_routes, portal_jwt_rules = _portal_routes(cfg.portal_dir, cfg.portal_config, cfg.portal_connect_origins)
    return Template(TEMPLATE.read_text()).substitute(
        cors_policy=_cors_policy(cfg.cors_allowed_origins),
        portal_routes=portal_routes,
        portal_jwt_rules=portal_jwt_rules,
        max_static_body=8 * 1024 * 1024,
        admin_port=cfg.admin_port,
        listen_address=cfg.listen_address,
        listen_port=cfg.listen_port,
        access_log=cfg.access_log,
        lua_file=cfg.lua_out,
        issuer=cfg.issuer,
        audiences=", ".join(json.dumps(a) for a in cfg.audiences),
        jwks_uri=cfg.jwks_uri,
        identity_header=cfg.identity_header.lower(),
        username_claim=cfg.username_claim,
        descriptor=cfg.descriptor,
        services=", ".join(cfg.services),
        max_body=cfg.max_body,
        core_host=core_host,
        core_port=int(core_port),
        core_sni=cfg.core_sni,
        client_cert=cfg.client_cert,
        client_key=cfg.client_key,
        core_ca=cfg.core_ca,
        jwks_host=u.hostname,
        jwks_port=u.port or (443 if u.scheme == "https" else 80),
        jwks_tls=_jwks_tls(u.hostname, cfg.jwks_ca_bundle) if u.scheme == "https" else "",
        downstream_tls=_downstream_tls(cfg.tls_cert, cfg.tls_key) if cfg.tls_cert else "",
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m edge.envoy_config")
    p.add_argument("config", help="edge config (YAML)")
    p.add_argument("--out", help="write Envoy's YAML here (default: stdout)")
    args = p.parse_args(argv)
    text = render(EdgeConfig.load(args.config))
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
