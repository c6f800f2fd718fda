"""Staged transfers on a system: the checks run as the user before anything is submitted, the
transfer job scripts (bash + coreutils + curl, run by Slurm as the user), and the
SlurmTransferSystem that submits and follows them (the domain's TransferSystem port) through the
compute adapter's SlurmScheduler.

Safety rules:
* Caller input reaches a shell only as data: positional parameters of fixed scripts (checks) or
  single-quoted words (shlex.quote) assigned to variables at the top of a job script; the script
  body never changes with the input.
* Presigned URLs are secrets: they live in the job script (mode 600, in the user's private
  ~/.firecrest/transfers/<id>/, removed as soon as the job starts; Slurm keeps its own copy) and
  reach curl through a config on a file descriptor, never through a command line (`ps`).
* A job prints exactly one result line `FIRECREST_TRANSFER_RESULT=<CODE> <message>` (see
  core.domain.transfers.JobCode), then FirecREST's success sentence when it succeeded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shlex
from collections.abc import Sequence
from pathlib import Path

from core.adapters import files
from core.adapters.cluster import Cluster
from core.adapters.commands import DiscardPrivateDir, RemoteCommand
from core.adapters.jobs import SlurmScheduler
from core.adapters.ssh import ExecResult
from core.config import StreamerConfig
from core.domain import paths
from core.domain.errors import GatewayError, InvalidArgument, NotFound, PermissionDenied
from core.domain.jobs import FINAL_JOB_STATES, JobSpec
from core.domain.transfers import (
    BYTES_PREFIX,
    PROGRESS_PREFIX,
    RESULT_PREFIX,
    SHA256_PREFIX,
    SUCCESS_SENTENCE,
    TRANSFER_ID,
    Check,
    Checked,
    JobEnd,
    JobPlan,
    Op,
    Submitted,
)

PRIVATE_ROOT = ".firecrest/transfers"  # below the user's home

# ---------------------------------------------------------------- checks before submission

# exit 10: missing (404), 11: permission denied (403), 12: unusable (400). Prints $HOME, then the
# source's size for a download.
_CHECK = r"""op=$1 src=$2 tgt=$3
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
"""


class CheckTransfer(RemoteCommand[Checked]):
    """As the user, before anything runs: the paths of the operation exist and are usable."""

    timeout = 30.0

    def __init__(self, check: Check):
        self.check_ = check

    def argv(self) -> list[str]:
        c = self.check_
        return ["sh", "-c", _CHECK, "sh", c.op.value, c.source, c.target]

    def check(self, result: ExecResult) -> None:
        if result.exit_status == 0:
            return
        text = result.err or f"exit status {result.exit_status}"
        field = "targetPath" if self.check_.op is Op.UPLOAD else "sourcePath"
        if result.exit_status == 10:
            raise NotFound(text, metadata={"field": field})
        if result.exit_status == 11:
            raise PermissionDenied(text, metadata={"field": field})
        if result.exit_status == 12:
            raise InvalidArgument(text, metadata={"field": field})
        raise GatewayError(f"could not check the transfer's paths: {text}")

    def parse(self, result: ExecResult) -> Checked:
        lines = result.out.splitlines()
        if not lines or not lines[0].startswith("/"):
            raise GatewayError(f"unexpected output while checking the transfer: {result.out!r}")
        size = int(lines[1]) if len(lines) > 1 and lines[1].strip().isdigit() else None
        return Checked(home=lines[0], size=size)


_WRITE = r"""d=$1
umask 077
mkdir -p -- "$HOME/.firecrest/transfers" || exit 1
chmod 700 -- "$HOME/.firecrest" "$HOME/.firecrest/transfers" || exit 1
mkdir -- "$HOME/.firecrest/transfers/$d" || exit 1
cat > "$HOME/.firecrest/transfers/$d/job.sh" || exit 1
"""


class WriteTransferScript(RemoteCommand[None]):
    """~/.firecrest/transfers/<id>/ (mode 700) with the job script (mode 600) from stdin."""

    timeout = 30.0

    def __init__(self, transfer_id: str, script: str):
        if not TRANSFER_ID.match(transfer_id):
            raise ValueError("transfer_id must be 32 hex digits")
        self.transfer_id = transfer_id
        self.stdin = script.encode("utf-8", "surrogatepass")

    def argv(self) -> list[str]:
        return ["sh", "-c", _WRITE, "sh", self.transfer_id]

    def check(self, result: ExecResult) -> None:
        if result.exit_status != 0:
            raise GatewayError(
                f"could not prepare the transfer directory: {result.err or result.exit_status}"
            )

    def parse(self, result: ExecResult) -> None:
        return None


# ---------------------------------------------------------------- job scripts

_PRELUDE = r"""set -u
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
"""

_UPLOAD = r"""F7T_TMP_DIR=$(dirname -- "$TARGET")
F7T_TMP="$F7T_TMP_DIR/.$(basename -- "$TARGET").firecrest-$F7T_ID.part"
trap 'rm -f -- "$F7T_TMP"' EXIT
trap 'exit 143' TERM INT HUP
progress 0
# 1. wait until the client has completed the upload (or the URLs expire). Some stores (s3rver)
# show an object while they still assemble it: a size below the announced one must hold still
# for a few polls before it counts as a mismatch.
delay=1
last="" same=0
while :; do
  hdrs=$(curl_url "$HEAD_URL" -s -I --max-time 60) || hdrs=""
  code=$(printf '%s\n' "$hdrs" | status_of)
  case $code in
    200)
      length=$(printf '%s\n' "$hdrs" | header content-length)
      if [ "$length" = "$SIZE" ]; then break; fi
      if [ "$length" = "$last" ]; then same=$((same + 1)); else same=0 last=$length; fi
      if [ "$same" -ge 3 ]; then break; fi
      delay=2 ;;
    404) ;;
    403)
      if expired; then fail URL_EXPIRED "the upload was not completed before its URLs expired"; fi
      fail STAGING_ERROR "the staging store refused the transfer's URL (HTTP 403)" ;;
    "" | 000 | 5*) ;;
    *) fail STAGING_ERROR "unexpected answer from the staging store (HTTP $code)" ;;
  esac
  if expired; then fail URL_EXPIRED "the upload was not completed before its URLs expired"; fi
  sleep "$delay"
  if [ "$delay" -lt 5 ]; then delay=$((delay + 1)); fi
