#!/bin/sh
# WritePrivateScript (commands.py): a fresh private directory ~/.firecrest/<area>/<id>/ (mode 700)
# with a job script (mode 600) from stdin, e.g. a transfer's data-mover job.
# $1 area (jobs or transfers)  $2 the task id (32 hex digits; both checked by WritePrivateScript)
umask 077
mkdir -p -- "$HOME/.firecrest/$1" || exit 1
chmod 700 -- "$HOME/.firecrest" "$HOME/.firecrest/$1" || exit 1
mkdir -- "$HOME/.firecrest/$1/$2" || exit 1
cat > "$HOME/.firecrest/$1/$2/job.sh" || exit 1
