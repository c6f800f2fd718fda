"""Slurm, driven over SSH as the calling user, one command object per scheduler call."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from core.adapters.commands import RemoteCommand, classify_error, parse_key_values
from core.adapters.ssh import ExecResult
from core.domain.errors import BackendUnavailable, GatewayError

T = TypeVar("T")

# what Slurm's clients print when the controller (or slurmdbd) cannot be reached: a 503, not the
# caller's fault and not an internal error
UNREACHABLE = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Connection refused|Zero Bytes were transmitted"
    r"|slurm_receive_msg|Unable to establish|backup controller in standby|slurmdbd|Communication connection failure"
    r"|Slurm temporarily unable",
    re.I,
)


class ControllerQuery(RemoteCommand[T]):
    """A read-only question to the controller (scontrol show, squeue): its failure to reach the
    controller is a 503 with Slurm's words."""

    controller = True
    read_only = True

    def error(self, result: ExecResult) -> GatewayError:
        text = result.err or result.out.strip() or f"exit status {result.exit_status}"
        if UNREACHABLE.search(text):
            return BackendUnavailable(f"the scheduler is not reachable: {text.strip()}")
        return classify_error(text)


def _int(v: str | None) -> int | None:
    if v is None or v in ("", "N/A", "(null)"):
        return None
    try:
        return int(v)
    except ValueError:
        return None


def _float(v: str | None) -> float | None:
    try:
        return float(v) if v not in (None, "", "N/A") else None
    except ValueError:
        return None


def _epoch(v: str | None) -> int:
    """Slurm prints local times like 2026-11-25T12:00:00; Unknown/None give 0."""
    if not v or v in ("Unknown", "None", "N/A"):
        return 0
    try:
        return int(datetime.fromisoformat(v).timestamp())
    except ValueError:
        return 0


def _null(v: str | None) -> str:
    return "" if v in (None, "(null)", "N/A") else v


@dataclass
class Node:
    name: str
    hostname: str = ""
    address: str = ""
    cpus: int = 0
    cores: int | None = None
    sockets: int | None = None
    threads: int | None = None
    alloc_cpus: int | None = None
    idle_cpus: int | None = None
    cpu_load: float | None = None
    free_memory: int | None = None
    alloc_memory: int | None = None
    features: list[str] = field(default_factory=list)
    partitions: list[str] = field(default_factory=list)
    state: list[str] = field(default_factory=list)
    weight: int | None = None


@dataclass
class Partition:
    name: str
    cpus: int | None = None
    total_nodes: int | None = None
    state: list[str] = field(default_factory=list)


@dataclass
class Reservation:
    name: str
    node_list: str = ""
    start_time: int = 0
    end_time: int = 0
    features: str = ""
    state: str = ""


def _lines(result: ExecResult) -> list[str]:
    return [ln for ln in result.out.splitlines() if ln.strip() and "No " not in ln[:3]]


class ShowNodes(ControllerQuery[list[Node]]):
    def argv(self) -> list[str]:
        return ["scontrol", "-o", "show", "nodes"]

    def parse(self, result: ExecResult) -> list[Node]:
        nodes = []
        for line in _lines(result):
            kv = parse_key_values(line)
            if "NodeName" not in kv:
                continue
            cpus = _int(kv.get("CPUTot")) or 0
            alloc = _int(kv.get("CPUAlloc"))
            feats = _null(kv.get("AvailableFeatures"))
            nodes.append(
                Node(
                    name=kv["NodeName"],
                    hostname=_null(kv.get("NodeHostName")),
                    address=_null(kv.get("NodeAddr")),
                    cpus=cpus,
                    cores=_int(kv.get("CoresPerSocket")),
                    sockets=_int(kv.get("Sockets")),
                    threads=_int(kv.get("ThreadsPerCore")),
                    alloc_cpus=alloc,
                    idle_cpus=cpus - alloc if alloc is not None else None,
                    cpu_load=_float(kv.get("CPULoad")),
                    free_memory=_int(kv.get("FreeMem")),
                    alloc_memory=_int(kv.get("AllocMem")),
                    features=[f for f in feats.split(",") if f],
                    partitions=[p for p in _null(kv.get("Partitions")).split(",") if p],
                    state=[s for s in kv.get("State", "").split("+") if s],
                    weight=_int(kv.get("Weight")),
                )
            )
        return nodes


class ShowPartitions(ControllerQuery[list[Partition]]):
    def __init__(self, show_hidden: bool = False):
        self.show_hidden = show_hidden

    def argv(self) -> list[str]:
        return ["scontrol", "-o", *(["--all"] if self.show_hidden else []), "show", "partitions"]

    def parse(self, result: ExecResult) -> list[Partition]:
        parts = []
        for line in _lines(result):
            kv = parse_key_values(line)
            if "PartitionName" not in kv:
                continue
            parts.append(
                Partition(
                    name=kv["PartitionName"],
                    cpus=_int(kv.get("TotalCPUs")),
                    total_nodes=_int(kv.get("TotalNodes")),
                    state=[kv.get("State", "UNKNOWN")],
                )
            )
        return parts


class ShowReservations(ControllerQuery[list[Reservation]]):
    def argv(self) -> list[str]:
        return ["scontrol", "-o", "show", "reservations"]

    def check(self, result: ExecResult) -> None:
        # "No reservations in the system" is not an error
        if result.exit_status != 0 and "No reservations" not in result.out + result.err:
            raise self.error(result)

    def parse(self, result: ExecResult) -> list[Reservation]:
        res = []
        for line in _lines(result):
            kv = parse_key_values(line)
            if "ReservationName" not in kv:
                continue
            res.append(
                Reservation(
                    name=kv["ReservationName"],
                    node_list=_null(kv.get("Nodes")),
                    start_time=_epoch(kv.get("StartTime")),
                    end_time=_epoch(kv.get("EndTime")),
                    features=_null(kv.get("Features")),
                    state=_null(kv.get("State")),
                )
            )
        return res


class ControllerUp(RemoteCommand[bool]):
    """`scontrol ping`: does the controller answer? (It says DOWN at once when it is not running,
    where other clients keep retrying for about MessageTimeout.)"""

    def argv(self) -> list[str]:
        return ["scontrol", "ping"]

    def check(self, result: ExecResult) -> None:
        return None  # exit status 1 with "is DOWN" is the answer, not a failure

    def parse(self, result: ExecResult) -> bool:
        return result.exit_status == 0 and " is UP" in result.out


class Ping(RemoteCommand[float]):
    """`scontrol ping`: the controller answers (returns the round trip in seconds)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def argv(self) -> list[str]:
        return ["scontrol", "ping"]

    def parse(self, result: ExecResult) -> float:
        return time.monotonic() - self.started
