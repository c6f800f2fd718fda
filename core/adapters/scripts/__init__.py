"""The shell scripts the adapters run on the login node or inside a transfer job: `.sh` files
beside this module, shipped in the wheel as package data and checked by shellcheck (`./run lint`).

Each script is fixed text. A caller's values reach it only as data: positional parameters of
`sh -c SCRIPT sh ARG...` (argv()), stdin, or, for a transfer job's script, single-quoted
(shlex.quote) variable assignments in the header that transferjobs.render_script puts before
the fixed body. No value is ever pasted into a script's text.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from functools import cache
from importlib import resources

_NAMES: dict[str, str] = {}  # a loaded script's code -> its name


@cache
def load(name: str) -> str:
    """The code of one script of this package (e.g. "ls.sh"): the file without its leading block
    of comments (shebang, what the script does, shellcheck directives), which would otherwise
    travel with every SSH command and fill the audit log."""
    text = resources.files(__name__).joinpath(name).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    start = 0
    while start < len(lines) and (lines[start].startswith("#") or not lines[start].strip()):
        start += 1
    code = "".join(lines[start:])
    _NAMES[code] = name
    return code


def shown(argv: Sequence[str]) -> str | None:
    """argv(NAME, ARG...) as the audit line shows it: `NAME ARG...` (quoted), the script named
    rather than its code (fixed text, in this package: ~1.5 KB a command of escaped JSON otherwise).
    None for an argv that is not one of these scripts."""
    if len(argv) >= 4 and argv[0] == "sh" and argv[1] == "-c":
        name = _NAMES.get(argv[2])
        if name is not None:
            return " ".join([name, *(shlex.quote(a) for a in argv[4:])])
    return None


def argv(name: str, *args: str) -> list[str]:
    """`sh -c SCRIPT sh ARG...`: the script named `name` with the caller's values as $1, $2, ..."""
    return ["sh", "-c", load(name), "sh", *args]
