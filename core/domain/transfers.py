"""Staged transfers (FirecREST's /filesystem/{system_name}/transfer/*): what may be asked, how a
large file is cut into parts, where it is staged, what a transfer job reports and what that
means for its task, and the two ports the service (core.services.transfers) runs it all through: a
staging store (S3, core.adapters.s3) and a transfer system (checks over SSH as the user, then a
data-mover job of the system's Scheduler: core.adapters.transferjobs).

Rules that matter:
* Object keys are made here, never taken from the caller: `<user>/<transfer id>/<basename>`.
  A presigned URL covers exactly one key (and one method, one upload id, one part); changing any
  of it breaks the signature. The user prefix lets the janitor check ownership.
* Parts are FirecREST's: `max_part_size` bytes each, count = ceil(size / part size), at most
  `max_part_count` parts and 5 TiB in all; more is refused before anything runs.
* Every transfer is a job that runs as the user, and a Task (kind "transfer.<op>") whose error
  says why it failed: the job prints one machine-readable line
  `FIRECREST_TRANSFER_RESULT=<CODE> <message>` (codes: JobCode) that maps onto an ErrorReason;
  the code itself travels as the error's metadata `cause`.
* Staged objects never outlive their transfer: the job deletes an uploaded object once it is in
  place; the core aborts unfinished multipart uploads and deletes objects of failed, cancelled or
  expired transfers (and downloads once their URL has expired) — the janitor.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from core.domain.errors import (
    InvalidArgument,
    Reason,
)
from core.domain.tasks import Task, TaskError, TaskState

# ---------------------------------------------------------------- kinds


class Op(StrEnum):
    UPLOAD = "upload"
    DOWNLOAD = "download"
    COPY = "cp"
    MOVE = "mv"
    REMOVE = "rm"
    COMPRESS = "compress"
    EXTRACT = "extract"

    @property
    def kind(self) -> str:
        return f"transfer.{self.value}"


TRANSFER_KINDS = frozenset(op.kind for op in Op)


def op_of(kind: str) -> Op | None:
    for op in Op:
        if op.kind == kind:
            return op
    return None


# What pyfirecrest looks for in the job's output log (any of "File was successfully", "Files were
# successfully", "Multipart file upload successfully completed"); printed only on success.
SUCCESS_SENTENCE: Mapping[Op, str] = {
    Op.UPLOAD: "File was successfully uploaded",
    Op.DOWNLOAD: "File was successfully staged for download",
    Op.COPY: "Files were successfully copied",
    Op.MOVE: "Files were successfully moved",
    Op.REMOVE: "Files were successfully removed",
    Op.COMPRESS: "Files were successfully compressed",
    Op.EXTRACT: "Files were successfully extracted",
}

# ---------------------------------------------------------------- sizes and parts

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4
MAX_OBJECT_SIZE = 5 * TiB  # S3's largest object
MIN_PART_SIZE = 5 * MiB  # S3's smallest part (but the last)
MAX_PART_SIZE = 5 * GiB  # S3's largest part
MAX_PART_COUNT = 10000  # S3's most parts


@dataclass(frozen=True)
class PartPlan:
    part_size: int
    count: int

    def part_length(self, index: int, total: int) -> int:
        """Bytes in part `index` (0-based) of a `total`-byte file."""
        return max(0, min(self.part_size, total - index * self.part_size))


def check_part_config(part_size: int, max_count: int) -> None:
    """The store's part size and count must be what S3 accepts (a configuration error else)."""
    if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
        raise ValueError(f"multipart_part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes")
    if not 1 <= max_count <= MAX_PART_COUNT:
        raise ValueError(f"max_part_count must be between 1 and {MAX_PART_COUNT}")


def plan_parts(file_size: int, part_size: int, max_count: int) -> PartPlan:
    """FirecREST's multipart plan: parts of `part_size`, ceil(size / part size) of them (one for an
    empty file), refused (400) beyond `max_count` parts or 5 TiB."""
    if file_size < 0:
        raise InvalidArgument("fileSize must not be negative", metadata={"field": "fileSize"})
    limit = min(MAX_OBJECT_SIZE, part_size * max_count)
    if file_size > limit:
        raise InvalidArgument(
            f"a staged transfer takes at most {limit} bytes ({max_count} parts of {part_size} bytes, "
            f"5 TiB in all); the file has {file_size}",
            metadata={"field": "fileSize", "size": str(file_size), "limit": str(limit)},
        )
    return PartPlan(part_size, max(1, math.ceil(file_size / part_size)))


