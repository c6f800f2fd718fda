"""CertificateService: short-lived SSH user certificates for the caller, signed by the centre's CA
(the CertificateIssuer port), only for an account the centre's policy allows, always for the
caller's own user and never for longer than the CA's lifetime."""

from __future__ import annotations

from collections.abc import Callable

from core.domain.certificates import AccountPolicy, CertificateIssuer, SignedCertificate, UserKey
from core.domain.errors import InvalidArgument


class CertificateService:
    def __init__(self, issuer: CertificateIssuer, accounts: AccountPolicy, systems: Callable[[str], object]):
        self.issuer = issuer
        self.accounts = accounts
        self._systems = systems  # SystemNotFound for an unknown system

    def sign(self, user: str, system: str, public_key: str) -> SignedCertificate:
        """A certificate for the caller's own public key."""
        self._systems(system)
        self.accounts.check(user)
        try:
            return self.issuer.sign(user, public_key)
        except (ValueError, TypeError) as e:
            raise InvalidArgument(f"public_key is not an OpenSSH public key: {e}") from e

    def new_key(self, user: str, system: str) -> UserKey:
        """A fresh key pair for the caller, with its certificate."""
        self._systems(system)
        self.accounts.check(user)
        return self.issuer.new_user_key(user)

    def authority(self, system: str) -> str:
        """The CA's public key (what the system's sshd trusts)."""
        self._systems(system)
        return self.issuer.public_key()
