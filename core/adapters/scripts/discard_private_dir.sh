#!/bin/sh
# DiscardPrivateDir (commands.py): what the gateway made for one task in its private area: the
# task's directory (a transfer's script and logs; a job script before 2026-12-03) or its file
# (a job script, <task id>.sh). Nothing else is ever removed.
# $1 area (jobs or transfers)  $2 the task id (32 hex digits; both checked by DiscardPrivateDir)
rm -rf -- "$HOME/.firecrest/$1/$2" "$HOME/.firecrest/$1/$2.sh"
