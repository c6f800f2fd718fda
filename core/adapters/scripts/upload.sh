#!/bin/sh
# Upload (files.py): receive stdin into a new hidden file next to the target (noclobber: never
# an existing file), check that every byte arrived, then rename it over the target: readers see
# the old file or the new one, never a part. A failure (or a signal) removes the temporary file.
# stdin is always read to the end, so the sender is never left writing into a closed channel.
# $1 target  $2 temporary file (same directory)  $3 the number of bytes sent
target=$1 tmp=$2 size=$3
dir=${target%/*}; dir=${dir:-/}
if ! why=$(LC_ALL=C ls -d -- "$dir/." 2>&1 >/dev/null); then
  cat > /dev/null
  printf "%s: %s (the directory '%s')\n" "$target" "${why##*: }" "$dir" >&2; exit 1
fi
if [ ! -w "$dir" ] || [ ! -x "$dir" ]; then
  cat > /dev/null; printf "%s: Permission denied (cannot write in '%s')\n" "$target" "$dir" >&2; exit 1
fi
trap 'rm -f -- "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
set -C
if ! cat > "$tmp"; then cat > /dev/null; exit 1; fi
set +C
got=$(stat -c %s -- "$tmp") || exit 1
if [ "$got" != "$size" ]; then
  printf 'upload incomplete: %s of %s bytes arrived\n' "$got" "$size" >&2; exit 1
fi
if [ -d "$target" ] && [ ! -L "$target" ]; then
  printf "cannot overwrite '%s': Is a directory\n" "$target" >&2; exit 1
fi
if [ -e "$target" ] && [ ! -L "$target" ]; then
  if [ ! -w "$target" ]; then
    printf "cannot overwrite '%s': Permission denied\n" "$target" >&2; exit 1
  fi
  chmod --reference="$target" -- "$tmp" 2>/dev/null
fi
mv -f -T -- "$tmp" "$target"
