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
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlsplit

import yaml
from google.protobuf import descriptor_pb2

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
    # FirecREST v2's version clients see (f7t-appversion): pyfirecrest sends `name` and
    # `time_window` on job listings only to 2.6.0 and later, which this gateway serves
    app_version: str = "2.6.0"
    max_body: int = 64 * 1024 * 1024
    jwks_ca_bundle: str = SYSTEM_CA_BUNDLE
    # TLS on the listener (HTTPS and gRPC over TLS, ALPN h2 + http/1.1); empty: plaintext, for a
    # deployment that terminates TLS in front of Envoy, or the local stack on loopback
    tls_cert: str = ""
    tls_key: str = ""
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


# the packages whose JSON is FirecREST v2's (Tasks and Certificate are ours: proto3 JSON as is)
FIRECREST_PACKAGES = ("firecrest.status.", "firecrest.compute.", "firecrest.storage.", "firecrest.type.")
# our additions for native callers (AIP-158 paging), `optional` so they are absent, not null, in REST JSON
NATIVE_ONLY_FIELDS = frozenset({"next_page_token"})


def nullable_schema(descriptor: Path) -> str:
    """The Lua filter's table of the JSON keys that are null when absent, per message (see filter.lua).

    A key is nullable when its field has presence (`optional` scalars, singular messages): FirecREST
    v2 writes those as null when unknown, and the transcoder leaves them out. Only messages with a
    nullable key somewhere below them are listed, so other responses pass through untouched.
    """
    fds = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    messages: dict[str, descriptor_pb2.DescriptorProto] = {}

    def collect(prefix: str, msgs: Any) -> None:
        for m in msgs:
            name = f"{prefix}.{m.name}"
            messages[name] = m
            collect(name, m.nested_type)

    for f in fds.file:
        collect(f.package, f.message_type)
    is_map = {n for n, m in messages.items() if m.options.map_entry}
    label_repeated = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    type_message = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE

    def fields(name: str) -> list[tuple[str, bool, str | None, bool]]:
        out = []
        for fd in messages[name].field:
            nested = fd.type_name.lstrip(".") if fd.type == type_message else None
            repeated = fd.label == label_repeated
            if nested in is_map or fd.name in NATIVE_ONLY_FIELDS or (
                fd.HasField("oneof_index") and not fd.proto3_optional
            ):
                continue
            nullable = not repeated and (fd.proto3_optional or nested is not None)
            out.append((fd.json_name, nullable, nested, repeated))
        return out

    needed: dict[str, bool] = {}

    def needs(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name in needed:
            return needed[name]
        if name in seen or name not in messages or not name.startswith(FIRECREST_PACKAGES):
            return False
        result = False
        for _, nullable, nested, _ in fields(name):
            if nullable or (nested is not None and needs(nested, seen | {name})):
                result = True
        needed[name] = result
        return result

    rows = []
    for name in sorted(messages):
        if not needs(name):
            continue
        entries = []
        for key, nullable, nested, repeated in fields(name):
            walk = nested if nested is not None and needs(nested) else None
            if nullable or walk:
                entries.append(f'["{key}"]={{{str(nullable).lower()},{json.dumps(walk) if walk else "false"},'
                               f'{str(repeated).lower()}}}')
        rows.append(f'  ["{name}"]={{{",".join(entries)}}},')
    return "{\n" + "\n".join(rows) + "\n}"


def render(cfg: EdgeConfig) -> str:
    """Write the Lua filter to cfg.lua_out and return Envoy's YAML."""
    for name, value in (("identity_header", cfg.identity_header), ("username_claim", cfg.username_claim)):
        if not value.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ValueError(f"{name} {value!r} must be a plain header/claim name")
    lua = LUA.read_text().replace("__IDENTITY_HEADER__", cfg.identity_header.lower())
    lua = lua.replace("__APP_VERSION__", cfg.app_version)
    lua = lua.replace("__NULLABLE_SCHEMA__", nullable_schema(Path(cfg.descriptor)))
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