def file_size_of(value: float | None) -> int:
    """The request's fileSize (a JSON number; the proto carries it as a double)."""
    if value is None:
        raise InvalidArgument(
            "transferDirectives.fileSize is required for an s3 upload", metadata={"field": "fileSize"}
        )
    if not math.isfinite(value) or value != int(value) or value < 0:
        raise InvalidArgument(
            f"transferDirectives.fileSize must be a whole number of bytes >= 0, got {value:g}",
            metadata={"field": "fileSize"},
        )
    return int(value)


TRANSFER_METHODS = ("s3", "streamer")


def transfer_method(value: str) -> str:
    """"s3" (staged through the object store, the default) or "streamer" (straight from the node)."""
    method = (value or "s3").lower()
    if method == "wormhole":
        raise InvalidArgument(
            "transfer method 'wormhole' needs a public Magic Wormhole relay, which this gateway does not "
            "use: choose 's3' or 'streamer'",
            metadata={"field": "transferMethod"},
        )
    if method not in TRANSFER_METHODS:
        raise InvalidArgument(
            f"transfer method {value!r} is not offered here: use 's3' or 'streamer'",
            metadata={"field": "transferMethod"},
        )
    return method


# what a streamer server prints once it accepts connections (firecrest-streamer's own words)
STREAMER_LISTENING = "Server is listening on"


# ---------------------------------------------------------------- object keys

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
TRANSFER_ID = re.compile(r"^[0-9a-f]{32}$")
_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


def object_key(user: str, transfer_id: str, path: str) -> str:
    """`<user>/<transfer id>/<basename>`: the basename only for people looking at the bucket,
    reduced to [A-Za-z0-9._-] (never '.' or '..', at most 128 characters)."""
    if not _USER.match(user):
        raise ValueError(f"unexpected user name {user!r}")
    if not TRANSFER_ID.match(transfer_id):
        raise ValueError("transfer_id must be 32 hex digits")
    base = _SAFE.sub("_", path.rstrip("/").rsplit("/", 1)[-1])[:128].strip(".") or "data"
    return f"{user}/{transfer_id}/{base}"


@dataclass(frozen=True)
class KeyOwner:
    user: str
    transfer_id: str


def key_owner(key: str) -> KeyOwner | None:
    """Who a staged key belongs to (None for keys the gateway did not make)."""
    parts = key.split("/")
    if len(parts) != 3 or not _USER.match(parts[0]) or not TRANSFER_ID.match(parts[1]) or not parts[2]:
        return None
    return KeyOwner(parts[0], parts[1])


# ---------------------------------------------------------------- what a job reports

RESULT_PREFIX = "FIRECREST_TRANSFER_RESULT="
PROGRESS_PREFIX = "FIRECREST_TRANSFER_PROGRESS="
SHA256_PREFIX = "FIRECREST_TRANSFER_SHA256="
BYTES_PREFIX = "FIRECREST_TRANSFER_BYTES="


class JobCode(StrEnum):
    """The codes a transfer job prints on its result line."""

    OK = "OK"
    SOURCE_MISSING = "SOURCE_MISSING"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NO_SPACE = "NO_SPACE"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    SIZE_MISMATCH = "SIZE_MISMATCH"
    CHECKSUM_MISMATCH = "CHECKSUM_MISMATCH"
    URL_EXPIRED = "URL_EXPIRED"
    STAGING_ERROR = "STAGING_ERROR"
    INVALID = "INVALID"
    FAILED = "FAILED"


CODE_REASON: Mapping[JobCode, Reason] = {
    JobCode.SOURCE_MISSING: Reason.NOT_FOUND,
    JobCode.PERMISSION_DENIED: Reason.PERMISSION_DENIED,
    JobCode.NO_SPACE: Reason.FAILED_PRECONDITION,
    JobCode.QUOTA_EXCEEDED: Reason.FAILED_PRECONDITION,
    JobCode.SIZE_MISMATCH: Reason.FAILED_PRECONDITION,
    JobCode.CHECKSUM_MISMATCH: Reason.FAILED_PRECONDITION,
    JobCode.URL_EXPIRED: Reason.TIMEOUT,
    JobCode.STAGING_ERROR: Reason.BACKEND_UNAVAILABLE,
    JobCode.INVALID: Reason.INVALID_ARGUMENT,
    JobCode.FAILED: Reason.FAILED_PRECONDITION,
}

