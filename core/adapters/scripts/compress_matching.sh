#!/bin/sh
# Compress with a pattern (files.py): tar the regular files below parent/name whose path
# (./name/...) matches a find -regex.
# $1 parent  $2 name  $3 find -regex pattern  $4 -P or -L (follow symlinks)  $5... tar's argv
parent=$1 name=$2 pattern=$3 how=$4
shift 4
list=$(mktemp) || exit 1
trap 'rm -f -- "$list"' EXIT
trap 'exit 1' HUP INT TERM
cd -- "$parent" || exit 1
find "$how" "./$name" -type f -regex "$pattern" -print0 > "$list" || exit 1
"$@" --null --verbatim-files-from --files-from="$list"
