#!/bin/sh
# LookupIds (files.py): the user and group names of numeric ids, from the user database.
# $1 uids, comma-separated  $2 gids, comma-separated (digits only: LookupIds filters them)
# An id with no name prints nothing (it stays a number); a missing getent is not an error.
# $1 and $2 are split on IFS=, on purpose (getent takes one argument per id), without globbing:
# shellcheck disable=SC2086
IFS=,
set -f
[ -z "$1" ] || getent passwd $1
[ -z "$2" ] || getent group $2
exit 0
