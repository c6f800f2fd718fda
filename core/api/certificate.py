"""CertificateService: short-lived SSH user certificates for the caller, signed by the centre's CA.

The core mints these itself for every command it runs as the caller; this service also hands one
to a caller who brings their own public key (or gets a fresh key pair), always for their own user
and never for longer than the configured lifetime."""

from __future__ import annotations

import grpc
from google.protobuf import timestamp_pb2

from core.api.context import caller
from core.domain.errors import InvalidArgument
from core.proto.firecrest.certificate.v1 import certificate_pb2 as pb
from core.proto.firecrest.certificate.v1 import certificate_pb2_grpc
from core.wiring import Gateway


def _ts(t: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=t)


class CertificateServicer(certificate_pb2_grpc.CertificateServiceServicer):
    def __init__(self, gw: Gateway):
        self.gw = gw

    async def IssueCertificate(
        self, request: pb.IssueCertificateRequest, context: grpc.aio.ServicerContext
    ) -> pb.IssueCertificateResponse:
        user = caller()
        self.gw.cluster(request.system_name)
        self.gw.accounts.check(user)  # PermissionDenied for an account the centre does not allow
        if request.public_key.strip():
            try:
                cert = self.gw.ca.sign(user, request.public_key.strip())
            except (ValueError, TypeError) as e:
                raise InvalidArgument(f"public_key is not an OpenSSH public key: {e}") from e
            return pb.IssueCertificateResponse(
                certificate=cert.certificate,
                public_key=request.public_key.strip(),
                principal=user,
                valid_after=_ts(cert.valid_after),
                valid_before=_ts(cert.valid_before),
            )
        key = self.gw.ca.new_user_key(user)
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
        self.gw.cluster(request.system_name)
        return pb.GetCertificateAuthorityResponse(public_key=self.gw.ca.public_key())
