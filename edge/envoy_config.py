"""Render Envoy's configuration (envoy/envoy.yaml.tmpl) and the Lua filter from one edge config.

Everything a deployment decides lives in the edge config (YAML): where Envoy listens, the OIDC
issuer, audiences, JWKS URI (http or https) and username claim, the identity header, the core's
address and the mTLS files. The local stack builds it in devstack/gateway.py; a centre writes its
own and runs

    python -m edge.envoy_config edge.yaml --out /etc/firecrest/envoy.yaml
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "envoy" / "envoy.yaml.tmpl"
LUA = Path(__file__).resolve().parent / "filter.lua"
DESCRIPTOR = Path(__file__).resolve().parent / "descriptor.pb"
OPENAPI = Path(__file__).resolve().parent / "openapi.json"
DOCS_PAGE = Path(__file__).resolve().parent / "docs.html"
# the files of swagger-ui-dist the docs page loads, and their content types
DOCS_ASSETS = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css"}
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
    descriptor: str = str(DESCRIPTOR)
    # served without a token: the OpenAPI document at /openapi.json and, when docs_dir names an
    # installed swagger-ui-dist (npm), a docs page at /docs/ that renders it (no CDN)
    openapi: str = str(OPENAPI)
    docs_dir: str = ""
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


def _static_route(path: str, filename: str, content_type: str) -> str:
    return (
        f"\n              - match: {{path: {json.dumps(path)}}}\n"
        f"                direct_response: {{status: 200, body: {{filename: {json.dumps(filename)}}}}}\n"
        "                response_headers_to_add:\n"
        f"                - header: {{key: content-type, value: {json.dumps(content_type)}}}\n"
        "                  append_action: OVERWRITE_IF_EXISTS_OR_ADD\n"
        "                typed_per_filter_config:\n"
        "                  envoy.filters.http.grpc_json_transcoder:\n"
        '                    "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig\n'
        "                    disabled: true"
    )


def _docs_routes(cfg: EdgeConfig) -> str:
    routes = [_static_route("/openapi.json", cfg.openapi, "application/json")]
    if cfg.docs_dir:
        for name in DOCS_ASSETS:
            if not (Path(cfg.docs_dir) / name).is_file():
                raise ValueError(f"docs_dir {cfg.docs_dir!r} has no {name} (install npm's swagger-ui-dist)")
        routes.append(
            "\n              - match: {path: /docs}\n"
            "                redirect: {path_redirect: /docs/}\n"
            "                typed_per_filter_config:\n"
            "                  envoy.filters.http.grpc_json_transcoder:\n"
            '                    "@type": type.googleapis.com/envoy.config.route.v3.FilterConfig\n'
            "                    disabled: true"
        )
        routes.append(_static_route("/docs/", str(DOCS_PAGE), "text/html; charset=utf-8"))
        for name, ctype in DOCS_ASSETS.items():
            routes.append(_static_route(f"/docs/{name}", str(Path(cfg.docs_dir) / name), ctype))
    return "".join(routes)


_LUA_MAGIC = re.compile(r"([\^$()%.\[\]*+\-?])")


def lua_routes(openapi: dict) -> str:
    """The REST paths and their methods as a Lua table {{pattern, {METHOD=true...}}...}, from
    the OpenAPI document: the filter answers 405 (not the transcoder's 404) for a known path
    called with a method it does not have."""
    rows = []
    for path, item in sorted(openapi["paths"].items()):
        parts = re.split(r"(\{[^}]*\})", path)
        pattern = "".join("[^/]+" if p.startswith("{") else _LUA_MAGIC.sub(r"%\1", p) for p in parts)
        methods = ", ".join(f"{m.upper()} = true" for m in sorted(item))
        rows.append(f'  {{ "^{pattern}/?$", {{ {methods} }} }},')
    return "{\n" + "\n".join(rows) + "\n}"


def render(cfg: EdgeConfig) -> str:
    """Write the Lua filter to cfg.lua_out and return Envoy's YAML."""
    for name, value in (("identity_header", cfg.identity_header), ("username_claim", cfg.username_claim)):
        if not value.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"{name} {value!r} must be a plain header/claim name")
    lua = LUA.read_text().replace("__IDENTITY_HEADER__", cfg.identity_header.lower())
    lua = lua.replace("__APP_VERSION__", cfg.app_version)
    lua = lua.replace("__ROUTES__", lua_routes(json.loads(Path(cfg.openapi).read_text())))
    Path(cfg.lua_out).write_text(lua)
    u = urlsplit(cfg.jwks_uri)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"jwks_uri {cfg.jwks_uri!r} must be an http(s) URL")
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise ValueError("tls_cert and tls_key go together")
    core_host, _, core_port = cfg.core_address.rpartition(":")
    return Template(TEMPLATE.read_text()).substitute(
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
        docs_routes=_docs_routes(cfg),
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
