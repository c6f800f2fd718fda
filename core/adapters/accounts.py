"""Which accounts the gateway acts for: only the centre's users, never a system account.

The gateway mints an SSH certificate for whoever the token names; the token's issuer is trusted,
but an issuer (or a claim mapping) that names `daemon`, `munge` or `mysql` must not turn into a
shell for that account. The policy is the centre's: members of configured Unix groups and/or uids
in a range, looked up through the host's name service (the same NSS as the login nodes).
"""

from __future__ import annotations

import contextlib
import grp
import pwd
import threading
import time

from core.domain.errors import PermissionDenied


class AccountPolicy:
    def __init__(
        self,
        groups: tuple[str, ...] = (),
        uid_range: tuple[int, int] | None = (1000, 60000),
        cache_seconds: float = 60.0,
    ):
        self.groups = groups
        self.uid_range = uid_range
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def check(self, user: str) -> None:
        """Raise PermissionDenied unless the gateway may act for ``user``."""
        with self._lock:
            hit = self._cache.get(user)
        if hit is None or hit[0] < time.monotonic():
            hit = (time.monotonic() + self.cache_seconds, self._refusal(user))
            with self._lock:
                self._cache[user] = hit
        if hit[1] is not None:
            raise PermissionDenied(hit[1], metadata={"user": user})

    def _refusal(self, user: str) -> str | None:
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            return f"'{user}' is not an account of this centre"
        if pw.pw_uid == 0:
            return "the gateway never acts for a superuser"
        if self.uid_range is not None and not self.uid_range[0] <= pw.pw_uid <= self.uid_range[1]:
            return f"the account '{user}' may not use the gateway (a system account)"
        if self.groups:
            member = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
            with contextlib.suppress(KeyError):
                member.add(grp.getgrgid(pw.pw_gid).gr_name)
            if not member.intersection(self.groups):
                return f"the account '{user}' may not use the gateway (not in an allowed group)"
        return None
