"""CertificateService: short-lived SSH user certificates for the caller, signed by the centre's CA.

The core mints these itself for every command it runs as the caller; this service also hands one
to a caller who brings their own public key (or gets a fresh key pair), always for their own user
and never for longer than the configured lifetime."""

from __future__ import annotations

import grpc
from google.protobuf import timestamp_pb2

from core.api.context import caller
from core.proto.firecrest.certificate.v1 import certificate_pb2 as pb
from core.proto.firecrest.certificate.v1 import certificate_pb2_grpc
from core.services.certificates import CertificateService


def _ts(t: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=t)


class CertificateServicer(certificate_pb2_grpc.CertificateServiceServicer):
    def __init__(self, certificates: CertificateService):
        self.certificates = certificates

    async def IssueCertificate(
        self, request: pb.IssueCertificateRequest, context: grpc.aio.ServicerContext
    ) -> pb.IssueCertificateResponse:
        user = caller()
        public_key = request.public_key.strip()
        if public_key:
            cert = self.certificates.sign(user, request.system_name, public_key)
            return pb.IssueCertificateResponse(
                certificate=cert.certificate,
                public_key=public_key,
                principal=user,
                valid_after=_ts(cert.valid_after),
                valid_before=_ts(cert.valid_before),
            )
        key = self.certificates.new_key(user, request.system_name)
        return pb.IssueCertificateResponse(
            certificate=key.cert.certificate,
            private_key=key.private_openssh,
            principal=user,
            valid_after=_ts(key.cert.valid_after),
            valid_before=_ts(key.cert.valid_before),
        )

    async def GetCertificateAuthority(
        self, request: pb.GetCertificateAuthorityRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCertificateAuthorityResponse:
        return pb.GetCertificateAuthorityResponse(public_key=self.certificates.authority(request.system_name))
