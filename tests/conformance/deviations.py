"""Where our gateway deliberately answers differently from FirecREST v2 2.5.6, and why.

Each entry accepts the differences matching `difference` (a glob over the report's lines, e.g.
`$.output[*].linkTarget: *`) in the cases matching `case` (a glob over "METHOD /path [case]").
Anything else that differs fails the suite. The README's deviations list says the same in prose.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass


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
