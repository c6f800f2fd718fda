"""The caller as a Slurm system sees them: POSIX identity (`id`) and the Slurm accounts they may
charge (sacctmgr's associations and default account, when sacctmgr works), in one command."""

from __future__ import annotations

from core.adapters import scripts
from core.adapters.commands import RemoteCommand
from core.adapters.ssh import ExecResult
from core.domain.errors import GatewayError
from core.domain.scheduler import UserInfo


class WhoAmI(RemoteCommand[UserInfo]):
    """Asks no daemon that could be down (sacctmgr's failure leaves the accounts empty)."""

    def argv(self) -> list[str]:
        return scripts.argv("whoami.sh")

    def parse(self, result: ExecResult) -> UserInfo:
        lines = result.out.split("\n")
        if len(lines) < 6:
            raise GatewayError(f"unexpected output of id: {result.out!r}")
        gids, names = lines[4].split(), lines[5].split()
        default = ""
        accounts: list[str] = []
        for line in lines[6:]:
            if line.startswith("default="):
                default = line.removeprefix("default=").strip()
            elif line.startswith("account="):
                acc = line.removeprefix("account=").strip()
                if acc and acc not in accounts:
                    accounts.append(acc)
        return UserInfo(
            uid=lines[0].strip(),
            user=lines[1].strip(),
            gid=lines[2].strip(),
            group=lines[3].strip(),
            groups=tuple(zip(gids, names, strict=False)),
            accounts=tuple((a, a == default) for a in accounts),
        )