done
progress 0.5
if [ "$length" != "$SIZE" ]; then
  curl_url "$DELETE_URL" -s -X DELETE -o /dev/null
  fail SIZE_MISMATCH "the uploaded object has ${length:-an unknown number of} bytes, $SIZE were announced"
fi
# 2. fetch it into a hidden temporary file next to the target
if [ -d "$TARGET" ]; then fail INVALID "cannot overwrite '$TARGET': Is a directory"; fi
run bash -c 'umask 077; set -C; : > "$1"' sh "$F7T_TMP"
errf=$(mktemp "$F7T_DIR/stderr.XXXXXX")
curl_url "$GET_URL" -sS -f -o - 2>"$errf.curl" | cat > "$F7T_TMP" 2>"$errf"
st=("${PIPESTATUS[@]}")
if [ "${st[1]}" -ne 0 ]; then
  err=$(cat -- "$errf"); cat -- "$errf" >&2
  fail "$(classify "$err")" "cannot write '$F7T_TMP': $err"
fi
if [ "${st[0]}" -ne 0 ]; then
  err=$(cat -- "$errf.curl"); cat -- "$errf.curl" >&2
  if expired; then fail URL_EXPIRED "the download URL expired: $err"; fi
  fail STAGING_ERROR "fetching the uploaded object failed: $err"
fi
rm -f -- "$errf" "$errf.curl"
progress 0.8
# 3. verify, then move it into place atomically (same directory: a rename)
got=$(stat -c %s -- "$F7T_TMP")
if [ "$got" != "$SIZE" ]; then fail SIZE_MISMATCH "received $got bytes, $SIZE were announced"; fi
sha=$(sha256sum < "$F7T_TMP" | cut -d' ' -f1)
if [ -e "$TARGET" ] && [ ! -L "$TARGET" ]; then
  chmod --reference="$TARGET" -- "$F7T_TMP" 2>/dev/null
else
  chmod "$(printf '%o' $(( 0666 & ~0$(umask) )))" -- "$F7T_TMP"
