"""The gradient-noise-scale analysis and its claim C10 (no torch: the CLI builds its subcommand
from this entry). Its probe is `gns` (bncli_example_plugin.probe), its spec section `analysis.gns`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from bncli.analyses.base import F32, Analysis, DataInfo, MemoryParts, Sizes, Summary, every_option, probe_size_option
from bncli.claims import ClaimInfo
from bncli.results import Claim, RunRecord
from bncli.spec_types import BatchSize, Count, Strict
from bncli.stats import finite_mean
from bncli.verdicts import MetricInput, by_arm_lr, claim_pairs, make_claim, seeds_of

C10_STATEMENT = ("Normalization raises the gradient noise scale B_simple = tr(Σ)/|G|² (McCandlish et al. "
                 "2018): its gradients are noisier relative to their mean, so larger batches still pay off")


class GnsSpec(Strict):
    """measure-gns (C10)."""

    every: Count = Field(20, description="measure every N steps")
    probe_size: BatchSize = Field(128, description="examples in the fixed probe batch (the large batch B)")
    small: BatchSize = Field(16, description="the small batch b: B is split into B/b disjoint small batches")


def plan_probes(spec: Any, arm: Any) -> tuple[str, ...]:
    return ("gns",)


def _median_b(r: RunRecord) -> float:
    values = sorted(v for v in r.probes.get("gns", {}).get("b_simple", []) if v is not None and math.isfinite(v))
    return values[len(values) // 2] if values else math.nan


def c10_claims(spec: Any, records: Sequence[RunRecord]) -> list[Claim]:
    claims = []
    for lr, arm, base, a, b, _ in claim_pairs(spec, records):
        metric = MetricInput("gradient noise scale B_simple (median over measurement steps)", "higher",
                             [_median_b(r) for r in a], [_median_b(r) for r in b], 0.0, "median")
        claims.append(make_claim("C10", C10_STATEMENT, lr, arm, base, [metric], spec.verdict,
                                 "two-batch-size estimator on a fixed probe batch (McCandlish et al. 2018, A.1)",
                                 seeds=seeds_of(a), runs=(a, b)))
    return claims


def summarize(spec: Any, records: Sequence[RunRecord], data: DataInfo) -> Summary:
    rows = [{"lr": lr, "arm": arm, "n_seeds": len(rs), "b_simple": finite_mean([_median_b(r) for r in rs])}
            for (arm, lr), rs in by_arm_lr(records).items()]
    return Summary(c10_claims(spec, records), {"gns": rows})


def memory(cfg: Any, z: Sizes) -> MemoryParts:
    m = min(cfg.probe_size, z.n_train)
    return [("measure-gns probe", 2 * m * z.act * F32 + 2 * z.params * F32, "analysis.gns.probe_size")]


ANALYSIS = Analysis(
    name="gns",
    command="measure-gns",
    claims=("C10",),
    section="gns",
    options=(every_option("gns"), probe_size_option("gns")),
    plan_probes=plan_probes,
    summarize=summarize,
    render="bncli_example_plugin.render",
    help="Test claim C10 (an example plugin): the gradient noise scale B_simple of each normalized arm "
         "against the plain arm.",
    metrics=("b_simple",),
    memory=memory,
    shrink=(("analysis.gns.probe_size", lambda c: {"probe_size": min(c.probe_size, 128)}),),
)

CLAIMS = (
    ClaimInfo("C10", C10_STATEMENT, "gns", figure="bncli_example_plugin.render:c10_figure", plot_name="noise_scale",
              caption="B_simple = tr(Σ)/|G|² on a fixed probe batch over training, mean over seeds.",
              metrics=("B_simple, median over steps: higher with normalization",)),
)
