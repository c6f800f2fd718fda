#!/bin/sh
# CheckTransfer (transferjobs.py), as the user, before anything is submitted: the paths of the
# operation exist and are usable. Prints $HOME, then the source's size for a download.
# Exit 10: missing (404), 11: permission denied (403), 12: unusable (400), 13: no home/no size.
# $1 operation (upload, download, cp, mv, rm, compress, extract)  $2 source  $3 target
op=$1 src=$2 tgt=$3
fail() { c=$1; shift; printf '%s\n' "$*" >&2; exit "$c"; }
strip() { p=$1; while [ "${#p}" -gt 1 ] && [ "${p%/}" != "$p" ]; do p=${p%/}; done; printf '%s' "$p"; }
parent() { p=$(strip "$1"); case $p in */*) p=${p%/*} ;; *) p=. ;; esac; [ -n "$p" ] || p=/; printf '%s' "$p"; }
exists() {
  [ -e "$1" ] || [ -L "$1" ] && return 0
  err=$(ls -d -- "$1" 2>&1 >/dev/null)
  case $err in
    *"ermission denied"*) fail 11 "cannot access '$1': Permission denied" ;;
    *) fail 10 "cannot access '$1': No such file or directory" ;;
  esac
}
writable_dir() {
  exists "$1"
  [ -d "$1" ] || fail 12 "'$1' is not a directory"
  { [ -w "$1" ] && [ -x "$1" ]; } || fail 11 "cannot write to directory '$1': Permission denied"
}
readable_file() {
  exists "$1"
  [ -d "$1" ] && fail 12 "'$1' is a directory"
  [ -f "$1" ] || fail 12 "'$1' is not a regular file"
  [ -r "$1" ] || fail 11 "cannot read '$1': Permission denied"
}
case $op in
  upload)
    writable_dir "$(parent "$tgt")"
    if [ -d "$tgt" ]; then fail 12 "cannot overwrite '$tgt': Is a directory"; fi
    if [ -e "$tgt" ] && [ ! -w "$tgt" ]; then fail 11 "cannot overwrite '$tgt': Permission denied"; fi ;;
  download)
    readable_file "$src" ;;
  cp | compress)
    exists "$src"
    writable_dir "$(parent "$tgt")" ;;
  mv)
    exists "$src"
    writable_dir "$(parent "$src")"
    writable_dir "$(parent "$tgt")" ;;
  rm)
    exists "$src"
    writable_dir "$(parent "$src")" ;;
  extract)
    readable_file "$src"
    writable_dir "$tgt" ;;
  *) fail 12 "unknown operation $op" ;;
esac
case $HOME in /*) ;; *) fail 13 "the account has no home directory" ;; esac
printf '%s\n' "$HOME"
if [ "$op" = download ]; then stat -L -c %s -- "$src" || exit 13; fi
