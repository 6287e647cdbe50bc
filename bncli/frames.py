"""Results as pandas DataFrames (long format) and as the HTML verdict grid a notebook shows.
pandas is optional (`pip install 'bncli[pandas]'`) and imported only here."""

from __future__ import annotations

from typing import Any

from bncli.errors import ExtraMissingError
from bncli.results import Claim, CommandResult

RUN_COLUMNS = ["run", "arm", "lr", "seed", "step", "metric", "value"]
#: claims_frame(): one row per claim x lr x arm. effect / ci_low / ci_high: the deciding metric's
#: paired effect and 95 % interval (ratio scale: arm/baseline − 1 of the geometric means, 0.25 is
#: +25 %; difference scale: arm − baseline in the metric's units); beyond: "k/n", that metric's
#: paired seeds beyond the margin the claimed way; p_adj: the claim's Holm-adjusted p (None below
#: the seeds a test needs). verdict: supported / refuted / inconclusive / exploratory; leaning:
#: the way the numbers point (an exploratory verdict's arrow).
CLAIM_COLUMNS = ["claim", "lr", "arm", "baseline", "verdict", "leaning", "effect", "ci_low", "ci_high", "beyond",
                 "p_adj"]
#: metrics_frame(): one row per claim x lr x arm x metric, every number behind a verdict.
METRIC_COLUMNS = ["claim", "lr", "arm", "baseline", "verdict", "metric", "better", "aggregate", "scale",
                  "arm_mean", "baseline_mean", "effect", "ci_low", "ci_high", "beyond", "p_adj", "points"]


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ExtraMissingError("to_pandas() and claims_frame() need pandas: pip install 'bncli[pandas]'") from None
    return pandas


def run_rows(result: CommandResult) -> list[tuple[Any, ...]]:
    """(run, arm, lr, seed, step, metric, value) of every point of every curve; NaN for a value
    that was not finite."""
    from bncli.export.series import run_points

    rows = []
    for r in result.runs:
        label = f"{r.arm} lr={r.lr:g} seed={r.seed}"
        for name, step, value in run_points(r):
            rows.append((label, r.arm, r.lr, r.seed, step, name, float("nan") if value is None else value))
    return rows


def claim_rows(claims: list[Claim]) -> list[tuple[Any, ...]]:
    """One row per claim x lr x arm (CLAIM_COLUMNS), its numbers from the deciding metric."""
    from bncli.render.claim_row import claim_row

    rows = []
    for c in claims:
        r = claim_row(c)
        beyond = f"{r.beyond[0]}/{r.beyond[1]}" if r.beyond else None
        rows.append((c.claim, c.lr, c.arm, c.baseline, c.verdict, c.leaning, r.effect, r.ci_low, r.ci_high,
                     beyond, r.p_adj))
    return rows


def metric_rows(claims: list[Claim]) -> list[tuple[Any, ...]]:
    """One row per claim x metric (METRIC_COLUMNS); a claim without metrics: one row, metric None."""
    rows = []
    for c in claims:
        head = (c.claim, c.lr, c.arm, c.baseline, c.verdict)
        for m in c.metrics:
            ci = list(m.ci) if m.ci else [None, None]
            rows.append((*head, m.name, m.better, m.aggregate, m.scale, m.arm_mean, m.baseline_mean, m.effect,
                         ci[0], ci[1], f"{m.beyond[0]}/{m.beyond[1]}" if m.beyond else None, m.p_adj, m.points))
        if not c.metrics:
            rows.append((*head, *(None,) * (len(METRIC_COLUMNS) - len(head))))
    return rows


def result_frame(result: CommandResult) -> Any:
    return _pandas().DataFrame(run_rows(result), columns=RUN_COLUMNS)


def claims_frame(result: CommandResult) -> Any:
    return _pandas().DataFrame(claim_rows(result.claims), columns=CLAIM_COLUMNS)


def metrics_frame(result: CommandResult) -> Any:
    return _pandas().DataFrame(metric_rows(result.claims), columns=METRIC_COLUMNS)


def batch_frame(batch: Any) -> Any:
    rows = [(c.name, c.command, *row) for c in batch.comparisons if c.result is not None for row in run_rows(c.result)]
    return _pandas().DataFrame(rows, columns=["comparison", "command", *RUN_COLUMNS])


def batch_claims_frame(batch: Any) -> Any:
    rows = [(c.name, c.command, *row) for c in batch.comparisons for row in claim_rows(c.claims)]
    return _pandas().DataFrame(rows, columns=["comparison", "command", *CLAIM_COLUMNS])


def batch_metrics_frame(batch: Any) -> Any:
    rows = [(c.name, c.command, *row) for c in batch.comparisons for row in metric_rows(c.claims)]
    return _pandas().DataFrame(rows, columns=["comparison", "command", *METRIC_COLUMNS])


_CSS = (".bncli-grid td,.bncli-grid th{border:1px solid #d6d6d6;padding:2px 6px;text-align:left;vertical-align:top}"
        ".bncli-grid .v{display:block;padding:2px 6px;border-radius:3px;font-weight:600;white-space:nowrap}"
        ".bncli-grid .v small{display:block;font-weight:400;font-size:11px;white-space:normal}"
        ".bncli-grid .v-supported{background:#0072B2;color:#fff}.bncli-grid .v-refuted{background:#D55E00;"
        "color:#fff}.bncli-grid .v-inconclusive{background:#F0E442;color:#000}")


def verdict_grid_html(obj: Any) -> str:
    """The report's verdict grid (claims C1–C9 x comparison, learning rate and arm) as an HTML
    fragment: what Jupyter shows for a result."""
    from types import SimpleNamespace

    from bncli.render.report import Doc, _claim_order, build_grid
    from bncli.render.report_html import grid_html
    from bncli.render.report_text import _e

    if isinstance(obj, CommandResult):
        name = str(obj.spec.get("name", "result"))
        docs = [Doc(f"{name} · {obj.command}", name, obj, {}, ".")]
        kind, head = "single", f"bncli {obj.command} · {name}: {len(obj.runs)} run(s)"
        if obj.interrupted:
            head += " (interrupted: finished runs only)"
    else:
        docs = []
        for c in obj.comparisons:
            res = c.result or CommandResult(c.command, {}, [], [], c.claims)
            docs.append(Doc(f"{c.name} · {c.command}", c.name, res, {}, c.path or "."))
        kind, head = "batch", f"bncli batch {obj.doc.get('batch_file', '')}: {len(obj.comparisons)} comparison(s)"
    regimes, verdicts = build_grid(docs)
    ids = _claim_order([v.claim.claim for v in verdicts])
    grid = grid_html(SimpleNamespace(regimes=regimes, kind=kind, claim_ids=ids))
    return f'<div class="bncli-grid"><style>{_CSS}</style><p><b>{_e(head)}</b></p>{grid}</div>'
