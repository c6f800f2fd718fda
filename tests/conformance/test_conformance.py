"""Differential conformance: every FirecREST v2 operation, sent with the same inputs to our gateway
("ours") and to FirecREST v2 2.5.6 itself ("theirs", see devstack/oracle.py), on the same stack.

Each side works in its own directory with identical contents (same names, modes and times), so a
mutating operation acts on equal but separate files; jobs are either one job asked about through
both sides or one job per side. For each case the status codes, the JSON structure (every key,
null versus absent, the JSON types) and the values are compared, after normalising only what
legitimately differs: the side's own directory (`{dir}`), and the values listed in the case's
`volatile` paths (ids, times, generated names), whose type and presence are still compared.

A difference fails the case unless `deviations.DEVIATIONS` accepts it, with the reason (each one
also in the README). The report, per operation and case, identical or every difference, is
written to `$F7T_STACK_DIR/conformance/report.md` (and `.json`) at the end of the module.
"""

from __future__ import annotations

import io
import json
import os
import pwd
import shutil
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.layout import load_layout
from tests.conformance.compare import differences, normalise
from tests.conformance.deviations import accepted, theirs_message

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the cases create fixtures in the users' homes")

USER = "alice"
OTHER = "bob"
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"}
STAMP = 1_700_000_000  # every fixture file's atime and mtime, the same on both sides
BIG = 6 * 1024 * 1024  # above max_ops_file_size (5 MiB) on both sides
SEQ = "".join(f"{i}\n" for i in range(1, 51))

# values that legitimately differ between the two sides
FILE_TIMES = ("$.output.ctime", "$.output.ino", "$.output.atime")
TRANSFER_JOB = (
    "$.transferJob.jobId",
    "$.transferJob.logs.outputLog",
    "$.transferJob.logs.errorLog",
)


@dataclass
class Side:
    label: str  # "ours" or "theirs"
    base: str
    dir: Path  # this side's working directory (identical contents on both sides)
    jobdir: Path  # this side's directory for job output (kept out of `dir`, whose listing is compared)
    token: Callable[[str], str]  # user -> a valid token
    system: str
    jobs: dict[str, str] = field(default_factory=dict)  # per-side jobs made during setup

    def send(self, method: str, path: str, *, token: str | None = None, user: str = USER, **kw: Any) -> requests.Response:
        """As `user` (default); `token` instead of a valid one if given ("" sends no token at all)."""
        token = self.token(user) if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = self.base + _subst(path, self)
        for k in ("params", "json"):
            if k in kw:
                kw[k] = _subst(kw[k], self)
        return requests.request(method, url, headers=headers, timeout=120, **kw)


def _subst(v: Any, side: Side) -> Any:
    if isinstance(v, str):
        return (v.replace("{dir}", str(side.dir)).replace("{jobdir}", str(side.jobdir))
                .replace("{system}", side.system))
    if isinstance(v, dict):
        return {k: _subst(x, side) for k, x in v.items()}
    if isinstance(v, list):
        return [_subst(x, side) for x in v]
    return v


@dataclass
class Case:
    op: str  # "METHOD /path/template" as in the spec
    name: str
    method: str
    path: str
    kw: dict[str, Any] = field(default_factory=dict)
    volatile: tuple[str, ...] = ()
    token: str | None = None  # None: the user's valid token; "": none at all
    user: str = USER
    pick: Callable[[Any, Side], Any] | None = None  # reduce a body before comparing (e.g. one job of a list)
    before: Callable[[Side], None] | None = None  # per-side preparation (e.g. a job to cancel)

    @property
    def id(self) -> str:
        return f"{self.op} [{self.name}]"


# ---------------------------------------------------------------------------------- fixtures


def _own(path: Path, user: str = USER) -> None:
    pw = pwd.getpwnam(user)
    os.lchown(path, pw.pw_uid, pw.pw_gid)


