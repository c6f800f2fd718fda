"""Reading what Slurm's clients print: values (numbers, times, durations, Slurm's words for "none"),
columns separated by the ASCII unit separator, and `scontrol -o show` Key=Value lines."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import datetime

# the column separator of the squeue/sacct formats the adapter asks for: the free-text,
# user-controlled columns (working directory, job name) come last, so a stray separator in them
# cannot shift the columns decided on
SEP = "\x1f"

_NONE_WORDS = frozenset({"", "(null)", "N/A", "None", "Unknown"})
_INTEGER = re.compile(r"-?\d+")
_DURATION = re.compile(r"(?:(\d+)-)?(?:(\d+):)?(?:(\d+):)?(\d+)(?:\.\d+)?")


def text(v: str | None) -> str:
    """A text value, "" for Slurm's words for nothing ((null), N/A, None, Unknown)."""
    v = (v or "").strip()
    return "" if v in _NONE_WORDS else v


def integer(v: str | None) -> int | None:
    """A whole number; None for anything else (N/A, UNLIMITED, (null), ...)."""
    v = (v or "").strip()
    if v.isascii() and v.isdigit():  # the common case, without the regex
        return int(v)
    return int(v) if _INTEGER.fullmatch(v) else None


def number(v: str | None) -> float | None:
    try:
        return float(v) if v not in (None, "", "N/A") else None
    except ValueError:
        return None


def epoch(v: str | None) -> int | None:
    """A time printed as epoch seconds (SLURM_TIME_FORMAT=%s); None for 0, Unknown or None."""
    n = integer(v)
    return n if n and n > 0 else None


def local_time(v: str | None) -> int:
    """A time printed in Slurm's default format (local, 2026-11-25T12:00:00) as epoch seconds;
    0 when unknown."""
    if not text(v):
        return 0
    try:
        return int(datetime.fromisoformat(str(v)).timestamp())
    except ValueError:
        return 0


@functools.lru_cache(maxsize=4096)  # a listing repeats the same few values ("00:00:00") thousands of times
def duration(v: str | None) -> int | None:
    """Slurm durations ("[D-]HH:MM:SS", "MM:SS", "SS", with optional fraction) in seconds."""
    if not v:
        return None
    v = v.strip()
    m = _DURATION.fullmatch(v)
    if not m:
        return None
    days, a, b, c = m.groups()
    parts = [int(x) for x in (a, b) if x is not None]
    secs = int(c)
    if len(parts) == 2:
        secs += parts[0] * 3600 + parts[1] * 60
    elif len(parts) == 1:
        # "MM:SS", or "D-HH:MM" is not a Slurm output format
        secs += parts[0] * (3600 if days else 60)
    return secs + int(days or 0) * 86400


def limit_seconds(v: str | None) -> int | None:
    """sacct TimelimitRaw (minutes) or squeue %l (a duration) in seconds; UNLIMITED etc. -> None."""
    n = integer(v)
    if n is not None:
        return n * 60
    return duration(v)


def columns(line: str, n: int) -> list[str] | None:
    """n columns, the last of which may contain the separator; None if there are fewer."""
    cols = line.split(SEP, n - 1)
    return cols if len(cols) == n else None


def id_list(job_ids: Iterable[str]) -> str:
    return ",".join(job_ids)


_KV = re.compile(r"(?:^|\s)([A-Za-z][\w/:.\[\]]*)=")


def key_values(line: str) -> dict[str, str]:
    """One line of `scontrol -o show ...` (Key=Value pairs; values may contain spaces)."""
    out: dict[str, str] = {}
    matches = list(_KV.finditer(line))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
        out[m.group(1)] = line[m.end() : end].strip()
    return out
