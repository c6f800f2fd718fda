#!/bin/sh
# ListFiles (files.py): ls -l of one path with find, as the calling user.
# $1 path  $2 follow symlinks (1/0)  $3 hidden entries (1/0)  $4 recursive (1/0)
# $5 find -printf format for a directory's entries  $6 ... for the path itself
# A directory lists its entries (names relative to it); anything else, or a symlink unless
# following, lists itself. Hidden entries (and, recursively, hidden directories) only with $3.
# TZ=:/etc/localtime is what an unset TZ means, said once: otherwise glibc checks /etc/localtime
# again for every entry's time (a fifth of find's time for 1,000 entries)
: "${TZ=:/etc/localtime}"
export TZ
p=$1 follow=$2 hidden=$3 recursive=$4 fmt_dir=$5 fmt_one=$6
if [ "$follow" = 1 ]; then how=-L; else how=-P; fi
if { [ "$follow" = 1 ] || [ ! -L "$p" ]; } && [ -d "$p" ]; then
  set -- find "$how" "$p" -mindepth 1
  [ "$recursive" = 1 ] || set -- "$@" -maxdepth 1
  [ "$hidden" = 1 ] || set -- "$@" -name '.*' -prune -o
  exec "$@" -printf "$fmt_dir"
fi
exec find "$how" "$p" -maxdepth 0 -printf "$fmt_one"
