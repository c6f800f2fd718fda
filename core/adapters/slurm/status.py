"""Slurm's view of the machine as command objects: nodes, partitions, reservations (`scontrol -o
show`, read-only questions to the controller) and the controller's ping."""

from __future__ import annotations

from core.adapters.slurm import parsers as p
from core.adapters.slurm.errors import ControllerQuery, SlurmCommand
from core.adapters.ssh import ExecResult
from core.domain.scheduler import Node, Partition, Reservation


def _records(result: ExecResult, key: str) -> list[dict[str, str]]:
    """The Key=Value records of `scontrol -o show ...` that have `key` ("No ... in the system"
    and blank lines are not records)."""
    out = []
    for line in result.out.splitlines():
        if not line.strip() or line.startswith("No "):
            continue
        kv = p.key_values(line)
        if key in kv:
            out.append(kv)
    return out


def _list(v: str | None, sep: str = ",") -> tuple[str, ...]:
    return tuple(x for x in p.text(v).split(sep) if x)


class ShowNodes(ControllerQuery[list[Node]]):
    def argv(self) -> list[str]:
        return ["scontrol", "-o", "show", "nodes"]

    def parse(self, result: ExecResult) -> list[Node]:
        nodes = []
        for kv in _records(result, "NodeName"):
            cpus = p.integer(kv.get("CPUTot")) or 0
            alloc = p.integer(kv.get("CPUAlloc"))
            nodes.append(
                Node(
                    name=kv["NodeName"],
                    hostname=p.text(kv.get("NodeHostName")),
                    address=p.text(kv.get("NodeAddr")),
                    cpus=cpus,
                    cores=p.integer(kv.get("CoresPerSocket")),
                    sockets=p.integer(kv.get("Sockets")),
                    threads=p.integer(kv.get("ThreadsPerCore")),
                    alloc_cpus=alloc,
                    idle_cpus=cpus - alloc if alloc is not None else None,
                    cpu_load=p.number(kv.get("CPULoad")),
                    free_memory=p.integer(kv.get("FreeMem")),
                    alloc_memory=p.integer(kv.get("AllocMem")),
                    features=_list(kv.get("AvailableFeatures")),
                    partitions=_list(kv.get("Partitions")),
                    state=_list(kv.get("State"), "+"),
                    weight=p.integer(kv.get("Weight")),
                )
            )
        return nodes


class ShowPartitions(ControllerQuery[list[Partition]]):
    def __init__(self, show_hidden: bool = False):
        self.show_hidden = show_hidden

    def argv(self) -> list[str]:
        return ["scontrol", "-o", *(["--all"] if self.show_hidden else []), "show", "partitions"]

    def parse(self, result: ExecResult) -> list[Partition]:
        return [
            Partition(
                name=kv["PartitionName"],
                cpus=p.integer(kv.get("TotalCPUs")),
                total_nodes=p.integer(kv.get("TotalNodes")),
                state=(kv.get("State", "UNKNOWN"),),
            )
            for kv in _records(result, "PartitionName")
        ]


class ShowReservations(ControllerQuery[list[Reservation]]):
    def argv(self) -> list[str]:
        return ["scontrol", "-o", "show", "reservations"]

    def check(self, result: ExecResult) -> None:
        # "No reservations in the system" is not an error
        if result.exit_status != 0 and "No reservations" not in result.out + result.err:
            raise self.error(result)

    def parse(self, result: ExecResult) -> list[Reservation]:
        return [
            Reservation(
                name=kv["ReservationName"],
                node_list=p.text(kv.get("Nodes")),
                start_time=p.local_time(kv.get("StartTime")),
                end_time=p.local_time(kv.get("EndTime")),
                features=p.text(kv.get("Features")),
                state=p.text(kv.get("State")),
            )
            for kv in _records(result, "ReservationName")
        ]


class Ping(SlurmCommand[tuple[bool, str]]):
    """`scontrol ping`: does the controller answer, and Slurm's words. It says DOWN at once when
    the controller is not running, where other clients keep retrying for about MessageTimeout;
    an exit status 1 with "is DOWN" is the answer, not a failure."""

    def argv(self) -> list[str]:
        return ["scontrol", "ping"]

    def check(self, result: ExecResult) -> None:
        return None

    def parse(self, result: ExecResult) -> tuple[bool, str]:
        words = " ".join((result.out.strip() or result.err.strip()).split())
        return result.exit_status == 0 and " is UP" in result.out, words
