"""`bncli compare A B`: two saved results, claim by claim and regime by regime — verdict A vs B and
each metric's change. Did a change of code or settings change a conclusion?"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bncli.errors import UsageError
from bncli.results import Claim, CommandResult, MetricComparison, clean

Key = tuple[str, str, str, float, str, str]  # (comparison, command, claim, lr, arm, baseline)


@dataclass(frozen=True)
class MetricChange:
    name: str
    a: MetricComparison | None
    b: MetricComparison | None

    @property
    def change(self) -> float:
        """B's arm mean minus A's (NaN when either is missing)."""
        if self.a is None or self.b is None:
            return math.nan
        return self.b.arm_mean - self.a.arm_mean

    @property
    def rel_change(self) -> float:
        if self.a is None or self.b is None or not self.a.arm_mean:
            return math.nan
        return self.change / abs(self.a.arm_mean)

    def to_json(self) -> dict[str, Any]:
        def side(m: MetricComparison | None) -> dict[str, Any] | None:
            return None if m is None else {"arm_mean": m.arm_mean, "baseline_mean": m.baseline_mean,
                                           "rel_diff": m.rel_diff, "p_value": m.p_value, "points": m.points}

        return {"name": self.name, "a": side(self.a), "b": side(self.b), "change": self.change,
                "rel_change": self.rel_change, "points_changed": self.points_changed}

    @property
    def points_changed(self) -> bool:
        return (self.a is None) != (self.b is None) or (self.a is not None and self.b is not None
                                                        and self.a.points != self.b.points)


@dataclass(frozen=True)
class ClaimChange:
    comparison: str
    command: str
    claim: str
    lr: float
    arm: str
    baseline: str
    verdict_a: str | None  # None: not judged in A
    verdict_b: str | None
    metrics: list[MetricChange] = field(default_factory=list)
    leaning_a: str | None = None  # which way A's numbers point (what an exploratory verdict leans to)
    leaning_b: str | None = None

    @property
    def label_a(self) -> str | None:
        """A's verdict as printed: 'supported', or 'exploratory→refuted' with its leaning."""
        return _label(self.verdict_a, self.leaning_a)

    @property
    def label_b(self) -> str | None:
        return _label(self.verdict_b, self.leaning_b)

    @property
    def changed(self) -> bool:
        """The verdict changed, or an exploratory verdict's leaning did (exploratory→supported vs
        exploratory→inconclusive is a change of conclusion too)."""
        return self.label_a != self.label_b

    def to_json(self) -> dict[str, Any]:
        return {"comparison": self.comparison, "command": self.command, "claim": self.claim, "lr": self.lr,
                "arm": self.arm, "baseline": self.baseline, "verdict_a": self.verdict_a,
                "verdict_b": self.verdict_b, "leaning_a": self.leaning_a, "leaning_b": self.leaning_b,
                "label_a": self.label_a, "label_b": self.label_b, "changed": self.changed,
                "metrics": [m.to_json() for m in self.metrics]}


def _label(verdict: str | None, leaning: str | None) -> str | None:
    if verdict == "exploratory" and leaning:
        return f"exploratory→{leaning}"
    return verdict


@dataclass(frozen=True)
class ResultComparison:
    a: str
    b: str
    claims: list[ClaimChange]
    rule_a: str = ""  # which verdict rule made A's verdicts (results.VERDICT_RULES)
    rule_b: str = ""

    @property
    def same_rule(self) -> bool:
        return self.rule_a == self.rule_b

    @property
    def n_changed(self) -> int:
        return sum(c.changed for c in self.claims)

    def exit_code(self) -> int:
        """0: no verdict changed; 1: at least one did (an exploratory one's leaning included, or it was
        judged on one side only)."""
        return 1 if self.n_changed else 0

    def to_json(self) -> dict[str, Any]:
        return clean({"a": self.a, "b": self.b, "rule_a": self.rule_a, "rule_b": self.rule_b,
                      "n_claims": len(self.claims), "n_changed": self.n_changed,
                      "exit_code": self.exit_code(), "claims": [c.to_json() for c in self.claims]})


def _claims(loaded: Any, with_group: bool) -> dict[Key, Claim]:
    from bncli.saved import BatchResult

    rows: list[tuple[str, str, Claim]] = []
    if isinstance(loaded, CommandResult):
        rows = [("", loaded.command, c) for c in loaded.claims]
    elif isinstance(loaded, BatchResult):
        rows = [(comp.name, comp.command, c) for comp in loaded.comparisons for c in comp.claims]
    out: dict[Key, Claim] = {}
    for group, command, c in rows:
        # a baseline that is not an arm ("tolerance 1e-4") is a setting: it may change between A and B
        base = c.baseline if " " not in c.baseline else ""
        key = (group if with_group else "", command, c.claim, float(c.lr), c.arm, base)
        if key in out:
            raise UsageError("compare: a batch's claims only match another batch's (by comparison name): "
                             f"{command} {c.claim} at lr={c.lr:g} appears in several comparisons")
        out[key] = c
    return out


def compare_claims(a: Any, b: Any, name_a: str = "A", name_b: str = "B") -> ResultComparison:
    """Every (comparison, command, claim, lr, arm, baseline) judged in A or B, in A's order then
    B's: both verdicts and each metric's change. Two batches match by comparison name; a
    subcommand's result matches by command only (its spec's name may differ)."""
    from bncli.saved import BatchResult

    kinds = [isinstance(x, BatchResult) for x in (a, b)]
    if kinds[0] != kinds[1]:
        batch, single = (name_a, name_b) if kinds[0] else (name_b, name_a)
        command = (b if kinds[0] else a).command
        raise UsageError(f"compare: {batch} is a batch's result and {single} a subcommand's ({command}): "
                         "compare two batches, or two results of subcommands")
    if not any(kinds) and a.command != b.command:
        raise UsageError(f"compare: {name_a} is a result of `{a.command}` and {name_b} of `{b.command}`: "
                         "their claims are not the same measurements; compare two results of one subcommand")
    with_group = all(kinds)
    ca, cb = _claims(a, with_group), _claims(b, with_group)
    out = []
    for key in dict.fromkeys([*ca, *cb]):
        x, y = ca.get(key), cb.get(key)
        ma = {m.name: m for m in x.metrics} if x else {}
        mb = {m.name: m for m in y.metrics} if y else {}
        metrics = [MetricChange(n, ma.get(n), mb.get(n)) for n in dict.fromkeys([*ma, *mb])]
        group, command, claim, lr, arm, _ = key
        baseline = " / ".join(dict.fromkeys(c.baseline for c in (x, y) if c is not None))
        out.append(ClaimChange(group, command, claim, lr, arm, baseline, x.verdict if x else None,
                               y.verdict if y else None, metrics, x.leaning if x else None,
                               y.leaning if y else None))
    return ResultComparison(name_a, name_b, out, verdict_rule(a), verdict_rule(b))


def verdict_rule(loaded: Any) -> str:
    """Which verdict rule made a loaded result's verdicts (by its schema version)."""
    from bncli.results import VERDICT_RULES

    if isinstance(loaded, CommandResult):
        return loaded.verdict_rule
    version = getattr(loaded, "doc", {}).get("schema_version")
    return VERDICT_RULES.get(version, f"schema {version}")


def compare_paths(a: Path, b: Path) -> ResultComparison:
    from bncli.saved import load_result

    return compare_claims(load_result(a), load_result(b), str(a), str(b))
