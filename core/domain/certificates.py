"""SSH user certificates: what the centre's CA issues (one principal, the caller, for a short
time) and the two ports the certificate service needs: the CA itself and the centre's account
policy (whom the gateway may act for). core.adapters.certs and core.adapters.accounts implement
them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SignedCertificate:
    principal: str
    certificate: str  # OpenSSH one-line form: "ssh-ed25519-cert-v01@openssh.com AAAA... key-id"
    key_id: str
    serial: int
    valid_after: int
    valid_before: int


@dataclass(frozen=True)
class UserKey:
    """A private key made for one user, and its certificate (both in OpenSSH text forms)."""

    private_openssh: str
    cert: SignedCertificate


class CertificateIssuer(Protocol):
    lifetime: int  # seconds a certificate is valid at most

    def public_key(self) -> str:
        """The CA's public key (OpenSSH form): what sshd's TrustedUserCAKeys holds."""
        ...

    def sign(self, principal: str, public_key_openssh: str) -> SignedCertificate:
        """A certificate for the key; ValueError for a key OpenSSH's defaults would not accept."""
        ...

    def new_user_key(self, principal: str) -> UserKey: ...


class AccountPolicy(Protocol):
    def check(self, user: str) -> None:
        """PermissionDenied unless the gateway may act for `user`."""
        ...
