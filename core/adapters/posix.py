"""Plain POSIX commands on the login node (identity; later: files)."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.adapters import scripts
from core.adapters.commands import RemoteCommand
from core.adapters.ssh import ExecResult
from core.domain.errors import GatewayError


@dataclass
class Identity:
    uid: str
    user: str
    gid: str
    group: str
    groups: list[tuple[str, str]] = field(default_factory=list)  # (gid, name)
    accounts: list[tuple[str, bool]] = field(default_factory=list)  # (account, is_default)


class WhoAmI(RemoteCommand[Identity]):
    """The caller's identity as the cluster sees it, plus their Slurm accounts when sacctmgr works."""

    def argv(self) -> list[str]:
        return scripts.argv("whoami.sh")

    def parse(self, result: ExecResult) -> Identity:
        lines = result.out.split("\n")
        if len(lines) < 6:
            raise GatewayError(f"unexpected output of id: {result.out!r}")
        gids, names = lines[4].split(), lines[5].split()
        ident = Identity(
            uid=lines[0].strip(),
            user=lines[1].strip(),
            gid=lines[2].strip(),
            group=lines[3].strip(),
            groups=list(zip(gids, names, strict=False)),
        )
        default = ""
        for line in lines[6:]:
            if line.startswith("default="):
                default = line.removeprefix("default=").strip()
            elif line.startswith("account="):
                acc = line.removeprefix("account=").strip()
                if acc and acc not in [a for a, _ in ident.accounts]:
                    ident.accounts.append((acc, acc == default))
        return ident
