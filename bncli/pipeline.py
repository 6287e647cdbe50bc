"""A subcommand end to end, below the CLI: analysis -> plan -> executor -> records ->
analysis.summarize -> CommandResult. Nothing here draws or prints."""

from __future__ import annotations

from collections.abc import Sequence

from bncli.analyses import Analysis, DataInfo, get_analysis
from bncli.executors.base import Executor, Reporter, execute
from bncli.plan import plan
from bncli.results import CommandResult, RunRecord, summarize
from bncli.spec import Spec


def check_spec(spec: Spec) -> DataInfo:
    """Everything that can fail before training: the device, the data, that the model fits it."""
    from bncli.experiment import data_info, prepare

    data, device = prepare(spec)
    return data_info(data, device)


def build_result(
    spec: Spec, analysis: Analysis, records: Sequence[RunRecord], interrupted: bool, info: DataInfo
) -> CommandResult:
    """Summaries, claims and tables from finished records: no training, no tensors."""
    summary = analysis.summarize(spec, list(records), info)
    return CommandResult(
        command=analysis.command,
        spec=spec.model_dump(mode="json"),
        runs=list(records),
        summary=summarize(list(records)),
        claims=summary.claims,
        interrupted=interrupted,
        task=info.task,
        device=info.device,
        tables=summary.tables,
    )


def run_analysis(
    spec: Spec,
    analysis: str | Analysis,
    reporter: Reporter | None = None,
    executor: Executor | None = None,
) -> CommandResult:
    """Plan every seed x lr x arm of `spec` for one analysis, run the plan, judge the records."""
    a = analysis if isinstance(analysis, Analysis) else get_analysis(analysis)
    info = check_spec(spec)
    ex = execute(plan(spec, a.name), executor, reporter)
    return build_result(spec, a, ex.records, ex.interrupted, info)
