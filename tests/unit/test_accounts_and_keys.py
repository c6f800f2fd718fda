"""Without the stack: which accounts the gateway acts for (the host's real name service: root,
daemon, the demo users), and which public keys it certifies."""

from __future__ import annotations

import grp
import pwd

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from core.adapters.accounts import AccountPolicy
from core.adapters.certs import acceptable_public_key
from core.domain.errors import PermissionDenied


def _refused(policy: AccountPolicy, user: str) -> bool:
    try:
        policy.check(user)
    except PermissionDenied:
        return True
    return False


def test_root_and_system_accounts_are_refused_by_default():
    policy = AccountPolicy()
    for user in ("root", "daemon", "bin", "nobody"):
        assert _refused(policy, user), user
    assert _refused(policy, "no-such-account-here")


def test_a_uid_range_and_a_group_both_apply():
    regular = next((p for p in pwd.getpwall() if 1000 <= p.pw_uid <= 60000), None)
    if regular is None:
        pytest.skip("no regular account on this host (the stack creates alice and bob)")
    assert not _refused(AccountPolicy(), regular.pw_name)
    assert _refused(AccountPolicy(uid_range=(0, 999)), regular.pw_name)
    primary = grp.getgrgid(regular.pw_gid).gr_name
    assert not _refused(AccountPolicy(groups=(primary,)), regular.pw_name)
    assert _refused(AccountPolicy(groups=("a-group-nobody-is-in",)), regular.pw_name)


def test_root_is_refused_even_when_the_range_allows_everything():
    assert _refused(AccountPolicy(uid_range=None), "root")


def _line(key) -> str:  # type: ignore[no-untyped-def]
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


@pytest.mark.parametrize("bits,ok", [(1024, False), (2047, False), (2048, True), (3072, True)])
def test_rsa_needs_2048_bits(bits, ok):
    line = _line(rsa.generate_private_key(65537, bits).public_key())
    if ok:
        assert acceptable_public_key(line).key_size == bits  # type: ignore[union-attr]
    else:
        with pytest.raises(ValueError, match="too short"):
            acceptable_public_key(line)


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.SECP521R1()])
def test_ecdsa_and_ed25519_are_accepted(curve):
    acceptable_public_key(_line(ec.generate_private_key(curve).public_key()))
    acceptable_public_key(_line(ed25519.Ed25519PrivateKey.generate().public_key()))


@pytest.mark.parametrize("line", ["", "ssh-ed25519", "ssh-ed25519 !!!", "ssh-dss AAAAB3NzaC1kc3MAAAAB", "x y z"])
def test_malformed_or_unsupported_keys_are_value_errors(line):
    with pytest.raises(ValueError):
        acceptable_public_key(line)
