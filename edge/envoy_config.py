"""Render Envoy's configuration (envoy/envoy.yaml.tmpl) and the Lua filter from one edge config.

Everything a deployment decides lives in the edge config (YAML): where Envoy listens, the OIDC
issuer, audiences, JWKS URI (http or https) and username claim, the identity header, the core's
address and the mTLS files: `EdgeConfig` below declares every setting (CONFIGURATION.md lists
them). The local stack builds it in devstack/gateway.py; a centre writes its own and runs

    firecrest-envoy-config edge.yaml --out /etc/firecrest/envoy.yaml   (or python -m edge.envoy_config)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from string import Template
from urllib.parse import urlsplit

import yaml
from google.protobuf import descriptor_pb2
from pydantic import Field, field_validator, model_validator

from core.api.restjson import HTTP_BODY, rendered_by_core
from core.settings import ConfigError, Settings, validate

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


def _check_origin(o: str) -> None:
    u = urlsplit(o)
    if u.scheme not in ("http", "https") or not u.netloc or u.path or o != f"{u.scheme}://{u.netloc}" or any(
            c in o for c in " ;,'\"\n"):
        raise ValueError(f"origin {o!r} must be scheme://host[:port]")


def _check_host_port(addr: str) -> None:
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"core address {addr!r} must be host:port")


class EdgeConfig(Settings):
    """Envoy's listener, the OIDC provider whose tokens it accepts, the cores behind it, rate limits,
    and what it serves without a token (the OpenAPI document, the docs page, the portal)."""

    issuer: str = Field(description="The OIDC provider's issuer URL (tokens' `iss`).")
    audiences: list[str] = Field(min_length=1, description="Accepted token audiences (`aud`); a token for "
                                                           "another service is refused.")
    jwks_uri: str = Field(description="The provider's JWKS URL (http or https), where Envoy fetches the signing "
                                      "keys.")
    core_address: str = Field(description="host:port of the core (with `core_addresses`: the first one).")
    core_sni: str = Field(description="The TLS server name of the cores' certificate.")
    client_cert: str = Field(description="Envoy's client certificate towards the cores (PEM, mTLS).")
    client_key: str = Field(description="Its private key (PEM).")
    core_ca: str = Field(description="The CA certificate (PEM) that signed the cores' certificates.")
    lua_out: str = Field(description="Where the rendered Lua filter is written (Envoy loads it from there).")
    access_log: str = Field("/dev/stdout", description="Envoy's access log file (no query strings, no headers).")
    listen_address: str = Field("0.0.0.0", description="The address of Envoy's listener (REST and gRPC).")
    listen_port: int = Field(8000, ge=1, le=65535, description="The port of Envoy's listener.")
    admin_socket: str = Field(
        "", description="Envoy's admin interface (it can change log levels and stop Envoy) on this Unix socket, "
                        "mode 0600 (only Envoy's user opens it). Empty: see `admin_port`.",
    )
    admin_port: int = Field(
        0, ge=0, le=65535, description="Without `admin_socket`: the admin interface on 127.0.0.1 at this port (any "
                                       "local user reaches it: for a host of its own only). 0: no admin interface.",
    )
    stats_port: int = Field(
        0, ge=0, le=65535, description="A loopback port serving only `GET /stats/prometheus` from the admin socket "
                                       "(needs `admin_socket`). 0: off.",
    )
    rate_limit_per_address: int = Field(
        0, ge=0, description="Requests per second per client address, checked before the token (a flood of bad "
                             "tokens is refused cheaply, 429). 0: off.",
    )
    rate_limit_address_burst: int = Field(0, ge=0, description="The burst per client address (at least the rate).")
    rate_limit_per_user: int = Field(0, ge=0, description="Requests per second per user, after the token. 0: off.")
    rate_limit_user_burst: int = Field(0, ge=0, description="The burst per user (at least the rate).")
    rate_limit_max_clients: int = Field(
        10000, ge=1, description="Rate-limit buckets kept (the least recently used ones are dropped)."
    )
    username_claim: str = Field("preferred_username", description="The token claim that holds the username on the "
                                                                  "cluster.")
    identity_header: str = Field(
        "x-f7t-user", description="The header Envoy writes the username into for the core (the core's "
                                  "`identity_header`); removed from every incoming request first.",
    )
    app_version: str = Field(
        "2.6.0", description="FirecREST v2's version clients see (`f7t-appversion`): pyfirecrest sends `name` and "
                             "`time_window` on job listings only to 2.6.0 and later.",
    )
    max_body: int = Field(64 * 1024 * 1024, gt=0, description="Largest request body, in bytes (64 MiB).")
    jwks_ca_bundle: str = Field(SYSTEM_CA_BUNDLE, description="CA bundle that checks an https `jwks_uri`.")
    tls_cert: str = Field(
        "", description="TLS on the listener (HTTPS and gRPC over TLS, ALPN h2 and http/1.1): the certificate "
                        "chain (PEM). Empty: plaintext, for a deployment that terminates TLS in front of Envoy.",
    )
    tls_key: str = Field("", description="The listener certificate's private key (PEM); with `tls_cert`.")
    cors_allowed_origins: list[str] = Field(
        default_factory=list, description="Browser origins (scheme://host[:port]) allowed to call the gateway "
                                          "(CORS, REST and gRPC-Web); empty: none.",
    )
    portal_dir: str = Field("", description="The web portal's built files (index.html, app.js, app.css), served "
                                            "without a token under /portal/; empty: no portal.")
    portal_config: str = Field("", description="The portal's config.json (served as /portal/config.json).")
    portal_connect_origins: list[str] = Field(
        default_factory=list, description="Origins the portal's scripts may connect to besides its own "
                                          "(Content-Security-Policy connect-src): the OIDC provider's, the S3 "
                                          "staging store's presigned URLs.",
    )
    core_addresses: list[str] = Field(
        default_factory=list, description="host:port of each core replica (round robin over those passing their "
                                          "gRPC health check); empty: `core_address` alone.",
    )
    health_check_interval: float = Field(2.0, gt=0, description="Seconds between two gRPC health checks of a core.")
    descriptor: str = Field(str(DESCRIPTOR), description="The protos' descriptor set (for transcoding).",
                            json_schema_extra={"doc_default": "edge/descriptor.pb, installed with the package"})
    openapi: str = Field(str(OPENAPI), description="The OpenAPI document served without a token at /openapi.json.",
                         json_schema_extra={"doc_default": "edge/openapi.json, installed with the package"})
    docs_dir: str = Field("", description="An installed swagger-ui-dist (npm): a docs page at /docs/ renders the "
                                          "OpenAPI document with it (no CDN); empty: no docs page.")
    services: list[str] = Field(default_factory=lambda: list(SERVICES),
                                description="The gRPC services Envoy transcodes and routes to the cores.")

    @field_validator("identity_header", "username_claim")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        if not v.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"{v!r} must be a plain header/claim name")
        return v

    @field_validator("jwks_uri")
    @classmethod
    def _http_url(cls, v: str) -> str:
        u = urlsplit(v)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"{v!r} must be an http(s) URL")
        return v

    @field_validator("cors_allowed_origins", "portal_connect_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for o in v:
            _check_origin(o)
        return v

    @field_validator("core_address")
    @classmethod
    def _core_address(cls, v: str) -> str:
        _check_host_port(v)
        return v

    @field_validator("core_addresses")
    @classmethod
    def _core_addresses(cls, v: list[str]) -> list[str]:
        for a in v:
            _check_host_port(a)
        return v

    @model_validator(mode="after")
    def _tls_pair(self) -> EdgeConfig:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key go together")
        return self

    @classmethod
    def load(cls, path: str | Path) -> EdgeConfig:
        """The edge config in a YAML file; ConfigError names every bad key."""
        try:
            data = yaml.safe_load(Path(path).read_text())
        except OSError as e:
            raise ConfigError(f"{path}: cannot read the configuration: {e.strerror}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        return validate(cls, data, str(path))


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
    (core.api.restjson.rendered_by_core)."""
    fds = descriptor_pb2.FileDescriptorSet.FromString(src.read_bytes())
    if not any(f.name == "google/api/httpbody.proto" for f in fds.file):
        raise ValueError(f"{src} lacks google/api/httpbody.proto (regenerate it: python -m edge.protogen)")
    for f in fds.file:
        for svc in f.service:
            for m in svc.method:
                if rendered_by_core(m.server_streaming, m.output_type):
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
    """Write the Lua filter to cfg.lua_out and return Envoy's YAML (cfg's values were checked when it
    was made; what is checked here are the files it names)."""
    lua = LUA.read_text().replace("__IDENTITY_HEADER__", cfg.identity_header.lower())
    lua = lua.replace("__APP_VERSION__", cfg.app_version)
    routes, methods = _lua_routes(Path(cfg.openapi))
    lua = lua.replace("__ROUTES__", routes).replace("__API_METHODS__", methods)
    Path(cfg.lua_out).write_text(lua)
    # Envoy's descriptor set is written beside the Lua filter (see envoy_descriptor)
    transcoder_descriptor = Path(cfg.lua_out).with_name("descriptor-envoy.pb")
    envoy_descriptor(Path(cfg.descriptor), transcoder_descriptor)
    u = urlsplit(cfg.jwks_uri)
    jwks_host = u.hostname or ""
    portal_routes, portal_jwt_rules = _portal_routes(cfg.portal_dir, cfg.portal_config, cfg.portal_connect_origins)
    endpoints = []
    for addr in cfg.core_addresses or [cfg.core_address]:
        host, _, port = addr.rpartition(":")
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
        jwks_host=jwks_host,
        jwks_port=u.port or (443 if u.scheme == "https" else 80),
        jwks_tls=_jwks_tls(jwks_host, cfg.jwks_ca_bundle) if u.scheme == "https" else "",
        downstream_tls=_downstream_tls(cfg.tls_cert, cfg.tls_key) if cfg.tls_cert else "",
        docs_routes=_docs_routes(cfg),
        stats_listener=stats[0],
        stats_cluster=stats[1],
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="firecrest-envoy-config")
    p.add_argument("config", help="edge config (YAML)")
    p.add_argument("--out", help="write Envoy's YAML here (default: stdout)")
    args = p.parse_args(argv)
    try:
        text = render(EdgeConfig.load(args.config))
    except ValueError as e:  # ConfigError: the keys at fault; else a file the config names
        print(f"firecrest-envoy-config: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
