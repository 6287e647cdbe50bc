"""A subcommand end to end, below the CLI: analysis -> plan -> executor -> records ->
analysis.summarize -> CommandResult. Nothing here draws or prints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bncli.analyses import Analysis, DataInfo, get_analysis
from bncli.analyses.base import ProbeFactory
from bncli.executors import execute
from bncli.executors.base import Executor, JobResult, Reporter
from bncli.plan import plan
from bncli.results import CommandResult, RunRecord, summarize
from bncli.spec import Spec


def check_spec(spec: Spec, analyses: Sequence[str] | None = None) -> DataInfo:
    """Everything that can fail before training: the device, the data, that the model fits it,
    and that the run fits in memory (an estimate of data + models + probes, bncli.budget)."""
    from bncli.runner.build import data_info, prepare

    data, device = prepare(spec, analyses)
    return data_info(data, device)


def complete_and_paired(spec: Spec, records: Sequence[RunRecord]) -> tuple[list[RunRecord], list[str]]:
    """The records a verdict may use: runs that finished (diverged counts as finished) whose seed
    and learning rate also finished in every other arm. Returns (kept, labels of those left out)."""
    done = [r for r in records if not r.interrupted]
    arms = [a.name for a in spec.arms]
    have: dict[tuple[int, float], set[str]] = {}
    for r in done:
        have.setdefault((r.seed, r.lr), set()).add(r.arm)
    kept = [r for r in done if have[(r.seed, r.lr)] >= set(arms)]
    left = [f"{r.arm} lr={r.lr:g} seed={r.seed} "
            + (f"(partial, {r.steps_done} steps)" if r.interrupted else "(unpaired)")
            for r in records if r not in kept]
    return kept, left


def build_result(
    spec: Spec, analysis: Analysis, records: Sequence[RunRecord], interrupted: bool, info: DataInfo
) -> CommandResult:
    """Summaries, claims and tables from finished records: no training, no tensors. Verdicts and
    summaries use only complete, paired runs; partial runs stay in `runs`, marked interrupted."""
    from bncli.regimes import judge_claims

    kept, left = complete_and_paired(spec, records)
    summary = analysis.summarize(spec, kept, info)
    # Holm over the command's family, evidence, stability, and the verdicts at shorter budgets
    claims = judge_claims(spec, analysis, kept, info, summary.claims)
    tables = dict(summary.tables)
    if left:
        tables["left_out"] = left
    return CommandResult(
        command=analysis.command,
        spec=spec.model_dump(mode="json"),
        runs=list(records),
        summary=summarize(kept),
        claims=claims,
        interrupted=interrupted,
        task=info.task,
        device=info.device,
        tables=tables,
    )


def run_analysis(
    spec: Spec,
    analysis: str | Analysis,
    reporter: Reporter | None = None,
    executor: Executor | None = None,
    on_job: Callable[[JobResult], Any] | None = None,
) -> CommandResult:
    """Plan every seed x lr x arm of `spec` for one analysis, run the plan, judge the records.
    `on_job` sees each job's result as it finishes (e.g. to write it to TensorBoard)."""
    a = analysis if isinstance(analysis, Analysis) else get_analysis(analysis)
    info = check_spec(spec, [a.section] if a.section else [])
    ex = execute(plan(spec, a.name), executor, reporter, on_result=on_job)
    return build_result(spec, a, ex.records, ex.interrupted, info)


@dataclass
class Experiment:
    """Records of every seed x lr x arm of one spec (run_experiment's result)."""

    records: list[RunRecord]
    interrupted: bool
    data: Any
    device: Any


def run_experiment(
    spec: Spec,
    probe_factory: ProbeFactory | None = None,
    reporter: Reporter | None = None,
    prepared: tuple[Any, Any] | None = None,
) -> Experiment:
    """Every seed x learning rate x arm with the given probes (or none), serially: for tests and
    benchmarks (the commands use run_analysis). Ctrl-C keeps the finished runs."""
    from bncli.executors.serial import SerialExecutor
    from bncli.runner.build import prepare

    data, device = prepared if prepared is not None else prepare(spec)
    ex = execute(plan(spec, "train"), SerialExecutor(probe_factory=probe_factory), reporter)
    return Experiment(ex.records, ex.interrupted, data, device)
