"""The Scheduler port: everything the gateway asks of one system's batch scheduler, as a given
user (jobs, the state of the machine, the user's accounts, the controller's health, and the jobs
that move data for transfers), with the plain types it answers in. core.adapters.slurm is its
Slurm adapter; a new scheduler is one more adapter (see README, "Extending").

Every call runs as `user` (the scheduler's own permissions decide what they see); a caller's
mistake is an InvalidArgument/NotFound/PermissionDenied, an unreachable scheduler a
BackendUnavailable (core.domain.errors)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from core.domain.jobs import Job, JobMetadata, JobSpec

# ---------------------------------------------------------------- the machine's state


@dataclass(frozen=True)
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
    features: tuple[str, ...] = ()
    partitions: tuple[str, ...] = ()
    state: tuple[str, ...] = ()
    weight: int | None = None


@dataclass(frozen=True)
class Partition:
    name: str
    cpus: int | None = None
    total_nodes: int | None = None
    state: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reservation:
    name: str
    node_list: str = ""
    start_time: int = 0  # epoch seconds; 0 when unknown
    end_time: int = 0
    features: str = ""
    state: str = ""


@dataclass(frozen=True)
class UserInfo:
    """The caller as the system sees them: POSIX identity and the scheduler accounts they may
    charge (the default one marked)."""

    uid: str
    user: str
    gid: str
    group: str
    groups: tuple[tuple[str, str], ...] = ()  # (gid, name)
    accounts: tuple[tuple[str, bool], ...] = ()  # (account, is_default)


# ---------------------------------------------------------------- data-mover jobs

_PRIVATE_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class DataMoverJob:
    """A job the gateway runs for a staged transfer, in the user's home `home`. `script` is a
    complete bash script (it starts with its interpreter line and carries no scheduler directives:
    the adapter adds the system's own, FirecREST's `datatransfer_jobs_directives`). The adapter
    writes it into a fresh private directory <home>/.firecrest/transfers/<private_dir>/job.sh
    (mode 600; the script removes it once it runs), runs it with its output in output_log and
    error_log, and records `tag` with the job so that find_tagged finds it again."""

    private_dir: str
    home: str
    script: str
    name: str
    output_log: str
    error_log: str
    tag: str
    account: str = ""

    def __post_init__(self) -> None:
        if not _PRIVATE_ID.match(self.private_dir):
            raise ValueError("a data-mover job's private directory is a task id")
        if not self.home.startswith("/"):
            raise ValueError("a data-mover job runs in the user's home (an absolute path)")
        if not self.script.startswith("#!"):
            raise ValueError("a data-mover job's script starts with its interpreter line")

    @property
    def directory(self) -> str:
        return f"{self.home.rstrip('/')}/.firecrest/transfers/{self.private_dir}"


# ---------------------------------------------------------------- the port


class Scheduler(Protocol):
    """One system's batch scheduler, used as a given user (every call runs as `user`)."""

    name: str

    # ---- jobs
    async def submit(self, user: str, spec: JobSpec, private_dir: str, tag: str) -> tuple[str, str]:
        """Check the working directory (and script_path) as the user; for an inline script write
        it into a new private file ~/.firecrest/jobs/<private_dir>.sh; then submit it (in one
        round trip where the scheduler allows). Returns (job id, the script's path).
        InvalidArgument when the user's input is wrong. `tag` is recorded with the job so that
        find_tagged finds it."""
        ...

    async def find_tagged(self, user: str, tag: str) -> str | None:
        """The id of the user's job recorded with `tag` (a submission whose answer was lost)."""
        ...

    async def discard(self, user: str, private_dir: str) -> None:
        """Remove the private directory of a job that was not submitted."""
        ...

    async def job(self, user: str, job_id: str) -> Job | None:
        """The job with its steps, whoever owns it (the caller checks Job.user), or None."""
        ...

    async def jobs(self, user: str, account: str = "", window: int = 86400, name: str = "") -> list[Job]:
        """The user's jobs active in the last `window` seconds (and those running now),
        optionally of one account and with exactly one name, with their steps."""
        ...

    async def accounting(self, user: str, job_ids: list[str]) -> dict[str, Job]:
        """Accounting records (no steps) of these jobs, by id (missing ones are absent)."""
        ...

    async def metadata(self, user: str, job_id: str) -> JobMetadata | None:
        """Script and standard streams of a job the scheduler still knows (None otherwise)."""
        ...

    async def cancel(self, user: str, job_id: str) -> None: ...

    async def attach(self, user: str, job_id: str, command: str) -> None:
        """Run a shell command line inside the user's running job."""
        ...

    # ---- data-mover jobs (staged transfers)
    async def submit_data_mover(self, user: str, job: DataMoverJob) -> str:
        """Write and submit a data-mover job; returns its id. When this raises, no job of it is
        left to run and its private directory is gone."""
        ...

    # ---- the machine and the user
    async def nodes(self, user: str) -> list[Node]: ...

    async def partitions(self, user: str, show_hidden: bool) -> list[Partition]: ...

    async def reservations(self, user: str) -> list[Reservation]: ...

    async def user_info(self, user: str) -> UserInfo: ...

    # ---- health
    async def ping(self, user: str) -> None:
        """Returns when the scheduler's controller answers; BackendUnavailable when it does not."""
        ...
