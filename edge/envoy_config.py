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
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from urllib.parse import urlsplit

import yaml
from google.protobuf import descriptor_pb2

from core.api.restjson import HTTP_BODY

REPO = Path(__file__).resolve().parents[1]
# the template: in the source tree, else where the wheel installs it (data-files)
TEMPLATE = next(
    (
        p
        for p in (REPO / "envoy" / "envoy.yaml.tmpl", Path(sys.prefix) / "share" / "firecrest-gateway" / "envoy.yaml.tmpl")
        if p.exists()
    ),
    REPO / "envoy" / "envoy.yaml.tmpl",
)
LUA = Path(__file__).resolve().parent / "filter.lua"
DESCRIPTOR = Path(__file__).resolve().parent / "descriptor.pb"
OPENAPI = Path(__file__).resolve().parent / "openapi.json"
_HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
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
    core_address: str  # host:port (one core), or the first of core_addresses
    core_sni: str
    client_cert: str
    client_key: str
    core_ca: str
    lua_out: str  # where the rendered Lua filter is written
    access_log: str = "/dev/stdout"
    listen_address: str = "0.0.0.0"
    listen_port: int = 8000
    # Envoy's admin interface (it can change log levels and stop Envoy): on a Unix socket that only
    # Envoy's user opens (mode 0600) when admin_socket is set; else on 127.0.0.1:admin_port when
    # that is set (any local user reaches it: for a host of its own only); else off
    admin_socket: str = ""
    admin_port: int = 0
    # a loopback port serving only GET /stats/prometheus from the admin socket (for a Prometheus
    # server); 0 = off
    stats_port: int = 0
    # rate limits, requests per second with a burst, each 0 = off: per client address (before
    # the token is checked, so a flood of bad tokens is refused cheaply) and per user (after)
    rate_limit_per_address: int = 0
    rate_limit_address_burst: int = 0
    rate_limit_per_user: int = 0
    rate_limit_user_burst: int = 0
    rate_limit_max_clients: int = 10000  # buckets kept (least recently used ones are dropped)
    username_claim: str = "preferred_username"
    identity_header: str = "x-f7t-user"
    # FirecREST v2's version clients see (f7t-appversion): pyfirecrest sends `name` and
    # `time_window` on job listings only to 2.6.0 and later, which this gateway serves
    app_version: str = "2.6.0"
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
    # N core replicas behind Envoy (round robin, gRPC health checks); empty: core_address alone
    core_addresses: list[str] = field(default_factory=list)
    health_check_interval: float = 2.0
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
def _lua_routes(openapi: Path) -> tuple[str, str]:
    """The API's path templates as Lua patterns with their methods (for the 405 answer), and the
    set of every method the API declares, both as Lua table literals."""
    doc = json.loads(openapi.read_text())
    rows, every = [], set()
    for template, ops in sorted(doc.get("paths", {}).items()):
        methods = sorted(m.upper() for m in ops if m in _HTTP_METHODS)
        every.update(methods)
        parts = re.split(r"(\{[^}]*\})", template)
        pattern = "".join("[^/:]+" if p.startswith("{") else re.sub(r"([^A-Za-z0-9])", r"%\1", p) for p in parts)
        allowed = ", ".join(f"{m} = true" for m in methods)
        rows.append(f'  {{ "^{pattern}$", {{ {allowed} }}, "{", ".join(methods)}" }},')
    table = "{\n" + "\n".join(rows) + "\n}"
    return table, "{ " + ", ".join(f"{m} = true" for m in sorted(every)) + " }"


def _admin(cfg: EdgeConfig) -> str:
    if cfg.admin_socket:
        return f"admin:\n  address: {{pipe: {{path: {cfg.admin_socket}, mode: {0o600}}}}}\n"
    if cfg.admin_port:
        return f"admin:\n  address: {{socket_address: {{address: 127.0.0.1, port_value: {cfg.admin_port}}}}}\n"
    return ""