fi
run mv -f -T -- "$F7T_TMP" "$TARGET"
# 4. the staged object is not needed any more
code=$(curl_url "$DELETE_URL" -s -X DELETE -o /dev/null -w '%{http_code}') || code=000
case $code in 2*) ;; *) echo "could not delete the staged object (HTTP $code); the gateway will" >&2 ;; esac
printf '%s%s\n%s%s\n' "$F7T_SHA256" "$sha" "$F7T_BYTES" "$got"
report OK "$TARGET"
echo "$F7T_SUCCESS to $TARGET"
"""

_DOWNLOAD = r"""trap 'exit 143' TERM INT HUP
progress 0
if [ ! -e "$SOURCE" ]; then fail SOURCE_MISSING "cannot access '$SOURCE': No such file or directory"; fi
if [ ! -r "$SOURCE" ]; then fail PERMISSION_DENIED "cannot read '$SOURCE': Permission denied"; fi
if [ ! -f "$SOURCE" ]; then fail INVALID "'$SOURCE' is not a regular file"; fi
got=$(stat -L -c %s -- "$SOURCE")
if [ "$got" != "$SIZE" ]; then
  fail SIZE_MISMATCH "'$SOURCE' changed size since the transfer was requested ($SIZE -> $got bytes)"
fi
sha=$(sha256sum < "$SOURCE" | cut -d' ' -f1)
# put one range of the source ($1 offset, $2 length) to URL $3 and check the returned ETag
put_range() {
  local md5 hdrs code etag
  md5=$(dd if="$SOURCE" bs=4M iflag=skip_bytes,count_bytes skip="$1" count="$2" status=none | md5sum | cut -c1-32)
  hdrs=$(dd if="$SOURCE" bs=4M iflag=skip_bytes,count_bytes skip="$1" count="$2" status=none |
    curl_url "$3" -sS -T - -H "Content-Length: $2" -H 'Transfer-Encoding:' -H 'Expect:' -D - -o /dev/null) || {
    fail STAGING_ERROR "the staging store could not be reached"; }
  code=$(printf '%s\n' "$hdrs" | status_of)
  case $code in
    2*) ;;
    403) if expired; then fail URL_EXPIRED "the upload URL expired"; fi
         fail STAGING_ERROR "the staging store refused the upload (HTTP 403)" ;;
    *) fail STAGING_ERROR "the staging store refused the upload (HTTP $code)" ;;
  esac
  etag=$(printf '%s\n' "$hdrs" | header etag)
  if [ "$etag" != "$md5" ]; then fail CHECKSUM_MISMATCH "part checksum $etag from the store, $md5 sent"; fi
  PUT_ETAG=$etag
}
if [ "${#PART_URLS[@]}" -eq 0 ]; then
  put_range 0 "$SIZE" "$PUT_URL"
