"""The landscape views beside C4 (opt-in; evidence shown, never judged): per (lr, arm), the
Hessian's trace and top eigenvalues over the measurement steps and the loss surface's range."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bncli.results import RunRecord
from bncli.spec import Spec
from bncli.stats import finite_mean
from bncli.verdicts import by_arm_lr

EVIDENCE = ("evidence beside C4, shown, not judged (C4's verdict keeps its three metrics): "
            "Hessian trace (Hutchinson), top eigenvalues (Lanczos), filter-normalized loss surface "
            "(Li et al. 2018) within ±span")


def _views(record: RunRecord) -> dict[str, Any]:
    return record.probes.get("landscape_views", {})


def run_view_stats(record: RunRecord) -> dict[str, float]:
    """One run's summary numbers: the trace (mean over steps and at the last measured step), its
    standard error there, λ₁..λ_k at the last step, and the end surface's centre / range / rise."""
    v = _views(record)
    out: dict[str, float] = {}
    series = v.get("series", [])
    traces = [s["hessian_trace"] for s in series if "hessian_trace" in s]
    if traces:
        out["trace_mean"] = finite_mean(traces)
        out["trace_end"] = traces[-1]
        last = [s for s in series if "hessian_trace" in s][-1]
        out["trace_se_end"] = last["hessian_trace_se"]
        out["trace_converged_end"] = float(bool(last.get("hessian_trace_converged")))
    tops = [s["hessian_top"] for s in series if s.get("hessian_top")]
    if tops:
        for i, lam in enumerate(tops[-1]):
            out[f"lambda{i + 1}_end"] = lam
    surf = [s for s in v.get("surfaces", []) if s["step"] != 0 or len(v.get("surfaces", [])) == 1]
    if surf:
        for k in ("centre", "range", "rise"):
            out[f"surface_{k}"] = surf[-1][f"surface_{k}"]
    return out


def views_table(spec: Spec, records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """Per (lr, arm): each view's number, mean over the seeds that have it."""
    groups = by_arm_lr(records)
    rows = []
    for lr in spec.train.lr:
        for arm in spec.arms:
            stats = [run_view_stats(r) for r in groups.get((arm.name, lr), [])]
            stats = [s for s in stats if s]
            if not stats:
                continue
            row: dict[str, Any] = {"lr": lr, "arm": arm.name, "n_seeds": len(stats)}
            keys = sorted({k for s in stats for k in s}, key=lambda k: list(stats[0]).index(k) if k in stats[0] else 99)
            for k in keys:
                row[k] = finite_mean([s[k] for s in stats if k in s])
            rows.append(row)
    return rows
