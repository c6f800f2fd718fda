#!/bin/sh
# DiscardPrivateDir (commands.py): the private directory the gateway made for one task (a job
# script, a transfer's script and logs). Nothing else is ever removed.
# $1 area (jobs or transfers)  $2 the task id (32 hex digits; both checked by DiscardPrivateDir)
rm -rf -- "$HOME/.firecrest/$1/$2"
