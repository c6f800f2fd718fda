#!/bin/sh
# Mkdir, Symlink, Chmod, Chown (files.py): run a tool, then describe the path it acted on as
# one ls -l entry.
# $1 path  $2 -P (the path itself) or -H (the file a symlink points to)  $3 find -printf format
# $4... the tool's argv
p=$1 how=$2 fmt=$3
shift 3
"$@" || exit $?
exec find "$how" "$p" -maxdepth 0 -printf "$fmt"
