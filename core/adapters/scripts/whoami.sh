#!/bin/sh
# The caller's identity as the login node sees it (no caller input): uid, user, gid, group, the
# group ids and names, then their default Slurm account and associations when sacctmgr works.
id -u; id -un; id -g; id -gn; id -G; id -Gn
u=$(id -un)
echo "default=$(sacctmgr -n -P show user "$u" format=defaultaccount 2>/dev/null | head -n1)"
sacctmgr -n -P show assoc user="$u" format=account 2>/dev/null | sed 's/^/account=/'
true
