"""Comparing two HTTP answers the way a client sees them (no fixtures, no I/O).

`differences(ours, theirs)` walks both JSON documents: every key present on one side only, null
against a value, a type that differs (int vs str, list vs object...) and a value that differs is
one line, addressed by its JSON path (`$.jobs[0].time.limit`). Before the walk, `normalise` may
replace the values at some paths (ids, timestamps, generated names: what legitimately differs
between two runs) by a marker of their JSON type, so their presence and type are still compared.
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

MISSING = object()


def json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def normalise(doc: Any, volatile: tuple[str, ...] = (), replace: dict[str, str] | None = None, path: str = "$") -> Any:
    """A copy of `doc` where every value whose path matches a `volatile` glob (e.g. `$.jobs[*].jobId`,
    `*.lastModified`) becomes `<number>`/`<string>`... (null stays null), and every string has the
    `replace` substrings substituted (a side's own working directory -> `{dir}`)."""
    generic = re.sub(r"\[\d+\]", "#", path)  # "[*]" in a pattern stands for any index
    if any(fnmatch.fnmatchcase(generic, pat.replace("[*]", "#")) for pat in volatile):
        return doc if doc is None else f"<{json_type(doc)}>"
    if isinstance(doc, dict):
        return {k: normalise(v, volatile, replace, f"{path}.{k}") for k, v in doc.items()}
    if isinstance(doc, list):
        return [normalise(v, volatile, replace, f"{path}[{i}]") for i, v in enumerate(doc)]
    if isinstance(doc, str) and replace:
        for old, new in replace.items():
            doc = doc.replace(old, new)
    return doc


def _short(v: Any) -> str:
    text = json.dumps(v, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def differences(ours: Any, theirs: Any, path: str = "$") -> list[str]:
    """Every difference between two JSON documents, one line each, ours first."""
    if ours is MISSING or theirs is MISSING:
        side = "ours" if ours is MISSING else "theirs"
        other = theirs if ours is MISSING else ours
        return [f"{path}: absent in {side} (other side: {_short(other)})"]
    to, tt = json_type(ours), json_type(theirs)
    if to != tt:
        return [f"{path}: {to} {_short(ours)} in ours, {tt} {_short(theirs)} in theirs"]
    if isinstance(ours, dict):
        out = []
        for k in sorted(set(ours) | set(theirs)):
            out += differences(ours.get(k, MISSING), theirs.get(k, MISSING), f"{path}.{k}")
        return out
    if isinstance(ours, list):
        out = []
        if len(ours) != len(theirs):
            out.append(f"{path}: {len(ours)} items in ours, {len(theirs)} in theirs")
        for i, (a, b) in enumerate(zip(ours, theirs, strict=False)):
            out += differences(a, b, f"{path}[{i}]")
        return out
    if ours != theirs:
        return [f"{path}: {_short(ours)} in ours, {_short(theirs)} in theirs"]
    return []
