# shellcheck shell=bash
# The start of every transfer job's body (transferjobs.render_script): the script (bash, run by
# Slurm as the user) is a header of #SBATCH lines and single-quoted variable assignments
# (F7T_ID, F7T_DIR, F7T_RESULT, F7T_PROGRESS, F7T_SHA256, F7T_BYTES, F7T_SUCCESS, F7T_DEADLINE and
# the operation's own), this prelude, then one of transfer_{upload,download,operation,streamer}.sh.
# A job prints exactly one line "$F7T_RESULT<CODE> <message>" (core.domain.transfers.JobCode).
# Presigned URLs never appear on a command line: curl reads them from a config on a descriptor.
set -u
set -o pipefail
rm -f -- "$F7T_DIR/job.sh"
report() {
  local msg=${2-}
  msg=${msg//$'\n'/ }
  msg=${msg//$'\r'/ }
  printf '%s%s %s\n' "$F7T_RESULT" "$1" "$msg"
}
fail() { printf '%s\n' "${2-}" >&2; report "$1" "${2-}"; exit 1; }
progress() { printf '%s%s\n' "$F7T_PROGRESS" "$1"; }
classify() {
  case $1 in
    *"No space left on device"*) echo NO_SPACE ;;
    *"Disk quota exceeded"*) echo QUOTA_EXCEEDED ;;
    *"ermission denied"* | *"Operation not permitted"* | *"Read-only file system"*) echo PERMISSION_DENIED ;;
    *"No such file or directory"*) echo SOURCE_MISSING ;;
    *) echo FAILED ;;
  esac
}
# run a tool; on failure report why (from its error text) and stop
run() {
  local errf rc err
  errf=$(mktemp "$F7T_DIR/stderr.XXXXXX") || fail FAILED "cannot create a temporary file"
  "$@" 2>"$errf"
  rc=$?
  if [ "$rc" -ne 0 ]; then
    err=$(tail -c 2000 -- "$errf")
    cat -- "$errf" >&2
    rm -f -- "$errf"
    fail "$(classify "$err")" "${err:-exit status $rc}"
  fi
  rm -f -- "$errf"
}
# curl with the URL in a config on a file descriptor (never in the command line)
curl_url() {
  local url=$1
  shift
  curl -K <(printf 'url = "%s"\n' "$url") "$@"
}
header() { tr -d '\r' | awk -v h="$1" '{ n=index($0,":"); if (n && tolower(substr($0,1,n-1))==h) v=substr($0,n+1) } END{ gsub(/^[ \t"]+|[ \t"]+$/,"",v); print v }'; }
status_of() { tr -d '\r' | awk '/^HTTP\//{c=$2} END{print c}'; }
expired() { [ "$(date +%s)" -ge "$F7T_DEADLINE" ]; }
# Checksums of bytes as they pass (tee to a FIFO; on another CPU, not by reading a file once
# more): `hashing NAME ALGO` starts ALGOsum reading $F7T_DIR/NAME.fifo, which this shell holds
# open so that the checksum ends only when `hashed NAME` closes it (whether or not a writer ever
# came), waits for it and sets HASH.
# `digest ALGO`: becomes the command that prints ALGO's digest of its input, first on its line:
# OpenSSL's where the node has it (it uses the CPU's SHA instructions: 0.65 s for 512 MiB of
# SHA-256 where coreutils' sha256sum took 4.5 s, on the machine of BENCHMARKS.md), else coreutils'.
digest() {
  if command -v openssl >/dev/null 2>&1; then exec openssl dgst "-$1" -r; fi
  exec "$1sum"
}
hashing() {
  local f=$F7T_DIR/$1 fd
  rm -f -- "$f.fifo" "$f.sum"
  mkfifo -m 600 -- "$f.fifo" || fail FAILED "cannot create a FIFO in $F7T_DIR"
  # (without the other checksums' FIFOs: as a writer of one, it would keep it from ever ending)
  (
    for v in "${!HASHING_FD_@}"; do eval "exec ${!v}>&-"; done
    digest "$2" < "$f.fifo" > "$f.sum"
  ) &
  printf -v "HASHING_PID_$1" %s "$!"
  exec {fd}>"$f.fifo"
  printf -v "HASHING_FD_$1" %s "$fd"
}
hashed() {
  local f=$F7T_DIR/$1 pid=HASHING_PID_$1 fd=HASHING_FD_$1
  eval "exec ${!fd}>&-"
  wait "${!pid}" || fail FAILED "computing a checksum failed"
  # shellcheck disable=SC2034 # HASH is read by the operation's body after the prelude
  HASH=$(cut -d' ' -f1 < "$f.sum")
  rm -f -- "$f.fifo" "$f.sum"
}
