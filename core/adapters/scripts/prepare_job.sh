#!/bin/sh
# PrepareJob (jobs.py), as the user: the working directory must exist; a script_path must be a
# readable file; an inline script goes to a new private file ~/.firecrest/jobs/<id>.sh (its
# text: the shell variable F7T_INPUT when set, else stdin). Prints the script's path.
# Exit 3: working directory unusable, 4: script_path unusable, 5: the file could not be written.
# $1 working directory  $2 script_path ("" for an inline script)  $3 the task id
# $4... optional: a command (sbatch ...) run on the script (PrepareAndSubmit: one SSH exec)
wd=$1 sp=$2 d=$3
shift 3
if ! cd -- "$wd" 2>/dev/null; then
  err=$(ls -d -- "$wd/." 2>&1 >/dev/null)
  echo "working directory '$wd' is not usable: ${err:-Permission denied}" >&2; exit 3
fi
if [ -n "$sp" ]; then
  if [ ! -f "$sp" ] || [ ! -r "$sp" ]; then
    err=$(head -c 0 -- "$sp" 2>&1 >/dev/null)
    echo "script_path '$sp' is not a readable file: ${err:-not a regular file}" >&2; exit 4
  fi
  script=$sp
else
  umask 077
  jobs=$HOME/.firecrest/jobs
  # a new private file ~/.firecrest/jobs/<task id>.sh: no process is started for it once
  # ~/.firecrest/jobs exists (the first time it is made, its parents private too); set -C: an
  # existing file is never written over
  if [ ! -d "$jobs" ]; then
    { mkdir -p -- "$jobs" && chmod 700 -- "$HOME/.firecrest" "$jobs"; } || exit 5
  fi
  script=$jobs/$d.sh
  set -C
  # in a command shell the script's text is the (unexported) variable F7T_INPUT, written by the
  # shell itself; over an exec channel it comes on stdin
  if [ -n "${F7T_INPUT+set}" ]; then
    printf '%s' "$F7T_INPUT" > "$script" || exit 5
  else
    cat > "$script" || exit 5
  fi
  set +C
fi
printf '%s\n' "$script"
# with a command after the three arguments (sbatch ...), run it on the script: one SSH exec
# prepares and submits
[ $# -eq 0 ] || exec "$@" "$script"