def _tree(root: Path) -> None:
    """The same files on both sides: names, contents, modes and times."""
    root.mkdir(parents=True)
    (root / "file.txt").write_text(SEQ)
    (root / "empty").mkdir()
    (root / "sub").mkdir()
    (root / "sub" / "a.txt").write_text("a\n")
    (root / ".hidden").write_text("h\n")
    (root / "link").symlink_to("file.txt")
    (root / "big.bin").write_bytes(b"\0" * BIG)
    (root / "todelete.txt").write_text("x\n")
    (root / "chmod.txt").write_text("x\n")
    (root / "tomove.txt").write_text("x\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("inside.txt")
        info.size, info.mtime, info.uname, info.gname = 3, STAMP, USER, USER
        tar.addfile(info, io.BytesIO(b"in\n"))
    (root / "archive.tar.gz").write_bytes(buf.getvalue())
    for p in sorted(root.rglob("*"), reverse=True):
        _own(p)
        if not p.is_symlink():
            os.utime(p, (STAMP, STAMP))
    noperm = root / "noperm"  # someone else's directory: permission denied for the user
    noperm.mkdir(mode=0o700)
    (noperm / "f").write_text("secret\n")
    os.utime(noperm, (STAMP, STAMP))
    _own(root)
    os.utime(root, (STAMP, STAMP))


@pytest.fixture(scope="module")
def sides(stack: dict[str, str], oracle: str, token: Callable[[str], str]) -> Iterator[dict[str, Side]]:
    run = Path("/home") / USER / f"f7t-conformance-{uuid.uuid4().hex[:8]}"
    run.mkdir(mode=0o755)
    _own(run)
    out = {}
    # directory names of equal length: a symlink's size is the length of its target's path
    for label, base, name in (("ours", stack["F7T_URL"], "gw"), ("theirs", oracle, "v2")):
        _tree(run / name)
        jobdir = run / f"jobs-{name}"
        jobdir.mkdir()
        _own(jobdir)
        out[label] = Side(label, base, run / name, jobdir, token, stack["F7T_SYSTEM"])
    yield out
    shutil.rmtree(run, ignore_errors=True)


def _wait_job(side: Side, job_id: str, final: bool = True, deadline: float = 150) -> dict[str, Any]:
    end = time.monotonic() + deadline
    while True:
        r = side.send("GET", f"/compute/{{system}}/jobs/{job_id}")
        if r.status_code == 200:
            job = r.json()["jobs"][0]
            state = job["status"]["state"]
            if (state in FINAL and job["time"].get("end")) if final else state == "RUNNING":
                return dict(job)
        assert time.monotonic() < end, f"job {job_id}: {r.status_code} {r.text[:300]}"
        time.sleep(1)


def _submit(side: Side, script: str, name: str) -> str:
    job = {"name": name, "script": script, "workingDirectory": str(side.jobdir),
           "standardOutput": str(side.jobdir / f"{name}.out"), "standardError": str(side.jobdir / f"{name}.err")}
    r = side.send("POST", "/compute/{system}/jobs", json={"job": job})
    assert r.status_code == 201, r.text
    return str(r.json()["jobId"])


@pytest.fixture(scope="module")
def listed_job(sides: dict[str, Side]) -> Iterator[str]:
    """A finished job of bob's, for the listing. Bob, because FirecREST v2 fails to list a user's jobs
    once a job name in the last 7 days contains '|' (ORACLE.md), and alice's hostile-name tests make
    such jobs; nothing of bob's is named so."""
    home = Path("/home") / OTHER / f"f7t-conformance-{uuid.uuid4().hex[:8]}"
    home.mkdir()
    _own(home, OTHER)
    ours = sides["ours"]
    job = {"name": "conformance-listed", "script": JOB_SCRIPT, "workingDirectory": str(home)}
    r = ours.send("POST", "/compute/{system}/jobs", json={"job": job}, user=OTHER)
    assert r.status_code == 201, r.text
    job_id = str(r.json()["jobId"])
    end = time.monotonic() + 150
    while True:
        r = ours.send("GET", f"/compute/{{system}}/jobs/{job_id}", user=OTHER)
        if r.status_code == 200 and r.json()["jobs"][0]["time"].get("end"):
            break
        assert time.monotonic() < end, r.text
        time.sleep(1)
    time.sleep(2)
    yield job_id
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def done_job(sides: dict[str, Side]) -> str:
    """One finished job, submitted through ours, asked about through both."""
    ours = sides["ours"]
    job_id = _submit(ours, "#!/bin/bash\necho hello\n", "conformance-done")
    _wait_job(ours, job_id)
    time.sleep(2)  # accounting settles (End, Elapsed) before the comparison
    return job_id


# ---------------------------------------------------------------------------------- the cases

OPS = "/filesystem/{system}/ops"
XFER = "/filesystem/{system}/transfer"
JOB_SCRIPT = "#!/bin/bash\necho hello\n"


def _job_body(**over: Any) -> dict[str, Any]:
    job = {"name": "conformance", "script": JOB_SCRIPT, "workingDirectory": "{jobdir}"}
    job.update(over)
    return {"job": job}


def _only_job(job_id_of: Callable[[Side], str]) -> Callable[[Any, Side], Any]:
    def pick(body: Any, side: Side) -> Any:
        if isinstance(body, dict) and isinstance(body.get("jobs"), list):
            want = job_id_of(side)
            return {**body, "jobs": [j for j in body["jobs"] if str(j.get("jobId")) == want]}
        return body

    return pick


def _sleeping_job(key: str) -> Callable[[Side], None]:
    def before(side: Side) -> None:
        side.jobs[key] = _submit(side, "#!/bin/bash\nsleep 300\n", f"conformance-{key}")
        _wait_job(side, side.jobs[key], final=False)

    return before


JOB_VOLATILE = ("$.jobs[*].time.*", "$.jobs[*].nodes", "$.jobs[*].allocationNodes")

CASES: list[Case] = [
    # ---- status
    Case("GET /status/liveness/", "ok", "GET", "/status/liveness/", volatile=("$.lastUpdate", "$.healthcheckRuns")),
    # health probes depend on each side's probing (timing, service account); timeouts, pool size and
    # probing settings are each side's configuration
    Case("GET /status/systems", "ok", "GET", "/status/systems",
         volatile=("$.systems[*].servicesHealth", "$.systems[*].lastHealthCheck", "$.systems[*].probing",
                   "$.systems[*].ssh.timeout.*", "$.systems[*].ssh.maxClients")),
    Case("GET /status/systems", "bad token", "GET", "/status/systems", token="not-a-jwt"),
    Case("GET /status/systems", "no token", "GET", "/status/systems", token=""),
    Case("GET /status/{system_name}/nodes", "ok", "GET", "/status/{system}/nodes",
         volatile=("$.nodes[*].cpuLoad", "$.nodes[*].freeMemory", "$.nodes[*].allocMemory",
                   "$.nodes[*].allocCpus", "$.nodes[*].idleCpus", "$.nodes[*].state")),
    Case("GET /status/{system_name}/nodes", "unknown system", "GET", "/status/nosuch/nodes"),
    Case("GET /status/{system_name}/nodes", "bad token", "GET", "/status/{system}/nodes", token="not-a-jwt"),
    Case("GET /status/{system_name}/partitions", "ok", "GET", "/status/{system}/partitions"),
    Case("GET /status/{system_name}/partitions", "unknown system", "GET", "/status/nosuch/partitions"),
    Case("GET /status/{system_name}/reservations", "ok", "GET", "/status/{system}/reservations"),
    Case("GET /status/{system_name}/reservations", "unknown system", "GET", "/status/nosuch/reservations"),
    Case("GET /status/{system_name}/userinfo", "ok", "GET", "/status/{system}/userinfo"),
    Case("GET /status/{system_name}/userinfo", "unknown system", "GET", "/status/nosuch/userinfo"),
    # ---- compute
    Case("POST /compute/{system_name}/jobs", "ok", "POST", "/compute/{system}/jobs", {"json": _job_body()},
         volatile=("$.jobId",)),
    Case("POST /compute/{system_name}/jobs", "missing working directory", "POST", "/compute/{system}/jobs",
         {"json": _job_body(workingDirectory="{jobdir}/nosuch")}),
    Case("POST /compute/{system_name}/jobs", "no script", "POST", "/compute/{system}/jobs",
         {"json": {"job": {"name": "x", "workingDirectory": "{jobdir}"}}}),
    Case("POST /compute/{system_name}/jobs", "unknown system", "POST", "/compute/nosuch/jobs",
         {"json": _job_body()}),
    Case("GET /compute/{system_name}/jobs", "ok", "GET", "/compute/{system}/jobs", user=OTHER,
         pick=_only_job(lambda s: s.jobs["listed"]), volatile=JOB_VOLATILE),
    Case("GET /compute/{system_name}/jobs", "unknown system", "GET", "/compute/nosuch/jobs"),
    Case("GET /compute/{system_name}/jobs/{job_id}", "ok", "GET", "/compute/{system}/jobs/{done}",
         volatile=JOB_VOLATILE),
    Case("GET /compute/{system_name}/jobs/{job_id}", "unknown job", "GET", "/compute/{system}/jobs/999999"),
    Case("GET /compute/{system_name}/jobs/{job_id}", "bad job id", "GET", "/compute/{system}/jobs/abc"),
    Case("GET /compute/{system_name}/jobs/{job_id}/metadata", "ok", "GET",
         "/compute/{system}/jobs/{done}/metadata"),
    Case("GET /compute/{system_name}/jobs/{job_id}/metadata", "unknown job", "GET",
         "/compute/{system}/jobs/999999/metadata"),
    Case("DELETE /compute/{system_name}/jobs/{job_id}", "running job", "DELETE",
         "/compute/{system}/jobs/{cancel}", before=_sleeping_job("cancel")),
    Case("DELETE /compute/{system_name}/jobs/{job_id}", "unknown job", "DELETE", "/compute/{system}/jobs/999999"),
    Case("PUT /compute/{system_name}/jobs/{job_id}/attach", "unknown job", "PUT",
         "/compute/{system}/jobs/999999/attach", {"json": {"command": "hostname"}}),
    # ---- filesystem ops
    Case("GET /filesystem/{system_name}/ops/ls", "ok", "GET", f"{OPS}/ls", {"params": {"path": "{dir}"}}),
    Case("GET /filesystem/{system_name}/ops/ls", "hidden", "GET", f"{OPS}/ls",
         {"params": {"path": "{dir}", "showHidden": "true"}}),
    Case("GET /filesystem/{system_name}/ops/ls", "numeric uid", "GET", f"{OPS}/ls",
         {"params": {"path": "{dir}/sub", "numericUid": "true"}}),
    Case("GET /filesystem/{system_name}/ops/ls", "a file", "GET", f"{OPS}/ls", {"params": {"path": "{dir}/file.txt"}}),
    Case("GET /filesystem/{system_name}/ops/ls", "missing path", "GET", f"{OPS}/ls",
         {"params": {"path": "{dir}/nosuch"}}),
    Case("GET /filesystem/{system_name}/ops/ls", "permission denied", "GET", f"{OPS}/ls",
         {"params": {"path": "{dir}/noperm"}}),
    Case("GET /filesystem/{system_name}/ops/ls", "not a directory", "GET", f"{OPS}/ls",
         {"params": {"path": "{dir}/file.txt/x"}}),
    Case("GET /filesystem/{system_name}/ops/ls", "outside the file systems", "GET", f"{OPS}/ls",
         {"params": {"path": "/etc"}}),
    Case("GET /filesystem/{system_name}/ops/ls", "unknown system", "GET", "/filesystem/nosuch/ops/ls",
         {"params": {"path": "{dir}"}}),
    Case("GET /filesystem/{system_name}/ops/ls", "bad token", "GET", f"{OPS}/ls", {"params": {"path": "{dir}"}},
         token="not-a-jwt"),
    Case("GET /filesystem/{system_name}/ops/head", "lines", "GET", f"{OPS}/head",
         {"params": {"path": "{dir}/file.txt", "lines": 5}}),
    Case("GET /filesystem/{system_name}/ops/head", "bytes", "GET", f"{OPS}/head",
         {"params": {"path": "{dir}/file.txt", "bytes": 7}}),
    Case("GET /filesystem/{system_name}/ops/head", "skip trailing", "GET", f"{OPS}/head",
         {"params": {"path": "{dir}/file.txt", "lines": 5, "skipTrailing": "true"}}),
    Case("GET /filesystem/{system_name}/ops/head", "missing path", "GET", f"{OPS}/head",
         {"params": {"path": "{dir}/nosuch"}}),
    Case("GET /filesystem/{system_name}/ops/head", "a directory", "GET", f"{OPS}/head",
         {"params": {"path": "{dir}/sub"}}),
    Case("GET /filesystem/{system_name}/ops/head", "lines and bytes", "GET", f"{OPS}/head",
         {"params": {"path": "{dir}/file.txt", "lines": 5, "bytes": 7}}),
    Case("GET /filesystem/{system_name}/ops/tail", "lines", "GET", f"{OPS}/tail",
         {"params": {"path": "{dir}/file.txt", "lines": 3}}),
    Case("GET /filesystem/{system_name}/ops/tail", "skip heading", "GET", f"{OPS}/tail",
         {"params": {"path": "{dir}/file.txt", "lines": 3, "skipHeading": "true"}}),
    Case("GET /filesystem/{system_name}/ops/tail", "bytes", "GET", f"{OPS}/tail",
         {"params": {"path": "{dir}/file.txt", "bytes": 6}}),
    Case("GET /filesystem/{system_name}/ops/tail", "missing path", "GET", f"{OPS}/tail",
         {"params": {"path": "{dir}/nosuch"}}),
    Case("GET /filesystem/{system_name}/ops/view", "ok", "GET", f"{OPS}/view",
         {"params": {"path": "{dir}/file.txt"}}),
    Case("GET /filesystem/{system_name}/ops/view", "offset and size", "GET", f"{OPS}/view",
         {"params": {"path": "{dir}/file.txt", "offset": 4, "size": 6}}),
    Case("GET /filesystem/{system_name}/ops/view", "over-size", "GET", f"{OPS}/view",
         {"params": {"path": "{dir}/big.bin"}}),
    Case("GET /filesystem/{system_name}/ops/view", "missing path", "GET", f"{OPS}/view",
         {"params": {"path": "{dir}/nosuch"}}),
    Case("GET /filesystem/{system_name}/ops/checksum", "ok", "GET", f"{OPS}/checksum",
         {"params": {"path": "{dir}/file.txt"}}),
    Case("GET /filesystem/{system_name}/ops/checksum", "missing path", "GET", f"{OPS}/checksum",
         {"params": {"path": "{dir}/nosuch"}}),
    Case("GET /filesystem/{system_name}/ops/checksum", "a directory", "GET", f"{OPS}/checksum",
         {"params": {"path": "{dir}/sub"}}),
    Case("GET /filesystem/{system_name}/ops/file", "ok", "GET", f"{OPS}/file", {"params": {"path": "{dir}/file.txt"}}),
    Case("GET /filesystem/{system_name}/ops/file", "missing path", "GET", f"{OPS}/file",
         {"params": {"path": "{dir}/nosuch"}}),
    Case("GET /filesystem/{system_name}/ops/stat", "ok", "GET", f"{OPS}/stat",
         {"params": {"path": "{dir}/file.txt"}}, volatile=FILE_TIMES),
    Case("GET /filesystem/{system_name}/ops/stat", "dereference", "GET", f"{OPS}/stat",
         {"params": {"path": "{dir}/link", "dereference": "true"}}, volatile=FILE_TIMES),
    Case("GET /filesystem/{system_name}/ops/stat", "missing path", "GET", f"{OPS}/stat",
         {"params": {"path": "{dir}/nosuch"}}),
    Case("DELETE /filesystem/{system_name}/ops/rm", "ok", "DELETE", f"{OPS}/rm",
         {"params": {"path": "{dir}/todelete.txt"}}),
    Case("DELETE /filesystem/{system_name}/ops/rm", "missing path", "DELETE", f"{OPS}/rm",
         {"params": {"path": "{dir}/nosuch"}}),
    Case("POST /filesystem/{system_name}/ops/mkdir", "ok", "POST", f"{OPS}/mkdir",
         {"json": {"path": "{dir}/made"}}, volatile=("$.output.lastModified",)),
    Case("POST /filesystem/{system_name}/ops/mkdir", "parents", "POST", f"{OPS}/mkdir",
         {"json": {"path": "{dir}/deep/er", "parent": True}}, volatile=("$.output.lastModified",)),
    Case("POST /filesystem/{system_name}/ops/mkdir", "missing parent", "POST", f"{OPS}/mkdir",
         {"json": {"path": "{dir}/nosuch/x"}}),
    Case("POST /filesystem/{system_name}/ops/mkdir", "under a file", "POST", f"{OPS}/mkdir",
         {"json": {"path": "{dir}/file.txt/x", "parent": True}}),
    Case("POST /filesystem/{system_name}/ops/mkdir", "exists", "POST", f"{OPS}/mkdir",
         {"json": {"path": "{dir}/sub"}}),
    Case("POST /filesystem/{system_name}/ops/symlink", "ok", "POST", f"{OPS}/symlink",
         {"json": {"path": "{dir}/file.txt", "linkPath": "{dir}/newlink"}}, volatile=("$.output.lastModified",)),
    Case("POST /filesystem/{system_name}/ops/symlink", "link exists", "POST", f"{OPS}/symlink",
         {"json": {"path": "{dir}/file.txt", "linkPath": "{dir}/link"}}),
    Case("PUT /filesystem/{system_name}/ops/chmod", "ok", "PUT", f"{OPS}/chmod",
         {"json": {"path": "{dir}/chmod.txt", "mode": "600"}}, volatile=("$.output.lastModified",)),
    Case("PUT /filesystem/{system_name}/ops/chmod", "bad mode", "PUT", f"{OPS}/chmod",
         {"json": {"path": "{dir}/chmod.txt", "mode": "999"}}),
    Case("PUT /filesystem/{system_name}/ops/chmod", "missing path", "PUT", f"{OPS}/chmod",
         {"json": {"path": "{dir}/nosuch", "mode": "600"}}),
    Case("PUT /filesystem/{system_name}/ops/chown", "ok", "PUT", f"{OPS}/chown",
         {"json": {"path": "{dir}/file.txt", "owner": USER, "group": USER}}),
    Case("PUT /filesystem/{system_name}/ops/chown", "permission denied", "PUT", f"{OPS}/chown",
         {"json": {"path": "{dir}/file.txt", "owner": OTHER, "group": OTHER}}),
    Case("GET /filesystem/{system_name}/ops/download", "ok", "GET", f"{OPS}/download",
         {"params": {"path": "{dir}/file.txt"}}),
    Case("GET /filesystem/{system_name}/ops/download", "over-size", "GET", f"{OPS}/download",
         {"params": {"path": "{dir}/big.bin"}}),
    Case("GET /filesystem/{system_name}/ops/download", "missing path", "GET", f"{OPS}/download",
         {"params": {"path": "{dir}/nosuch"}}),
    Case("POST /filesystem/{system_name}/ops/upload", "ok", "POST", f"{OPS}/upload",
         {"params": {"path": "{dir}"}, "files": {"file": ("up.txt", b"uploaded\n")}}),
    Case("POST /filesystem/{system_name}/ops/upload", "missing directory", "POST", f"{OPS}/upload",
         {"params": {"path": "{dir}/nosuch"}, "files": {"file": ("up.txt", b"uploaded\n")}}),
    Case("POST /filesystem/{system_name}/ops/compress", "ok", "POST", f"{OPS}/compress",
         {"json": {"path": "{dir}/sub", "targetPath": "{dir}/sub.tar.gz"}}),
    Case("POST /filesystem/{system_name}/ops/compress", "missing path", "POST", f"{OPS}/compress",
         {"json": {"path": "{dir}/nosuch", "targetPath": "{dir}/x.tar.gz"}}),
    Case("POST /filesystem/{system_name}/ops/extract", "ok", "POST", f"{OPS}/extract",
         {"json": {"path": "{dir}/archive.tar.gz", "targetPath": "{dir}/empty"}}),
    Case("POST /filesystem/{system_name}/ops/extract", "missing path", "POST", f"{OPS}/extract",
         {"json": {"path": "{dir}/nosuch.tar.gz", "targetPath": "{dir}/empty"}}),
    # ---- filesystem transfers (each submits a job: its id and log names are generated)
    Case("POST /filesystem/{system_name}/transfer/cp", "ok", "POST", f"{XFER}/cp",
         {"json": {"sourcePath": "{dir}/file.txt", "targetPath": "{dir}/copied.txt"}}, volatile=TRANSFER_JOB),
    Case("POST /filesystem/{system_name}/transfer/cp", "unknown system", "POST", "/filesystem/nosuch/transfer/cp",
         {"json": {"sourcePath": "{dir}/file.txt", "targetPath": "{dir}/copied.txt"}}),
    Case("POST /filesystem/{system_name}/transfer/mv", "ok", "POST", f"{XFER}/mv",
         {"json": {"sourcePath": "{dir}/tomove.txt", "targetPath": "{dir}/moved.txt"}}, volatile=TRANSFER_JOB),
    Case("DELETE /filesystem/{system_name}/transfer/rm", "ok", "DELETE", f"{XFER}/rm",
         {"params": {"path": "{dir}/empty"}}, volatile=TRANSFER_JOB),
    Case("POST /filesystem/{system_name}/transfer/compress", "ok", "POST", f"{XFER}/compress",
         {"json": {"sourcePath": "{dir}/sub", "targetPath": "{dir}/sub2.tar.gz"}}, volatile=TRANSFER_JOB),
    Case("POST /filesystem/{system_name}/transfer/extract", "ok", "POST", f"{XFER}/extract",
         {"json": {"sourcePath": "{dir}/archive.tar.gz", "targetPath": "{dir}/sub"}}, volatile=TRANSFER_JOB),
    Case("POST /filesystem/{system_name}/transfer/upload", "ok", "POST", f"{XFER}/upload",
         {"json": {"path": "{dir}/staged.bin", "transferDirectives": {"transferMethod": "s3", "fileSize": 1024}}},
         volatile=(*TRANSFER_JOB, "$.transferDirectives.parts_upload_urls[*]",
                   "$.transferDirectives.complete_upload_url")),
    Case("POST /filesystem/{system_name}/transfer/upload", "missing size", "POST", f"{XFER}/upload",
         {"json": {"path": "{dir}/staged.bin", "transferDirectives": {"transferMethod": "s3"}}}),
    Case("POST /filesystem/{system_name}/transfer/download", "ok", "POST", f"{XFER}/download",
         {"json": {"path": "{dir}/file.txt", "transferDirectives": {"transferMethod": "s3"}}},
         volatile=(*TRANSFER_JOB, "$.transferDirectives.download_url")),
]

REPORT: dict[str, dict[str, Any]] = {}


def _resolve(case: Case, side: Side, done: str) -> str:
    path = case.path.replace("{done}", done)
    for key, job_id in side.jobs.items():
        path = path.replace("{" + key + "}", job_id)
    return path


def _answer(r: requests.Response) -> tuple[int, Any]:
    ctype = r.headers.get("content-type", "")
    if r.status_code == 204 or not r.content:
        return r.status_code, None
    if ctype.startswith("application/json"):
        try:
            return r.status_code, r.json()
        except ValueError:
            pass
    return r.status_code, {"<bytes>": r.content.decode("utf-8", "replace")[:2000], "<content-type>": ctype.split(";")[0]}


@pytest.fixture(scope="module")
def report(sides: dict[str, Side]) -> Iterator[dict[str, dict[str, Any]]]:
    yield REPORT
    out = load_layout().state_dir / "conformance"
    out.mkdir(parents=True, exist_ok=True)
    ops = sorted({c.op for c in CASES})
    lines = ["# Differential conformance: ours vs FirecREST v2 2.5.6", ""]
    identical_ops = explained_ops = 0
    for op in ops:
        cases = [c for c in CASES if c.op == op]
        results = [REPORT.get(c.id) for c in cases]
        ok = all(r and r["identical"] for r in results)
        explained = all(r and all(accepted(c.id, d) for d in r["differences"]) for c, r in zip(cases, results, strict=True))
        identical_ops += ok
        explained_ops += explained and not ok
        verdict = "identical" if ok else ("identical but for documented deviations" if explained else "DIFFERS")
        lines.append(f"## {op}: {verdict}")
        for c, r in zip(cases, results, strict=True):
            if r is None:
                lines.append(f"- {c.name}: not run")
            elif r["identical"]:
                lines.append(f"- {c.name}: identical (status {r['status']})")
            else:
                lines.append(f"- {c.name}: differs (status {r['status']})")
                for d in r["differences"]:
                    dev = accepted(c.id, d)
                    lines.append(f"    - {d}" + (f"  [deviation: {dev.reason}]" if dev else "  [NOT ACCEPTED]"))
        lines.append("")
    lines.insert(2, f"{identical_ops}/{len(ops)} operations identical in every case, {explained_ops} more identical "
                    f"but for documented deviations (tests/conformance/deviations.py); "
                    f"{sum(1 for r in REPORT.values() if r['identical'])}/{len(REPORT)} cases identical.\n")
    (out / "report.md").write_text("\n".join(lines))
    (out / "report.json").write_text(json.dumps(REPORT, indent=1, sort_keys=True))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_same_answer(
    case: Case, sides: dict[str, Side], done_job: str, listed_job: str, report: dict[str, Any]
) -> None:
    answers = {}
    for label, side in sides.items():
        side.jobs["done"] = done_job
        side.jobs["listed"] = listed_job
        if case.before:
            case.before(side)
        r = side.send(case.method, _resolve(case, side, done_job), token=case.token, user=case.user, **dict(case.kw))
        status, body = _answer(r)
        if "/transfer/upload" in case.op and status == 201:
            # nobody will send the data: its job would wait for it (and hold a CPU) for an hour
            job_id = body["transferJob"]["jobId"]
            sides["ours"].send("DELETE", f"/compute/{{system}}/jobs/{job_id}")
        if case.pick:
            body = case.pick(body, side)
        if label == "theirs":
            body = theirs_message(body)
        # a job asked about through both sides names the directory of the side that submitted it
        dirs = {str(s.jobdir): "{jobdir}" for s in sides.values()} | {str(s.dir): "{dir}" for s in sides.values()}
        answers[label] = (status, normalise(body, case.volatile, dirs))
    (s_ours, b_ours), (s_theirs, b_theirs) = answers["ours"], answers["theirs"]
    diffs = [] if s_ours == s_theirs else [f"status: {s_ours} in ours, {s_theirs} in theirs"]
    diffs += differences(b_ours, b_theirs)
    report[case.id] = {"identical": not diffs, "status": s_ours, "differences": diffs,
                       "ours": answers["ours"], "theirs": answers["theirs"]}
    unexplained = [d for d in diffs if accepted(case.id, d) is None]
    if unexplained:
        pytest.fail(f"{case.id}: differs from FirecREST v2:\n  " + "\n  ".join(unexplained))