def _stats(cfg: EdgeConfig) -> tuple[str, str]:
    """With stats_port (and the admin interface on its socket): a listener on loopback that serves
    only Envoy's Prometheus stats (GET /stats/prometheus), proxied to the admin socket; every
    other path of the admin interface stays out of reach."""
    if not (cfg.stats_port and cfg.admin_socket):
        return "", ""
    listener = (
        "  - name: stats\n"
        f"    address: {{socket_address: {{address: 127.0.0.1, port_value: {cfg.stats_port}}}}}\n"
        "    filter_chains:\n"
        "    - filters:\n"
        "      - name: envoy.filters.network.http_connection_manager\n"
        "        typed_config:\n"
        '          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n'
        "          stat_prefix: stats\n"
        "          route_config:\n"
        "            virtual_hosts:\n"
        "            - name: stats\n"
        '              domains: ["*"]\n'
        "              routes:\n"
        "              - match: {path: /stats/prometheus, headers: [{name: ':method', string_match: {exact: GET}}]}\n"
        "                route: {cluster: envoy_admin}\n"
        "              - match: {prefix: /}\n"
        "                direct_response: {status: 404}\n"
        "          http_filters:\n"
        "          - name: envoy.filters.http.router\n"
        "            typed_config:\n"
        '              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n'
    )
    cluster = (
        "  - name: envoy_admin\n"
        "    type: STATIC\n"
        "    connect_timeout: 1s\n"
        "    load_assignment:\n"
        "      cluster_name: envoy_admin\n"
        "      endpoints:\n"
        "      - lb_endpoints:\n"
        f"        - endpoint: {{address: {{pipe: {{path: {cfg.admin_socket}}}}}}}\n"
    )
    return listener, cluster


