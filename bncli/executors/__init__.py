"""Executors run a plan of RunJobs: serially here, in local worker processes, or on Ray."""

from bncli.executors.base import Execution, Executor, JobResult, Reporter, execute

__all__ = ["Execution", "Executor", "JobResult", "Reporter", "execute"]
