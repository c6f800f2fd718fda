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
import sys
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from urllib.parse import urlsplit

import yaml

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
    # rate limits, requests per second with a burst, each 0 = off: per client address (before
    # the token is checked, so a flood of bad tokens is refused cheaply) and per user (after)
    rate_limit_per_address: int = 0
    rate_limit_address_burst: int = 0
    rate_limit_per_user: int = 0
    rate_limit_user_burst: int = 0
    rate_limit_max_clients: int = 10000  # buckets kept (least recently used ones are dropped)
    username_claim: str = "preferred_username"
    identity_header: str = "x-f7t-user"
    app_version: str = "2.5.6"
    max_body: int = 64 * 1024 * 1024
    jwks_ca_bundle: str = SYSTEM_CA_BUNDLE
    # TLS on the listener (HTTPS and gRPC over TLS, ALPN h2 + http/1.1); empty: plaintext, for a
    # deployment that terminates TLS in front of Envoy, or the local stack on loopback
    tls_cert: str = ""
    tls_key: str = ""
    # N core replicas behind Envoy (round robin, gRPC health checks); empty: core_address alone
    core_addresses: list[str] = field(default_factory=list)
    health_check_interval: float = 2.0
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


def render(cfg: EdgeConfig) -> str:
    """Write the Lua filter to cfg.lua_out and return Envoy's YAML."""
    for name, value in (("identity_header", cfg.identity_header), ("username_claim", cfg.username_claim)):
        if not value.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"{name} {value!r} must be a plain header/claim name")
    lua = LUA.read_text().replace("__IDENTITY_HEADER__", cfg.identity_header.lower())
    lua = lua.replace("__APP_VERSION__", cfg.app_version)
    routes, methods = _lua_routes(OPENAPI)
    lua = lua.replace("__ROUTES__", routes).replace("__API_METHODS__", methods)
    Path(cfg.lua_out).write_text(lua)
    u = urlsplit(cfg.jwks_uri)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"jwks_uri {cfg.jwks_uri!r} must be an http(s) URL")
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        raise ValueError("tls_cert and tls_key go together")
    endpoints = []
    for addr in cfg.core_addresses or [cfg.core_address]:
        host, _, port = addr.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"core address {addr!r} must be host:port")
        endpoints.append(
            f"        - endpoint: {{address: {{socket_address: {{address: {host}, port_value: {int(port)}}}}}}}"
        )
    return Template(TEMPLATE.read_text()).substitute(
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
        descriptor=cfg.descriptor,
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