def _rate_limit(name: str, key: str, action: str, rate: int, burst: int, max_clients: int) -> str:
    """A local_ratelimit filter with one wildcard descriptor: a token bucket per distinct value of
    ``key`` (the client address, the user), refilled with ``rate`` tokens a second."""
    if rate <= 0:
        return ""
    burst = max(burst, rate)
    return (
        f"          - name: envoy.filters.http.local_ratelimit\n"
        f"            typed_config:\n"
        f'              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit\n'
        f"              stat_prefix: {name}\n"
        f"              token_bucket: {{max_tokens: 1000000000, tokens_per_fill: 1000000000, fill_interval: 1s}}\n"
        f"              filter_enabled: {{default_value: {{numerator: 100, denominator: HUNDRED}}}}\n"
        f"              filter_enforced: {{default_value: {{numerator: 100, denominator: HUNDRED}}}}\n"
        f"              always_consume_default_token_bucket: false\n"
        f"              rate_limited_as_resource_exhausted: true\n"
        f"              max_dynamic_descriptors: {max_clients}\n"
        f"              rate_limits: [{{actions: [{action}]}}]\n"
        f'              descriptors:\n'
        f'              - entries: [{{key: {key}, value: ""}}]\n'
        f"                token_bucket: {{max_tokens: {burst}, tokens_per_fill: {rate}, fill_interval: 1s}}\n"
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


def envoy_descriptor(src: Path, dst: Path) -> None:
    """Write the descriptor set Envoy's transcoder gets: the contract, with the output of every method
    whose REST response the core writes itself (a unary response other than HttpBody) declared as
    google.api.HttpBody, so the transcoder passes the core's FirecREST-shaped JSON through
    (core.api.restjson; its `rendered_by_core` is the same rule)."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(src.read_bytes())
    if not any(f.name == "google/api/httpbody.proto" for f in fds.file):
        raise ValueError(f"{src} lacks google/api/httpbody.proto (regenerate it: python -m edge.protogen)")
    for f in fds.file:
        for svc in f.service:
            for m in svc.method:
                if not m.server_streaming and m.output_type != "." + HTTP_BODY:
                    m.output_type = "." + HTTP_BODY
                    if "google/api/httpbody.proto" not in f.dependency:
                        f.dependency.append("google/api/httpbody.proto")
    # Envoy builds the files in order: each after the files it imports
    by_name = {f.name: f for f in fds.file}
    ordered: list[descriptor_pb2.FileDescriptorProto] = []
    done: set[str] = set()

    def place(name: str) -> None:
        if name in done or name not in by_name:
            return
        done.add(name)
        for dep in by_name[name].dependency:
            place(dep)
        ordered.append(by_name[name])

    for f in list(fds.file):
        place(f.name)
    out = descriptor_pb2.FileDescriptorSet(file=ordered)
    dst.write_bytes(out.SerializeToString())


def render(cfg: EdgeConfig) -> str:
    """Write the Lua filter to cfg.lua_out and return Envoy's YAML."""
    for name, value in (("identity_header", cfg.identity_header), ("username_claim", cfg.username_claim)):
        if not value.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"{name} {value!r} must be a plain header/claim name")
    lua = LUA.read_text().replace("__IDENTITY_HEADER__", cfg.identity_header.lower())
    lua = lua.replace("__APP_VERSION__", cfg.app_version)
    routes, methods = _lua_routes(Path(cfg.openapi))
    lua = lua.replace("__ROUTES__", routes).replace("__API_METHODS__", methods)
    Path(cfg.lua_out).write_text(lua)
    # Envoy's descriptor set is written beside the Lua filter (see envoy_descriptor)
    transcoder_descriptor = Path(cfg.lua_out).with_name("descriptor-envoy.pb")
    envoy_descriptor(Path(cfg.descriptor), transcoder_descriptor)
    u = urlsplit(cfg.jwks_uri)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"jwks_uri {cfg.jwks_uri!r} must be an http(s) URL")
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise ValueError("tls_cert and tls_key go together")
    for origin in cfg.portal_connect_origins:
        _check_origin(origin)
    portal_routes, portal_jwt_rules = _portal_routes(cfg.portal_dir, cfg.portal_config, cfg.portal_connect_origins)
    endpoints = []
    for addr in cfg.core_addresses or [cfg.core_address]:
        host, _, port = addr.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"core address {addr!r} must be host:port")
        endpoints.append(
            f"        - endpoint: {{address: {{socket_address: {{address: {host}, port_value: {int(port)}}}}}}}"
        )
    stats = _stats(cfg)
    return Template(TEMPLATE.read_text()).substitute(
        cors_policy=_cors_policy(cfg.cors_allowed_origins),
        portal_routes=portal_routes,
        portal_jwt_rules=portal_jwt_rules,
        admin=_admin(cfg),
        rate_limit_address=_rate_limit(
            "per_address", "remote_address", "{remote_address: {}}",
            cfg.rate_limit_per_address, cfg.rate_limit_address_burst, cfg.rate_limit_max_clients,
        ),
        rate_limit_user=_rate_limit(
            "per_user", "user",
            f"{{request_headers: {{header_name: {cfg.identity_header.lower()}, descriptor_key: user}}}}",
            cfg.rate_limit_per_user, cfg.rate_limit_user_burst, cfg.rate_limit_max_clients,
        ),
        listen_address=cfg.listen_address,
        listen_port=cfg.listen_port,
        access_log=cfg.access_log,
        lua_file=cfg.lua_out,
        issuer=cfg.issuer,
        audiences=", ".join(json.dumps(a) for a in cfg.audiences),
        jwks_uri=cfg.jwks_uri,
        identity_header=cfg.identity_header.lower(),
        username_claim=cfg.username_claim,
        descriptor=str(transcoder_descriptor),
        services=", ".join(cfg.services),
        max_body=cfg.max_body,
        core_endpoints="\n".join(endpoints),
        health_interval=f"{cfg.health_check_interval:g}s",
        core_sni=cfg.core_sni,
        client_cert=cfg.client_cert,
        client_key=cfg.client_key,
        core_ca=cfg.core_ca,
        jwks_host=u.hostname,
        jwks_port=u.port or (443 if u.scheme == "https" else 80),
        jwks_tls=_jwks_tls(u.hostname, cfg.jwks_ca_bundle) if u.scheme == "https" else "",
        downstream_tls=_downstream_tls(cfg.tls_cert, cfg.tls_key) if cfg.tls_cert else "",
        docs_routes=_docs_routes(cfg),
        stats_listener=stats[0],
        stats_cluster=stats[1],
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