CODE_TEXT: Mapping[JobCode, str] = {
    JobCode.SOURCE_MISSING: "the source does not exist",
    JobCode.PERMISSION_DENIED: "permission denied",
    JobCode.NO_SPACE: "no space left on the target file system",
    JobCode.QUOTA_EXCEEDED: "the disk quota is exceeded",
    JobCode.SIZE_MISMATCH: "the size of the data does not match",
    JobCode.CHECKSUM_MISMATCH: "the checksum of the data does not match",
    JobCode.URL_EXPIRED: "the transfer's URLs expired before the data arrived",
    JobCode.STAGING_ERROR: "the staging store failed",
    JobCode.INVALID: "the request cannot be carried out",
    JobCode.FAILED: "the operation failed",
}


@dataclass(frozen=True)
class JobReport:
    """What the job printed: its result code (None while it has not finished, or if it was
    stopped before it could say), message, progress, and the data's SHA-256 and size."""

    code: JobCode | None
    message: str = ""
    progress: float | None = None
    sha256: str = ""
    size: int | None = None


def parse_report(text: str | None) -> JobReport | None:
    """The job's report from its output log: the last result line wins; None if there is none
    (the job did not get that far). Progress lines count only without a result line."""
    if not text:
        return None
    code: JobCode | None = None
    message = ""
    progress: float | None = None
    sha = ""
    size: int | None = None
    for line in text.splitlines():
        if line.startswith(RESULT_PREFIX):
            word, _, rest = line[len(RESULT_PREFIX) :].partition(" ")
            try:
                code = JobCode(word.strip())
            except ValueError:
                code = JobCode.FAILED
            message = rest.strip()
        elif line.startswith(PROGRESS_PREFIX):
            with contextlib.suppress(ValueError):
                progress = max(0.0, min(1.0, float(line[len(PROGRESS_PREFIX) :].strip())))
        elif line.startswith(SHA256_PREFIX):
            v = line[len(SHA256_PREFIX) :].strip()
            if re.fullmatch(r"[0-9a-f]{64}", v):
                sha = v
        elif line.startswith(BYTES_PREFIX):
            v = line[len(BYTES_PREFIX) :].strip()
            if v.isdigit():
                size = int(v)
    if code is None:
        return JobReport(None, "", progress) if progress is not None else None
    return JobReport(code, message, None, sha, size)


@dataclass(frozen=True)
class JobEnd:
    """The scheduler's view of a finished job (state word, exit code)."""

    job_id: str
    state: str
    exit_code: int | None = None


def transfer_outcome(
    op: Op, end: JobEnd, report: JobReport | None
) -> tuple[TaskState, dict[str, Any] | None, TaskError | None]:
    """The task state, result and error that a finished transfer job means."""
    if report is not None and report.code is JobCode.OK and end.state == "COMPLETED":
        result: dict[str, Any] = {"jobId": end.job_id}
        if report.sha256:
            result["sha256"] = report.sha256
        if report.size is not None:
            result["size"] = report.size
        return TaskState.SUCCEEDED, result, None
    meta = {"jobId": end.job_id, "jobState": end.state}
    if end.exit_code is not None:
        meta["exitCode"] = str(end.exit_code)
    if report is not None and report.code is not None and report.code is not JobCode.OK:
        meta["cause"] = report.code.value
        what = CODE_TEXT.get(report.code, "the operation failed")
        msg = f"{op.value} failed: {what}" + (f": {report.message}" if report.message else "")
        return TaskState.FAILED, None, TaskError(CODE_REASON[report.code], msg, meta)
    if end.state == "CANCELLED":
        meta["cause"] = "CANCELLED"
        return (
            TaskState.CANCELLED,
            None,
            TaskError(
                Reason.FAILED_PRECONDITION, f"{op.value}: transfer job {end.job_id} was cancelled", meta
            ),
        )
    if end.state == "TIMEOUT":
        meta["cause"] = "JOB_TIMEOUT"
        return (
            TaskState.FAILED,
            None,
            TaskError(Reason.TIMEOUT, f"{op.value}: transfer job {end.job_id} reached its time limit", meta),
        )
    meta["cause"] = "JOB_FAILED"
    return (
        TaskState.FAILED,
        None,
        TaskError(
            Reason.SCHEDULER_ERROR,
            f"{op.value}: transfer job {end.job_id} ended {end.state}"
            + (f" (exit code {end.exit_code})" if end.exit_code is not None else "")
            + " without reporting a result",
            meta,
        ),
    )


