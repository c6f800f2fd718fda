"""Where our gateway deliberately answers differently from FirecREST v2 2.5.6, and why.

Each entry accepts the differences matching `difference` (a glob over the report's lines, e.g.
`$.output[*].linkTarget: *`) in the cases matching `case` (a glob over "METHOD /path [case]").
Anything else that differs fails the suite. The README's deviations list says the same in prose.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

# FirecREST v2 wraps a failed command's stderr as "Remote process failed with exit status:N and error
# message:<stderr>". We answer the stderr alone (the part a person and a client read: "No such file or
# directory", "Permission denied"...). `theirs_message` removes the wrapper before the comparison, so
# the rest of the message must still be identical.
REMOTE_PREFIX = re.compile(r"^Remote process failed with exit status:\d+ and error message:")


def theirs_message(body: Any) -> Any:
    """FirecREST v2's error body with the command-failure wrapper removed from its message."""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return {**body, "message": REMOTE_PREFIX.sub("", body["message"])}
    return body


@dataclass(frozen=True)
class Deviation:
    case: str
    difference: str
    reason: str


JOB = "{system_name}/jobs/{job_id}"
WHOLE = "*"  # every difference of the case: FirecREST v2's answer is a failure of its own there

DEVIATIONS: list[Deviation] = [
    # ---- FirecREST v2 fails with a 500 (or hangs) where the caller made the mistake
    Deviation(f"DELETE /compute/{JOB} [unknown job]", WHOLE,
              "FirecREST v2 answers 500 with scancel's text; ours 404 'Job not found.' like a GET"),
    Deviation(f"PUT /compute/{JOB}/attach [unknown job]", WHOLE,
              "FirecREST v2 answers 500 with srun's text; ours 404 'Job not found.'"),
    Deviation(f"GET /compute/{JOB} [bad job id]", WHOLE,
              "FirecREST v2 passes 'abc' to sacct and answers 500; ours 400 before running anything"),
    Deviation("PUT /filesystem/{system_name}/ops/chmod [bad mode]", WHOLE,
              "FirecREST v2 runs chmod and answers 500 with its usage text; ours 400 saying what a mode is"),
    *(Deviation(case, "status: 400 in ours, 500 in theirs",
                "a path of the wrong kind is the caller's mistake: 400 with the same message, not FirecREST "
                "v2's 500")
      for case in ("GET /filesystem/{system_name}/ops/checksum [a directory]",
                   "GET /filesystem/{system_name}/ops/head [a directory]",
                   "GET /filesystem/{system_name}/ops/ls [not a directory]",
                   "POST /filesystem/{system_name}/ops/mkdir [under a file]")),
    Deviation("GET /filesystem/{system_name}/ops/download [over-size]", WHOLE,
              "FirecREST v2 answers 500 'Channel not open for sending'; ours 413 saying the limit and "
              "that the transfer endpoints take larger files"),
    Deviation("GET /filesystem/{system_name}/ops/view [over-size]", "$.message: *",
              "same 413; ours says the size, the limit and what to use instead of "
              "'Command output exceeded buffer limit.'"),
    Deviation("POST /compute/{system_name}/jobs [no script]", WHOLE,
              "FirecREST v2 runs sbatch with no script, which waits on its input until a 408; ours 400 at once"),
    Deviation("POST /compute/{system_name}/jobs [missing working directory]", WHOLE,
              "FirecREST v2 accepts the job, which then fails in Slurm; ours 400 naming the directory "
              "before anything is submitted"),
    Deviation("GET /filesystem/{system_name}/ops/file [missing path]", WHOLE,
              "FirecREST v2 answers 200 with file(1)'s error text as the type; ours 404"),
    # ---- same error, another tool's wording
    Deviation("GET /filesystem/{system_name}/ops/ls [*]", '$.message: "find: *" in ours, "ls: *" in theirs',
              "ours lists with find, FirecREST v2 with ls: same status, same error after the tool's name"),
    *(Deviation(f"GET /filesystem/{{system_name}}/ops/{op} [missing path]", '$.message: "stat: *" in ours, "*" in theirs',
                "ours checks the size with stat before reading; same status and error text")
      for op in ("download", "view")),
    Deviation("POST /filesystem/{system_name}/ops/upload [missing directory]", "$.message: *",
              "ours names the missing directory; FirecREST v2's text carries a shell line number"),
    # ---- status
    Deviation("GET /status/systems [ok]", "$.systems[0].dataOperation.data_transfer: *",
              "FirecREST v2 echoes its S3 settings (secrets masked); the gateway's staging store is one "
              "deployment setting, not per system, and not the caller's business: null"),
    Deviation("GET /status/{system_name}/nodes [ok]", "$.nodes[0].cores: *",
              "FirecREST v2 reports the socket count as cores and threads (sinfo %z parsed three times "
              "from its first part); ours Slurm's cores per socket and threads per core"),
    Deviation("GET /status/{system_name}/nodes [ok]", "$.nodes[0].threads: *", "see cores"),
    Deviation("GET /status/{system_name}/nodes [ok]", "$.nodes[0].features: *",
              "FirecREST v2 passes Slurm's '(null)' text; ours a list of features, [] for none"),
    # ---- not comparable here
    *(Deviation(f"POST /filesystem/{{system_name}}/transfer/{op} *", WHOLE,
                "FirecREST v2 cannot stage through the local S3 server (s3rver has no bucket lifecycle API "
                "and answers BucketAlreadyExists for the caller's own bucket): its 500 is not a reference; "
                "our answers are checked against the spec and pyfirecrest in tests/integration")
      for op in ("upload", "download")),
]


def _glob(pattern: str) -> str:
    """"[" in case ids and JSON paths is literal: only "*" and "?" are wildcards here."""
    return pattern.replace("[", "[[]")


def accepted(case_id: str, difference: str) -> Deviation | None:
    for d in DEVIATIONS:
        if fnmatch.fnmatchcase(case_id, _glob(d.case)) and fnmatch.fnmatchcase(difference, _glob(d.difference)):
            return d
    return None