else
  n=${#PART_URLS[@]}
  xml="$F7T_DIR/complete.xml"
  printf '<CompleteMultipartUpload>' > "$xml"
  for ((i = 0; i < n; i++)); do
    off=$((i * PART_SIZE))
    len=$((SIZE - off < PART_SIZE ? SIZE - off : PART_SIZE))
    put_range "$off" "$len" "${PART_URLS[$i]}"
    printf '<Part><PartNumber>%d</PartNumber><ETag>"%s"</ETag></Part>' $((i + 1)) "$PUT_ETAG" >> "$xml"
    progress "$(awk -v a=$((i + 1)) -v b="$n" 'BEGIN{printf "%.2f", 0.9 * a / b}')"
  done
  printf '</CompleteMultipartUpload>' >> "$xml"
  code=$(curl_url "$COMPLETE_URL" -s -X POST -H 'Content-Type: application/xml' --data-binary @"$xml" \
    -o "$F7T_DIR/complete.out" -w '%{http_code}') || code=000
  if [ "$code" != 200 ] || grep -q '<Error>' "$F7T_DIR/complete.out"; then
    cat -- "$F7T_DIR/complete.out" >&2
    fail STAGING_ERROR "completing the multipart upload failed (HTTP $code)"
  fi
  rm -f -- "$xml" "$F7T_DIR/complete.out"
fi
hdrs=$(curl_url "$HEAD_URL" -s -I --max-time 60) || hdrs=""
length=$(printf '%s\n' "$hdrs" | header content-length)
if [ "$length" != "$SIZE" ]; then fail SIZE_MISMATCH "the staged object has ${length:-no} bytes, $SIZE expected"; fi
printf '%s%s\n%s%s\n' "$F7T_SHA256" "$sha" "$F7T_BYTES" "$SIZE"
report OK "$SOURCE"
echo "$F7T_SUCCESS: $SOURCE"
"""

_OPERATION = r"""trap 'exit 143' TERM INT HUP
progress 0
if [ -n "$MUST_EXIST" ] && [ ! -e "$MUST_EXIST" ] && [ ! -L "$MUST_EXIST" ]; then
  fail SOURCE_MISSING "cannot access '$MUST_EXIST': No such file or directory"
fi
run "${TOOL[@]}"
report OK ""
echo "$F7T_SUCCESS"
"""


def _q(value: str | int | float) -> str:
    return shlex.quote(str(value))


def _array(values: Sequence[str]) -> str:
    return "(" + " ".join(shlex.quote(v) for v in values) + ")"


def _tool(plan: JobPlan) -> list[str]:
    if plan.op is Op.COPY:
        return [
            "cp",
            "-R",
            "-f",
            "-L" if plan.dereference else "-P",
            "--preserve=mode,timestamps,links",
            "--",
            plan.source,
            plan.target,
        ]
    if plan.op is Op.MOVE:
        return ["mv", "-f", "--", plan.source, plan.target]
    if plan.op is Op.REMOVE:
        return files.Remove(plan.source).tool_argv()
    if plan.op is Op.COMPRESS:
        return files.Compress(
            paths.split_for_archive(plan.source),
            plan.target,
            plan.compression,
            plan.dereference,
            plan.pattern,
        ).tool_argv()
    if plan.op is Op.EXTRACT:
        return files.Extract(plan.source, plan.target, plan.compression).tool_argv()
    raise ValueError(f"no tool for {plan.op}")


# The streamer's server (streamer_job.py beside this file, firecrest-streamer's protocol), run by
# the job with the configured Python; the secret travels in the environment, never in argv.
STREAMER_SERVER = (Path(__file__).with_name("streamer_job.py")).read_text()


def streamer_argv(cfg: StreamerConfig, plan: JobPlan) -> list[str]:
    """The server's command line for a plan (everything but the secret)."""
    mode, path = ("receive", plan.target) if plan.op is Op.UPLOAD else ("send", plan.source)
    return [
        cfg.python, "-c", STREAMER_SERVER,
        "--host", cfg.host,
        "--port-range", str(cfg.port_range[0]), str(cfg.port_range[1]),
        "--wait-timeout", str(cfg.wait_timeout),
        "--inbound-transfer-limit", str(cfg.inbound_transfer_limit),
        mode, "--path", path,
    ]  # fmt: skip


def streamer_coordinates(cfg: StreamerConfig, secret: str) -> str:
    """What the client needs, encoded as FirecREST v2 and firecrest-streamer do."""
    data = {"ports": list(cfg.port_range), "ips": list(cfg.public_ips), "secret": secret}
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


_STREAMER = r"""trap 'exit 143' TERM INT HUP
progress 0
if [ "$MODE" = receive ] && { [ -e "$TARGET" ] || [ -L "$TARGET" ]; }; then
  fail FAILED "'$TARGET' already exists: the streamer does not overwrite a file"
fi
if [ "$MODE" = send ] && [ ! -f "$SOURCE" ]; then
  fail SOURCE_MISSING "cannot access '$SOURCE': No such file or directory"
fi
export F7T_STREAMER_SECRET="$SECRET"
unset SECRET
run "${STREAMER[@]}"
unset F7T_STREAMER_SECRET
if [ "$MODE" = receive ] && [ ! -e "$TARGET" ]; then
  fail FAILED "no client sent the file before the streamer stopped waiting"
fi
report OK ""
echo "$F7T_SUCCESS"
"""


def render_script(plan: JobPlan, directives: Sequence[str] = (), streamer: StreamerConfig | None = None) -> str:
    """The bash script of a transfer job: #SBATCH directives, the plan's data as quoted variable
    assignments, then a fixed body."""
    lines = ["#!/bin/bash"]
    for d in directives:
        if "\n" in d or not d.startswith("#SBATCH"):
            raise ValueError(f"a transfer job directive must be one '#SBATCH ...' line: {d!r}")
        lines.append(d)
    lines += [
        f"# FirecREST staged transfer {plan.transfer_id} ({plan.op.value})",
        f"F7T_ID={_q(plan.transfer_id)}",
        f"F7T_DIR={_q(plan.directory)}",
        f"F7T_RESULT={_q(RESULT_PREFIX)}",
        f"F7T_PROGRESS={_q(PROGRESS_PREFIX)}",
        f"F7T_SHA256={_q(SHA256_PREFIX)}",
        f"F7T_BYTES={_q(BYTES_PREFIX)}",
        f"F7T_SUCCESS={_q(SUCCESS_SENTENCE[plan.op])}",
        f"F7T_DEADLINE={int(plan.staged.expires_at) if plan.staged else 0}",
    ]
    s = plan.staged
    if plan.method == "streamer":
        if streamer is None:
            raise ValueError("a streamer transfer on a system without a streamer")
        lines += [
            f"MODE={'receive' if plan.op is Op.UPLOAD else 'send'}",
            f"TARGET={_q(plan.target)}",
            f"SOURCE={_q(plan.source)}",
            f"SECRET={_q(plan.secret)}",
            f"STREAMER={_array(streamer_argv(streamer, plan))}",
        ]
        body = _STREAMER
    elif plan.op is Op.UPLOAD:
        assert s is not None
        lines += [
            f"TARGET={_q(plan.target)}",
            f"SIZE={int(plan.size)}",
            f"HEAD_URL={_q(s.head_url)}",
            f"GET_URL={_q(s.get_url)}",
            f"DELETE_URL={_q(s.delete_url)}",
        ]
        body = _UPLOAD
    elif plan.op is Op.DOWNLOAD:
        assert s is not None
        lines += [
            f"SOURCE={_q(plan.source)}",
            f"SIZE={int(plan.size)}",
            f"HEAD_URL={_q(s.head_url)}",
            f"PUT_URL={_q(s.put_url)}",
            f"PART_SIZE={int(s.part_size)}",
            f"PART_URLS={_array(s.part_urls)}",
            f"COMPLETE_URL={_q(s.complete_url)}",
        ]
        body = _DOWNLOAD
    else:
        must_exist = plan.source if plan.op in (Op.REMOVE, Op.MOVE, Op.COPY, Op.COMPRESS, Op.EXTRACT) else ""
        lines += [f"MUST_EXIST={_q(must_exist)}", f"TOOL={_array(_tool(plan))}"]
        body = _OPERATION
    return "\n".join(lines) + "\n" + _PRELUDE + body


# ---------------------------------------------------------------- the port's adapter

_RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT"})


class SlurmTransferSystem:
    """The TransferSystem port for one system: checks and script writing over SSH as the user,
    submission and accounting through the compute adapter's SlurmScheduler."""

    def __init__(self, cluster: Cluster, scheduler: SlurmScheduler):
        self.cluster = cluster
        self.scheduler = scheduler
        self.name = cluster.name
        self.streamer = cluster.cfg.streamer
        self.streamer_offered = self.streamer is not None
        self.streamer_ready_timeout = self.streamer.ready_timeout if self.streamer else 0.0

    async def check(self, user: str, check: Check) -> Checked:
        return await self.cluster.run(user, CheckTransfer(check))

    async def submit(self, user: str, home: str, plan: JobPlan, account: str) -> Submitted:
        directory = plan.directory
        script = render_script(plan, self.cluster.cfg.datatransfer_jobs_directives, self.streamer)
        await self.cluster.run(user, WriteTransferScript(plan.transfer_id, script))
        out, err = f"{directory}/output.log", f"{directory}/error.log"
        spec = JobSpec(
            working_directory=home,
            script_path=f"{directory}/job.sh",
            name=f"firecrest-transfer-{plan.op.value}",
            account=account,
            standard_input="/dev/null",
            standard_output=out,
            standard_error=err,
        ).validated()
        tag = f"firecrest-transfer:{plan.transfer_id}"
        try:
            job_id = await self.scheduler.sbatch(user, spec, spec.script_path, tag)
        except BaseException:
            # sbatch may have gone through although its answer was lost: that job must not run
            with contextlib.suppress(GatewayError):
                lost = await self.scheduler.find_tagged(user, tag)
                if lost is not None:
                    await self.scheduler.cancel(user, lost)
            with contextlib.suppress(GatewayError):
                await self.cluster.run(user, DiscardPrivateDir("transfers", plan.transfer_id))
            raise
        return Submitted(
            job_id=job_id, system=self.name, directory=directory, output_log=out, error_log=err,
            working_directory=home,
            coordinates=streamer_coordinates(self.streamer, plan.secret)
            if plan.method == "streamer" and self.streamer else "",
        )

    async def job_ends(self, user: str, job_ids: Sequence[str]) -> dict[str, JobEnd | str]:
        records = await self.scheduler.accounting(user, list(job_ids))
        out: dict[str, JobEnd | str] = {}
        for job_id, job in records.items():
            if job.user and job.user != user:
                continue
            if job.final:
                out[job_id] = JobEnd(job_id, job.status.state, job.status.exit_code)
            elif job.status.state in FINAL_JOB_STATES:
                out[job_id] = "COMPLETING"
            else:
                out[job_id] = job.status.state
        return out

    async def read_log(self, user: str, path: str) -> str | None:
        if not path:
            return None
        return await self.scheduler.read_file(user, path)

    async def cancel(self, user: str, job_id: str) -> None:
        await self.scheduler.cancel(user, job_id)
