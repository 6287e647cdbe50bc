"""Where a verdict holds (SCIENCE.md, Verdicts: Regimes): the same runs judged at shorter budgets
(no retraining: records cut at 40 % / 70 % of the steps), the command's claims finalized (Holm,
evidence, stability), and the regime map (a claim's verdict per learning rate, in one row)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from bncli.results import Claim, RunRecord
from bncli.verdicts import finalize


def _cut_lists(d: Any, k: int) -> Any:
    """Every list in a nested dict of per-measurement series cut to its first k values."""
    if isinstance(d, dict):
        return {key: _cut_lists(v, k) for key, v in d.items()}
    if isinstance(d, list):
        return d[:k]
    return d


def truncate(r: RunRecord, cut: int) -> RunRecord:
    """The record as if the run had stopped after step `cut`: curves, divergence, target and the
    step-indexed probes (landscape series, ICS series) up to that step."""
    keep = [i for i, s in enumerate(r.steps) if s <= cut]
    k = len(keep)
    probes: dict[str, Any] = {}
    for name, p in r.probes.items():
        if not isinstance(p, dict):
            probes[name] = p
        elif isinstance(p.get("series"), list):
            probes[name] = {**p, "series": [s for s in p["series"]
                                            if not isinstance(s, dict) or s.get("step", 0) <= cut]}
        elif isinstance(p.get("steps"), list) and isinstance(p.get("per_layer"), dict):
            n = sum(s <= cut for s in p["steps"])
            probes[name] = {**p, "steps": p["steps"][:n], "per_layer": _cut_lists(p["per_layer"], n)}
        else:
            probes[name] = p
    diverged = r.diverged_at is not None and r.diverged_at <= cut
    return replace(
        r, steps=r.steps[:k], train_loss=r.train_loss[:k], train_eval_loss=r.train_eval_loss[:k],
        train_acc=r.train_acc[:k], test_loss=r.test_loss[:k], test_acc=r.test_acc[:k],
        diverged_at=r.diverged_at if diverged else None,
        divergence_reason=r.divergence_reason if diverged else None,
        steps_done=min(r.steps_done, cut),
        steps_to_target=r.steps_to_target if r.steps_to_target is not None and r.steps_to_target <= cut else None,
        probes=probes,
    )


def claim_key(c: Claim) -> tuple[str, float, str, str]:
    return (c.claim, c.lr, c.arm, c.baseline)


def budget_label(frac: float) -> str:
    return f"{frac:.0%}"


def judge_claims(spec: Any, analysis: Any, records: Sequence[RunRecord], info: Any,
                 claims: Sequence[Claim]) -> list[Claim]:
    """The command's claims finalized (Holm over its family, re-decided), each with its verdicts at
    the shorter budgets of spec.verdict.budgets (same runs, cut; each budget its own Holm family)."""
    final = finalize(claims, spec.verdict)
    if not analysis.budgeted or not final or not spec.verdict.budgets:
        return final
    at: dict[tuple[str, float, str, str], dict[str, str]] = {claim_key(c): {} for c in final}
    for frac in sorted(spec.verdict.budgets):
        cut = int(round(frac * spec.train.steps))
        if cut < 1:
            continue
        short = [truncate(r, cut) for r in records]
        for c in finalize(analysis.summarize(spec, short, info).claims, spec.verdict):
            if claim_key(c) in at:
                at[claim_key(c)][budget_label(frac)] = budget_value(c)
    return [replace(c, budgets={**at[claim_key(c)], "100%": budget_value(c)}) for c in final]


def budget_value(c: Claim) -> str:
    """A budget's verdict: the verdict, or 'exploratory→<leaning>' below the seeds it needs."""
    return f"exploratory→{c.leaning}" if c.verdict == "exploratory" else c.verdict


def regime_rows(claims: Sequence[Claim]) -> tuple[list[float], list[dict[str, Any]]]:
    """The regime map: one row per (claim, arm, baseline), its verdict (and leaning, evidence,
    budgets) per learning rate; only claims judged at two learning rates or more."""
    lrs = sorted({c.lr for c in claims})
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for c in claims:
        row = rows.setdefault((c.claim, c.arm, c.baseline),
                              {"claim": c.claim, "arm": c.arm, "baseline": c.baseline, "by_lr": {}})
        row["by_lr"][c.lr] = c
    multi = [r for r in rows.values() if len(r["by_lr"]) >= 2]
    return lrs, multi
