"""The centre's systems by name: one adapter of each port per system (its scheduler, its files,
its transfers), found by the name a request carries, and the health of a system's services."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from core.domain.errors import SystemNotFound

T = TypeVar("T")


class Systems(Generic[T]):
    """One T per system, looked up by name (case-insensitive, as FirecREST v2); an unknown name is
    SystemNotFound (404) with FirecREST v2's words."""

    def __init__(self, items: Mapping[str, T]):
        self._items = {name.lower(): item for name, item in items.items()}

    def __call__(self, name: str) -> T:
        item = self._items.get(name.lower())
        if item is None:
            raise SystemNotFound("System not found", metadata={"system": name})
        return item

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True)
class Probe:
    """One health check of one service of a system ("ssh", "scheduler")."""

    service_type: str
    healthy: bool
    latency: float | None  # seconds
    message: str
    checked_at: float  # epoch seconds