# ---------------------------------------------------------------- job plans (what a job must do)


@dataclass(frozen=True)
class Staged:
    """A presigned object for a job: one key, URLs that expire at `expires_at` (epoch seconds)."""

    key: str
    expires_at: float
    head_url: str = ""
    get_url: str = ""
    put_url: str = ""
    delete_url: str = ""
    upload_id: str = ""
    part_urls: tuple[str, ...] = ()
    part_size: int = 0
    complete_url: str = ""


@dataclass(frozen=True)
class JobPlan:
    """Everything a transfer job needs; an adapter renders it into a script. Paths are exact
    data (never shell text)."""

    op: Op
    transfer_id: str
    directory: str  # the private per-transfer directory (logs, script)
    source: str = ""
    target: str = ""
    size: int = 0
    dereference: bool = False
    compression: str = "gzip"
    pattern: str = ""
    staged: Staged | None = None
    method: str = "s3"  # upload/download: "s3" (staged) or "streamer"
    secret: str = ""  # streamer: the one-time secret its client must present


@dataclass(frozen=True)
class Check:
    """What must hold, as the user, before a transfer job is submitted."""

    op: Op
    source: str = ""
    target: str = ""


@dataclass(frozen=True)
class Checked:
    home: str
    size: int | None = None  # the source's size (download)


@dataclass(frozen=True)
class Submitted:
    job_id: str
    system: str
    directory: str  # the transfer's private directory (script, logs)
    output_log: str
    error_log: str
    working_directory: str = ""  # where the job runs: the user's home, as FirecREST v2 reports it
    coordinates: str = ""  # streamer: what the client needs to connect (FirecREST v2's encoding)


# ---------------------------------------------------------------- ports


@dataclass(frozen=True)
class StagedObject:
    key: str
    last_modified: float
    size: int = 0


class StagingStore(Protocol):
    url_expiry: int
    part_size: int
    max_part_count: int

    def ensure_bucket(self) -> None: ...

    def presign(
        self, method: str, key: str, expires: float, query: Mapping[str, str] | None = None
    ) -> str: ...

    def create_multipart(self, key: str) -> str: ...

    def abort_multipart(self, key: str, upload_id: str) -> bool: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...

    def objects(self, prefix: str = "") -> list[StagedObject]: ...

    def stale_uploads(self, older_than: float) -> list[tuple[str, str]] | None: ...


class TransferSystem(Protocol):
    """One system's transfers, used as a given user: the checks before anything runs, the
    transfer's job (submitted, followed, its log read, cancelled)."""

    name: str

    streamer_offered: bool
    streamer_ready_timeout: float

    async def check(self, user: str, check: Check) -> Checked: ...

    async def submit(self, user: str, home: str, plan: JobPlan, account: str) -> Submitted: ...

    async def job_ends(self, user: str, job_ids: Sequence[str]) -> dict[str, JobEnd | str]:
        """Per job id: JobEnd once final, else the current state word; absent when unknown."""
        ...

    async def read_log(self, user: str, path: str) -> str | None: ...

    async def cancel(self, user: str, job_id: str) -> None: ...


# ---------------------------------------------------------------- requests


@dataclass(frozen=True)
class TransferRequest:
    op: Op
    system: str
    account: str = ""
    source: str = ""
    target: str = ""
    file_size: int | None = None
    dereference: bool = False
    compression: str = "gzip"
    pattern: str = ""
    method: str = "s3"


@dataclass(frozen=True)
class Started:
    task: Task
    job: Submitted
    upload_urls: tuple[str, ...] = ()
    complete_url: str = ""
    part_size: int = 0
    download_url: str = ""


_ACCOUNT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+:@-]{0,127}$")


def check_account(account: str) -> str:
    if account and not _ACCOUNT.match(account):
        raise InvalidArgument(f"invalid account name {account!r}", metadata={"field": "account"})
    return account
