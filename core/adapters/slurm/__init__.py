"""Slurm, driven over SSH as the calling user: the Scheduler port's adapter (scheduler.py) and the
command objects it runs, one per Slurm client call (jobs.py: sbatch, squeue, sacct, scontrol,
scancel, srun; status.py: nodes, partitions, reservations, ping; users.py: the caller's identity
and accounts), with Slurm's output parsers (parsers.py) and error texts (errors.py)."""

from core.adapters.slurm.scheduler import SlurmScheduler

__all__ = ["SlurmScheduler"]
