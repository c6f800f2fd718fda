"""What the three configurations (the core's, the edge's, the development issuer's) have in common.

Each is a tree of pydantic models derived from `Settings`: every setting is declared once, with its
type, its default and a description (CONFIGURATION.md is generated from them by `python -m
edge.configref`). Unknown keys are refused; a key given as null (in YAML: the key without a value)
takes its default unless null is one of its values. A configuration that does not validate raises
`ConfigError`, whose text has one line per problem, each starting with the key's path
(`systems[0].ssh.port: Input should be a valid integer`).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


class ConfigError(ValueError):
    """A configuration that cannot be used; the text names each key at fault."""


class Settings(BaseModel):
    """A section of a configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        out = dict(data)
        for name, value in data.items():
            field = cls.model_fields.get(name)
            if value is None and field is not None and not accepts_none(field.annotation):
                del out[name]
        return out


M = TypeVar("M", bound=Settings)


def accepts_none(annotation: Any) -> bool:
    if annotation is None or annotation is type(None):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(accepts_none(a) for a in typing.get_args(annotation))
    return False


def key_path(loc: Sequence[int | str]) -> str:
    """('systems', 0, 'ssh', 'port') -> 'systems[0].ssh.port'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def describe(err: ValidationError) -> str:
    """One line per error: the key's path, then what is wrong with it."""
    lines = []
    for e in err.errors(include_url=False):
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown setting (CONFIGURATION.md lists every setting)"
        elif e["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
        elif e["type"] == "model_type":
            msg = "must be a mapping of settings"
        lines.append(f"{key_path(e['loc'])}: {msg}")
    return "\n".join(lines)


def validate(model: type[M], data: Any, where: str, context: dict[str, Any] | None = None) -> M:
    """`model` from `data` (parsed YAML or JSON), or ConfigError naming `where` and every bad key."""
    try:
        return model.model_validate({} if data is None else data, context=context)
    except ValidationError as e:
        raise ConfigError(f"{where}: invalid configuration\n{_indent(describe(e))}") from None


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())
