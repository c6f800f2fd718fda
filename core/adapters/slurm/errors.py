"""Slurm's failures as domain errors: the caller's fault is a 4XX, an unreachable controller or
database a 503 (BackendUnavailable) with Slurm's words, anything else a SchedulerError. Slurm
often exits 0 after an error (scancel, scontrol write batch_script): stderr decides then."""

from __future__ import annotations

import re
from typing import TypeVar

from core.adapters.commands import RemoteCommand
from core.adapters.ssh import ExecResult
from core.domain.errors import (
    BackendUnavailable,
    GatewayError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    SchedulerError,
)

T = TypeVar("T")

# what Slurm's clients print when the controller (or slurmdbd) cannot be reached
UNREACHABLE = re.compile(
    r"Unable to contact slurm controller|Socket timed out|Connection refused|Zero Bytes were transmitted"
    r"|slurm_receive_msg|Unable to establish|backup controller in standby|slurmdbd|Communication connection failure"
    r"|Slurm temporarily unable",
    re.I,
)
INVALID_JOB = re.compile(r"Invalid job id specified|Invalid job id|does not exist", re.I)
_DENIED = re.compile(r"Access/permission denied|Permission denied|Invalid user id", re.I)
_CALLER = re.compile(
    r"Batch job submission failed|Invalid (account|partition|qos|feature|reservation|node|wckey|time)"
    r"|Requested|Unable to open file|does not look like a batch script|invalid|not allowed|unrecognized option"
    r"|Job violates|Node count specification|More processors requested|Memory required|No such file",
    re.I,
)
_PREFIX = re.compile(r"^(sbatch|squeue|sacct|scancel|scontrol|srun|sinfo|sacctmgr): (error: )?", re.I)


def error_text(result: ExecResult) -> str:
    """Slurm's error lines, without the "sbatch: error: " prefixes, in one line."""
    lines = [ln.strip() for ln in result.err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "failed" in ln.lower()]
    text = "; ".join(_PREFIX.sub("", ln) for ln in errors or lines)
    return text or result.out.strip() or f"exit status {result.exit_status}"


class ControllerUnreachable(BackendUnavailable):
    """Slurm's controller (or its database) does not answer: a 503 (and, for SlurmScheduler, a
    controller to ping before asking it anything else)."""


def slurm_error(text: str) -> GatewayError:
    """Slurm's error text as a domain error: the caller's fault -> 4XX, the scheduler's -> 503."""
    if UNREACHABLE.search(text):
        return ControllerUnreachable(f"the scheduler is not reachable: {text}")
    if INVALID_JOB.search(text):
        return NotFound(text)
    if _DENIED.search(text):
        return PermissionDenied(text)
    if _CALLER.search(text):
        return InvalidArgument(text)
    return SchedulerError(text)


def reported_error(result: ExecResult) -> bool:
    """A failure, also when the client exited 0 but said "error" or "failed" on stderr."""
    return result.exit_status != 0 or bool(re.search(r"\berror\b|failed", result.err, re.I))


class SlurmCommand(RemoteCommand[T]):
    """A Slurm client call. `controller`: it needs the controller (refused at once while the
    controller is known to be down); `read_only`: it only asks (abandoned with a 503 as soon as
    the controller stops answering pings, instead of waiting out the client's own retries). A
    failure is read from Slurm's error text."""

    controller: bool = False
    read_only: bool = False

    def error(self, result: ExecResult) -> GatewayError:
        return slurm_error(error_text(result))


class ControllerQuery(SlurmCommand[T]):
    """A read-only question to the controller (scontrol show, squeue)."""

    controller = True
    read_only = True
