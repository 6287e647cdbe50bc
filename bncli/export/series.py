"""Every curve of a result as (metric, step, value) points: the training curves and each probe's
per-step series, named by their path in the record ("ics_dist/per_layer/layer1/preact/w1").
One source for the TensorBoard and MLflow exports and for `to_pandas()`."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from bncli.results import Claim, CommandResult, RunRecord

CURVES = ("train_loss", "train_eval_loss", "train_acc", "test_loss", "test_acc")


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def _is_series(v: Any, n: int) -> bool:
    return (isinstance(v, list) and len(v) == n and n > 0
            and all(x is None or (_number(x) is not None) for x in v)
            and any(x is not None for x in v))


def _walk_steps(d: dict[str, Any], path: str, steps: list[Any]) -> Iterator[tuple[str, int, float | None]]:
    """Series that sit beside a `steps` list (same length), in this dict or below it."""
    own = d.get("steps")
    if isinstance(own, list) and own and all(isinstance(s, int) for s in own):
        steps = own
    for k, v in d.items():
        if k == "steps":
            continue
        name = f"{path}/{k}"
        if isinstance(v, dict):
            yield from _walk_steps(v, name, steps)
        elif steps and _is_series(v, len(steps)):
            for s, x in zip(steps, v, strict=True):
                yield name, s, _number(x)
        elif steps and isinstance(v, list) and v and all(_is_series(u, len(steps)) for u in v):
            for i, u in enumerate(v):  # one series per tracked unit (percentiles)
                for s, x in zip(steps, u, strict=True):
                    yield f"{name}/{i}", s, _number(x)
        elif k == "series" and isinstance(v, list) and v and all(isinstance(e, dict) and "step" in e for e in v):
            for e in v:  # one entry per measured step: its scalars, nested dicts included
                yield from _scalars(e, name, e["step"])


def _scalars(d: dict[str, Any], path: str, step: int) -> Iterator[tuple[str, int, float | None]]:
    for k, v in d.items():
        if k == "step":
            continue
        if isinstance(v, dict):
            yield from _scalars(v, f"{path}/{k}", step)
        elif _number(v) is not None or (v is None and not isinstance(v, list)):
            yield f"{path}/{k}", step, _number(v)


def run_points(r: RunRecord) -> Iterator[tuple[str, int, float | None]]:
    """(metric, step, value) of one run: its curves at evaluation points, then its probes' series.
    A value that was NaN or ±inf (stored as null in JSON) is None."""
    for name in CURVES:
        for s, v in zip(r.steps, getattr(r, name), strict=False):
            x = _number(v)
            if v is not None:
                yield name, s, x if x is None or math.isfinite(x) else None
    for probe, doc in r.probes.items():
        if isinstance(doc, dict):
            for name, s, x in _walk_steps(doc, probe, []):
                yield name, s, x if x is None or math.isfinite(x) else None


def run_series(r: RunRecord) -> dict[str, list[tuple[int, float]]]:
    """{metric: [(step, value)]} of one run, finite values only (what the exports write)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for name, s, x in run_points(r):
        if x is not None:
            out.setdefault(name, []).append((int(s), x))
    return out


@dataclass(frozen=True)
class RunRef:
    """One job of a result, named for a tracker: `<comparison>/<arm>/lr=<lr>/seed=<seed>`."""

    comparison: str
    command: str
    record: RunRecord

    @property
    def name(self) -> str:
        r = self.record
        return f"{self.comparison}/{r.arm}/lr={r.lr:g}/seed={r.seed}"


def run_refs(comparison: str, result: CommandResult) -> list[RunRef]:
    return [RunRef(comparison, result.command, r) for r in result.runs]


def claims_of_run(result: CommandResult, r: RunRecord) -> list[Claim]:
    """The verdicts a run took part in: its arm (or its arm as the baseline) at its learning rate."""
    return [c for c in result.claims if c.lr == r.lr and r.arm in (c.arm, c.baseline)]


def job_spec(result: CommandResult, r: RunRecord) -> dict[str, Any]:
    """The run's resolved spec: the result's spec with this arm, learning rate and seed only."""
    spec = dict(result.spec)
    spec["arms"] = [a for a in spec.get("arms", []) if isinstance(a, dict) and a.get("name") == r.arm] or [r.arm]
    spec["train"] = {**spec.get("train", {}), "lr": [r.lr]}
    spec["seed"], spec["seeds"] = r.seed, 1
    return spec


def flatten(doc: Any, prefix: str = "") -> dict[str, str]:
    """{dotted key: value as text} of a nested mapping (lists kept as their JSON text)."""
    import json

    out: dict[str, str] = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(v, dict) and v:
                out.update(flatten(v, key))
            else:
                out[key] = v if isinstance(v, str) else json.dumps(v, allow_nan=True)
    return out


def verdict_markdown(claims: Sequence[Claim]) -> str:
    """The verdicts as a Markdown table (TensorBoard's text plugin renders it)."""
    from bncli.render.report import metric_text

    if not claims:
        return "no verdict"
    rows = ["| claim | lr | arm vs baseline | verdict | numbers |", "|---|---|---|---|---|"]
    for c in claims:
        nums = "; ".join(f"{metric_text(m)} → {m.points}" for m in c.metrics).replace("|", "\\|")
        rows.append(f"| {c.claim} | {c.lr:g} | {c.arm} vs {c.baseline} | **{c.verdict}** | {nums} |")
    return "\n".join(rows)
