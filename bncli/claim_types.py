"""A claim's records: each metric's paired comparison (MetricComparison) and the claim's verdict
(Claim), plain frozen floats and lists with their JSON forms. bncli.results holds the documents
around them (runs, a command's result) and re-exports both; the renderers of one claim (render/
claim_row) import them from here, so a result's repr imports no module that imports the result."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

_ATOMS = (int, str, bool, type(None))


def clean(value: Any) -> Any:
    """Make a value strict-JSON safe: NaN/inf -> None, tuples -> lists, dataclasses -> dicts
    (clean(asdict(x)) without asdict's deep copy first), recursively."""
    t = type(value)
    if t is float:
        return value if math.isfinite(value) else None
    if t in _ATOMS:
        return value
    if t is list or t is tuple:  # series of numbers: no call per number
        out = []
        put = out.append
        for v in value:
            tv = type(v)
            if tv is float:
                put(v if v - v == 0.0 else None)  # nan - nan and inf - inf are nan, not 0
            elif tv is int or tv is str:
                put(v)
            else:
                put(clean(v))
        return out
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: clean(getattr(value, f.name)) for f in fields(value)}
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return clean(value.item())
    return value


def plain(value: Any) -> Any:
    """dataclasses.asdict's result (dataclasses -> dicts, containers copied, their types kept)
    for the plain data records hold, without asdict's per-element deepcopy (a 25-layer record's
    series are ~10^5 numbers: 10-20x faster)."""
    t = type(value)
    if t is float or t in _ATOMS:
        return value
    if t is list:
        return [plain(v) for v in value]
    if t is dict:
        return {plain(k): plain(v) for k, v in value.items()}
    if t is tuple:
        return tuple(plain(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
    return copy.deepcopy(value)  # what asdict does with any other value


def _num(v: Any) -> float:
    """A float from JSON, where strict JSON wrote NaN and ±inf as null: null -> NaN."""
    return math.nan if v is None else float(v)


@dataclass(frozen=True)
class MetricComparison:
    """One metric of a claim: the arm against the baseline arm, paired by seed (SCIENCE.md,
    Verdicts). `effect` is exp(mean ln((a+f)/(b+f))) − 1 on the ratio scale (the difference of
    the means, in the metric's units, on the difference scale); `arm_mean` and `baseline_mean` are
    the centres it compares (geometric means on the ratio scale); `ci` the matching 95 %
    t-interval of the effect; `p_claimed` / `p_against` the one-sided paired t-tests beyond the
    margin each way; `p_adj` min(1, 2·min of the two) times the claim's Holm factor; `beyond`
    [k, n]: seeds whose own effect is beyond the margin the claimed way, of all paired seeds."""

    name: str
    better: str  # "lower" | "higher": the direction the claim predicts for the arm
    arm_mean: float
    baseline_mean: float
    arm_values: list[float]
    baseline_values: list[float]
    effect: float
    points: str  # "claimed" | "against" | "neither"
    n_pairs: int = 0  # seeds where both values are finite
    n_seeds: int = 0  # paired seeds in all (non-finite ones count against their arm)
    nonfinite_arm: int = 0
    nonfinite_baseline: int = 0
    ci: list[float] | None = None
    p_claimed: float | None = None
    p_against: float | None = None
    p_adj: float | None = None
    floor: float = 0.0
    aggregate: str = "final"
    test: str = "superiority"  # or "non-inferiority" (no worse than the baseline beyond the margin)
    part: str = ""
    scale: str = "ratio"  # or "difference" (signed metrics, absolute margin)
    margin: float | None = None  # the margin on the metric's scale: ln(1+m) (ratio) or absolute
    beyond: list[int] | None = None  # [k, n]
    identical: bool = False  # every seed the same effect (flagged: often a seeding fault)
    sd_floor: float = 0.0  # the spread floor the resolution sets, on the test's scale
    legacy_p: float | None = None  # schema 3 documents: the paired test that rule used

    @property
    def rel_diff(self) -> float:  # the name schema 3 used
        return self.effect

    @property
    def p_value(self) -> float | None:
        """The metric's two-sided p: 2·min(p_claimed, p_against) (schema 3: its paired test)."""
        if self.p_claimed is None or self.p_against is None:
            return self.legacy_p
        return min(1.0, 2.0 * min(self.p_claimed, self.p_against))

    @property
    def n_dropped(self) -> int:
        return self.nonfinite_arm + self.nonfinite_baseline

    def to_json(self) -> dict[str, Any]:
        doc = clean(self)
        doc.pop("legacy_p", None)
        return doc

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MetricComparison:
        names = {f.name for f in fields(cls)} - {"arm_mean", "baseline_mean", "arm_values",
                                                  "baseline_values", "effect", "ci", "floor"}
        opt = {k: d[k] for k in names if k in d}
        if "effect" not in d:  # schema 3: a mean relative difference and its paired test
            opt["legacy_p"] = d.get("p_value")
            opt.setdefault("n_seeds", d.get("n_pairs", 0))
        return cls(**{
            **opt,
            "arm_mean": _num(d["arm_mean"]), "baseline_mean": _num(d["baseline_mean"]),
            "arm_values": [_num(v) for v in d["arm_values"]],
            "baseline_values": [_num(v) for v in d["baseline_values"]],
            "effect": _num(d["effect"] if "effect" in d else d.get("rel_diff")),
            "ci": [_num(v) for v in d["ci"]] if d.get("ci") else None,
            "floor": _num(d.get("floor", 0.0)),
        })


@dataclass(frozen=True)
class Claim:
    """A verdict on one claim at one learning rate, with the numbers it was made from.

    `verdict` is supported / refuted / inconclusive, or `exploratory` below the paired seeds a
    confirmatory verdict needs; `leaning` is which way the numbers point either way. `decided_by`:
    `metrics`, or the override that decided (`divergence`, `non-finite`, `maths-check`,
    `epsilon-check`, `too-few-finite`).
    `p_claimed` / `p_against`: the intersection-union p of each side (the largest of its
    metrics'); `p` = min(1, 2·min of the two); `p_adj` after Holm over the `family` claims of the
    command. `beyond`: the weakest metric's [k, n] seeds beyond the margin the claimed way.
    `budgets`: the verdict from the same runs cut at shorter budgets ("40%" -> verdict). `parts`:
    C9's part statuses. `stability` is read from schema 3 documents only."""

    claim: str
    statement: str
    verdict: str
    lr: float
    arm: str
    baseline: str
    metrics: list[MetricComparison]
    rule: str
    note: str = ""
    leaning: str = "inconclusive"
    evidence: str = "confirmatory"  # | "exploratory" | "check"
    decided_by: str = "metrics"
    n_seeds: int = 0
    seeds: list[int] = field(default_factory=list)
    p_claimed: float | None = None
    p_against: float | None = None
    p: float | None = None
    p_adj: float | None = None
    family: int = 0  # the claims Holm's correction ran over in this command
    beyond: list[int] | None = None
    nonfinite: dict[str, int] = field(default_factory=dict)  # arm / baseline -> seeds not finite
    stability: float | None = None
    budgets: dict[str, str] = field(default_factory=dict)
    claim_kind: str = "all"  # "all": every metric one way; "parts": C9's composite rule
    parts: dict[str, str] = field(default_factory=dict)
    part_overrides: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc = clean(self)
        if doc.get("stability") is None:
            doc.pop("stability", None)
        return doc

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Claim:
        opt = {k: d[k] for k in ("leaning", "evidence", "decided_by", "n_seeds", "seeds", "stability",
                                 "budgets", "claim_kind", "parts", "part_overrides", "p_claimed",
                                 "p_against", "p", "p_adj", "family", "beyond", "nonfinite") if k in d}
        return cls(
            claim=d["claim"], statement=d["statement"], verdict=d["verdict"], lr=d["lr"],
            arm=d["arm"], baseline=d["baseline"],
            metrics=[MetricComparison.from_json(m) for m in d["metrics"]],
            rule=d["rule"], note=d.get("note", ""), **opt,
        )
