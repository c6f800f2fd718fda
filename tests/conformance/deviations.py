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


DEVIATIONS: list[Deviation] = [
]


def accepted(case_id: str, difference: str) -> Deviation | None:
    for d in DEVIATIONS:
        if fnmatch.fnmatchcase(case_id, d.case) and fnmatch.fnmatchcase(difference, d.difference):
            return d
    return None
