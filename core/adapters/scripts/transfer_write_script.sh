#!/bin/sh
# WriteTransferScript (transferjobs.py): ~/.firecrest/transfers/<id>/ (mode 700) with the job
# script (mode 600) from stdin.
# $1 the transfer id (32 hex digits)
d=$1
umask 077
mkdir -p -- "$HOME/.firecrest/transfers" || exit 1
chmod 700 -- "$HOME/.firecrest" "$HOME/.firecrest/transfers" || exit 1
mkdir -- "$HOME/.firecrest/transfers/$d" || exit 1
cat > "$HOME/.firecrest/transfers/$d/job.sh" || exit 1
