"""TLS at the edge: an Envoy rendered from the stack's edge config plus a certificate serves HTTPS
and gRPC over TLS to the same core, with the same token checks."""

from __future__ import annotations

import datetime as dt

import grpc
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.proto.firecrest.status.v1 import status_pb2 as pb
from core.proto.firecrest.status.v1 import status_pb2_grpc
from tests.processes import start_envoy


@pytest.fixture(scope="module")
def tls_edge(stack, tmp_path_factory):
    d = tmp_path_factory.mktemp("edge-tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (d / "edge.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "edge.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    envoy = start_envoy(stack, d, tls_cert=str(d / "edge.crt"), tls_key=str(d / "edge.key"))
    yield envoy.port, d / "edge.crt"
    envoy.stop()


def test_https_rest_with_a_token(tls_edge, token, system):
    port, ca = tls_edge
    r = requests.get(f"https://localhost:{port}/status/{system}/userinfo",
                     headers={"Authorization": f"Bearer {token('alice')}"}, verify=str(ca), timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["user"]["name"] == "alice"
    refused = requests.get(f"https://localhost:{port}/status/{system}/userinfo", verify=str(ca), timeout=30)
    assert refused.status_code == 401 and refused.json()["errorType"] == "error"


def test_plaintext_is_not_served_on_the_tls_listener(tls_edge):
    port, _ = tls_edge
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/status/liveness/", timeout=10)


def test_grpc_over_tls(tls_edge, auth, system):
    port, ca = tls_edge
    ch = grpc.secure_channel(f"localhost:{port}", grpc.ssl_channel_credentials(root_certificates=ca.read_bytes()))
    stub = status_pb2_grpc.StatusServiceStub(ch)
    resp = stub.GetUserInfo(pb.GetUserInfoRequest(system_name=system), metadata=auth("bob"), timeout=30)
    assert resp.user.name == "bob"
    ch.close()
