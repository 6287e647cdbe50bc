"""The `lipschitz` analysis (C4, C5): landscape tables and the C4 / C5 claims."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any, Literal

from bncli.analyses.base import (
    F32,
    Analysis,
    DataInfo,
    MemoryParts,
    Option,
    Sizes,
    Summary,
    every_option,
)
from bncli.claims import ClaimInfo
from bncli.results import Claim, RunRecord
from bncli.spec import Spec
from bncli.stats import finite_max, finite_mean, worst_max
from bncli.verdicts import MetricInput, by_arm_lr, claim_pairs, make_claim, seeds_of

C4_STATEMENT = (
    "BN smooths the loss landscape: smaller loss variation, gradient predictiveness and "
    "effective β-smoothness along the gradient (Santurkar et al. 2018 §3.2, Fig 4)"
)
C5_STATEMENT = (
    "BN's Jacobian is (1/σ)(I − 11ᵀ/m − ŷŷᵀ/m): its backward pass rescales by γ/σ "
    "and projects out 1 and ŷ (Santurkar et al. 2018 Thm 4.1)"
)
# landscape metrics that decide C4 (key in a probe record, label); lower is claimed for BN
C4_METRICS = [
    ("loss_variation", "loss variation (max − min of L over the η′ grid)"),
    ("grad_pred_max", "gradient predictiveness (max over η′ of ‖g − g′‖; the mean over η′ is in the table)"),
    ("beta", "effective β-smoothness (max over η′ of ‖g − g′‖ / ‖η′g‖)"),
]
STEP_KEYS = ["loss_variation", "grad_pred_max", "grad_pred_mean", "beta", "grad_norm", "lambda_max",
             "lambda_min"]
LAYER_KEYS_MAX = ["jacobian_err_f32", "jacobian_err_f64", "grad_err", "cos_ones_max",
                  "cos_yhat_max", "thm41_gap_max"]
LAYER_KEYS_MEAN = ["thm41_lhs", "thm41_rhs", "grad_ratio", "gamma_over_sigma"]


C4_KEYS = [k for k, _ in C4_METRICS]
# a C4 verdict needs this many finite measurements per run: one step-0 point of an arm that
# diverged at step 4 says nothing about smoothness along training
MIN_FINITE_STEPS = 2
# resolution of the landscape metrics on the log-ratio scale: below float32 rounding of the losses
# and gradient norms they are made of (keeps a value of exactly 0 judgeable)
LANDSCAPE_FLOOR = 1e-9


def median_inf(vals: Sequence[float | None]) -> float:
    """Median over measurement steps where a non-finite value (NaN or ±inf) counts as +inf: one
    blown-up η′ grid cannot decide (SCIENCE.md, Verdicts: landscape metrics are heavy-tailed), a
    landscape that blew up at half its measurements or more is inf. NaN when there are none."""
    v = [math.inf if x is None or not math.isfinite(float(x)) else float(x) for x in vals]
    return statistics.median(v) if v else math.nan


def mean_or_inf(vals: Sequence[float | None]) -> float:
    """Mean of the finite values, but +inf when any value is non-finite (NaN or ±inf): a landscape
    that blew up somewhere on the grid is not smooth, and must not drop out of the mean."""
    v = [float(x) for x in vals if x is not None]
    return math.inf if any(not math.isfinite(x) for x in v) else finite_mean(v)


def run_landscape_stats(record: RunRecord) -> dict[str, float]:
    """Mean, median and max over this run's measurement steps of each landscape metric.

    The C4 metrics of a measurement with a non-finite loss or gradient on the grid are inf, and so
    are the run's mean and max; the median (what C4 and C9 judge) is inf only when at least half
    the measurements blew up."""
    series = record.probes.get("landscape", {}).get("series", [])
    out: dict[str, float] = {"n_steps": float(len(series))}
    for key in STEP_KEYS:
        vals = [s[key] for s in series if key in s]
        c4 = key in C4_KEYS
        out[f"{key}_mean"] = mean_or_inf(vals) if c4 else finite_mean(vals)
        out[f"{key}_max"] = worst_max(vals) if c4 else finite_max(vals)
        out[f"{key}_median"] = median_inf(vals) if c4 else (statistics.median(_fin(vals)) if _fin(vals) else math.nan)
    # a reloaded document has null where the run had inf or NaN: that is non-finite too
    out["n_nonfinite"] = float(sum(s.get("loss_variation") is None or not math.isfinite(s["loss_variation"])
                                   for s in series))
    out["n_finite"] = float(len(series)) - out["n_nonfinite"]
    if any("lambda_max" in s for s in series):
        out["hessian_unconverged"] = float(sum(not (s.get("hessian_converged_max") and s.get("hessian_converged_min"))
                                               for s in series if "lambda_max" in s))
    return out


def _fin(vals: Sequence[float | None]) -> list[float]:
    return [float(v) for v in vals if v is not None and math.isfinite(float(v))]


def run_jacobian_stats(record: RunRecord) -> dict[str, dict[str, float]]:
    """Per BN layer over this run's measurement steps: worst errors, mean ratios."""
    series = record.probes.get("bn_jacobian", {}).get("series", [])
    per: dict[str, list[dict[str, float]]] = {}
    for s in series:
        for layer, rec in s["layers"].items():
            per.setdefault(layer, []).append(rec)
    out: dict[str, dict[str, float]] = {}
    for layer, recs in per.items():
        # errors: a non-finite one is the worst, never dropped
        row = {k: worst_max([r[k] for r in recs]) for k in LAYER_KEYS_MAX}
        row.update({k: finite_mean([r[k] for r in recs]) for k in LAYER_KEYS_MEAN})
        row["m"] = float(recs[0]["m"])
        row["rows_checked"] = float(recs[0]["rows_checked"])
        row["units_checked"] = float(recs[0]["units_checked"])
        out[layer] = row
    return out


def arm_tables(spec: Spec, records: Sequence[RunRecord]) -> tuple[list[dict], list[dict]]:
    """Per (lr, arm): landscape metrics averaged over seeds; per (lr, arm, layer): C5 figures."""
    groups = by_arm_lr(records)
    land, jac = [], []
    for lr in spec.train.lr:
        for arm in spec.arms:
            rs = groups.get((arm.name, lr), [])
            if not rs:
                continue
            stats = [run_landscape_stats(r) for r in rs]
            row: dict[str, Any] = {"lr": lr, "arm": arm.name, "n_seeds": len(rs),
                                   "n_diverged": sum(r.diverged for r in rs)}
            for key in stats[0]:
                vals = [s[key] for s in stats]
                if key.removesuffix("_max").removesuffix("_mean").removesuffix("_median") in C4_KEYS:
                    row[key] = (worst_max(vals) if key.endswith("_max") else
                                median_inf(vals) if key.endswith("_median") else mean_or_inf(vals))
                else:
                    row[key] = finite_max(vals) if key.endswith("_max") else finite_mean(vals)
            land.append(row)
            layer_stats = [run_jacobian_stats(r) for r in rs]
            for layer in layer_stats[0] if layer_stats else {}:
                per = [ls[layer] for ls in layer_stats if layer in ls]
                jrow: dict[str, Any] = {"lr": lr, "arm": arm.name, "layer": layer}
                for key in per[0]:
                    vals = [p[key] for p in per]
                    jrow[key] = worst_max(vals) if key in LAYER_KEYS_MAX else finite_mean(vals)
                jac.append(jrow)
    return land, jac


def c4_claims(spec: Spec, records: Sequence[RunRecord]) -> list[Claim]:
    """C4 per learning rate and BN arm, paired by seed: the three landscape metrics, each the
    median over the run's measurement steps (heavy-tailed: one blown-up η′ grid cannot decide),
    lower claimed for BN.

    A measurement with a non-finite loss or gradient on the grid counts as +inf in the median. A
    seed whose median is inf (half its measurements or more blew up), or with fewer than
    MIN_FINITE_STEPS finite measurements, is a non-finite seed: it counts against its arm (the
    engine's rule); when that is every seed of one arm and no seed of the other, the blow-up
    decides (decided_by: non-finite).
    """
    cfg = spec.analysis.lipschitz
    out = []
    for lr, arm, base, a, b, notes in claim_pairs(spec, records):
        sa = [run_landscape_stats(r) for r in a]
        sb = [run_landscape_stats(r) for r in b]

        def bad(s: dict) -> bool:  # blew up: a non-finite seed, against its arm
            return not math.isfinite(s["loss_variation_median"]) or (
                int(s["n_finite"]) < MIN_FINITE_STEPS and int(s["n_nonfinite"]) > 0)

        def vals(ss: list[dict], k: str) -> list[float]:
            return [math.nan if bad(s) else s[f"{k}_median"] for s in ss]

        metrics = [MetricInput(label, "lower", vals(sa, k), vals(sb, k), LANDSCAPE_FLOOR, "median")
                   for k, label in C4_METRICS]
        notes.append(f"per seed: median over measurement steps (a blow-up counts as inf); η′ in "
                     f"[{cfg.eta_range[0]:g}, {cfg.eta_range[1]:g}]×lr; BN in {cfg.bn_mode} mode")
        blown = {n: int(sum(s["n_nonfinite"] for s in ss)) for n, ss in ((arm, sa), (base, sb))}
        for name, k in blown.items():
            if k:
                notes.append(f"{name}: {k} measurement(s) hit a non-finite loss or gradient on the "
                             "grid (inf in that seed's median)")
        dead = {n: sum(bad(s) for s in ss) for n, ss in ((arm, sa), (base, sb))}
        # too few measurements at all (not blow-ups): nothing to judge
        few = {n: min((int(s["n_finite"]) for s in ss if not bad(s)), default=MIN_FINITE_STEPS)
               for n, ss in ((arm, sa), (base, sb)) if ss}
        override, decided = None, None
        if dead[arm] == len(sa) and dead[base] == 0:
            override, decided = "refuted", "non-finite"
            notes.append(f"decided by non-finite landscapes, not by the metrics: {arm}'s landscape blew "
                         "up at half its measurements or more in every seed, the baseline's never")
        elif dead[base] == len(sb) and dead[arm] == 0:
            override, decided = "supported", "non-finite"
            notes.append(f"decided by non-finite landscapes, not by the metrics: {base}'s landscape blew "
                         "up at half its measurements or more in every seed, the arm's never")
        elif any(dead.values()):
            notes.append(f"seeds whose landscape blew up (median inf, or fewer than {MIN_FINITE_STEPS} "
                         "finite measurements) count against their arm: " + ", ".join(
                             f"{n} {k}" for n, k in dead.items() if k))
        if override is None and any(k < MIN_FINITE_STEPS for k in few.values()):
            override, decided = "inconclusive", "too-few-finite"
            short = ", ".join(f"{n} ({k})" for n, k in few.items() if k < MIN_FINITE_STEPS)
            notes.append(f"too few finite measurement steps to judge (at least {MIN_FINITE_STEPS} per "
                         f"run needed): {short}")
        div = [n for n, rs in ((arm, a), (base, b)) if any(r.diverged for r in rs)]
        if div:
            notes.append(f"diverged: {', '.join(div)} (measured until divergence)")
        out.append(make_claim("C4", C4_STATEMENT, lr, arm, base, metrics, spec.verdict,
                              "; ".join(notes), override, decided, seeds=seeds_of(a), runs=(a, b)))
    return out


def c5_claims(spec: Spec, records: Sequence[RunRecord]) -> list[Claim]:
    """C5 per learning rate and BN arm: a maths check over every BN layer."""
    groups = by_arm_lr(records)
    tol = spec.analysis.lipschitz.jacobian_tol
    out = []
    for lr in spec.train.lr:
        for arm in (a for a in spec.arms if a.norm_info.jacobian_closed_form):
            rs = groups.get((arm.name, lr), [])
            per_seed = [run_jacobian_stats(r) for r in rs]
            per_seed = [p for p in per_seed if p]
            if not per_seed:
                continue
            jac = [worst_max(v["jacobian_err_f32"] for v in p.values()) for p in per_seed]
            grad = [worst_max(v["grad_err"] for v in p.values()) for p in per_seed]
            metrics = [
                MetricInput("max rel. error, autograd Jacobian (float32) vs closed form",
                            "lower", jac, [tol] * len(jac), tol * 1e-6, "worst"),
                MetricInput("max rel. error, autograd ∂L/∂x (float32) vs (γ/σ)Pg",
                            "lower", grad, [tol] * len(grad), tol * 1e-6, "worst"),
            ]
            # a non-finite error is a failed check, whatever order the values come in
            worst = worst_max(jac + grad)
            verdict = "supported" if worst < tol else "refuted"
            n_layers = len(per_seed[0])
            note = (f"maths check, not a BN-vs-plain comparison: the baseline column is the "
                    f"tolerance {tol:g}; supported when every one of {n_layers} BN layer(s) is "
                    f"below it at every measured step and seed (closed forms in float64)")
            if not math.isfinite(worst):
                note += "; a non-finite error was measured: refuted"
            out.append(make_claim("C5", C5_STATEMENT, lr, arm.name, f"tolerance {tol:g}",
                                  metrics, spec.verdict, note, verdict, "maths-check",
                                  seeds=[r.seed for r in rs]))
    return out


def plan_probes(spec: Spec, arm: Any) -> tuple[str, ...]:
    """The landscape probe on every arm; the BN-Jacobian probe where C5's closed form applies (C9
    adds the C2 distribution probe on the arms it compares: bncli.analyses.c9)."""
    from bncli.probes.landscape_views import views_on

    views = ("landscape_views",) if views_on(spec.analysis.lipschitz) else ()
    if spec.analysis.lipschitz.jacobian and arm.norm_info.jacobian_closed_form:
        return ("landscape", "bn_jacobian", *views)
    return ("landscape", *views)


def summarize(spec: Spec, records: Sequence[RunRecord], data: DataInfo) -> Summary:
    from bncli.probes.landscape import eta_grid

    cfg = spec.analysis.lipschitz
    land, jac = arm_tables(spec, records)
    claims = c4_claims(spec, records) + c5_claims(spec, records)
    extra: dict[str, Any] = {}
    na = c5_not_applicable(spec)
    if na:
        extra["c5_note"] = na
    from bncli.probes.landscape_views import views_on

    if views_on(cfg):  # opt-in: a default run's tables are what they were
        from bncli.analyses.landscape_views import EVIDENCE, views_table

        extra["views"] = views_table(spec, records)
        extra["views_note"] = EVIDENCE
    return Summary(claims, {
        "eta_multiples": [e / spec.train.lr[0] for e in eta_grid(spec.train.lr[0], cfg)],
        "landscape": land,
        "jacobian": jac,
        **extra,
    })


def c5_not_applicable(spec: Spec) -> str | None:
    """Which normalized arms C5 says nothing about (its closed form is BN's), or None."""
    other = [a for a in spec.arms if a.normalized and not a.norm_info.jacobian_closed_form]
    if not other:
        return None
    names = ", ".join(f"{a.name} ({a.norm_info.short})" for a in other)
    return (f"C5 checks BN's closed form (Santurkar Thm 4.1) and applies to BN arms only; not "
            f"applicable to {names}: no Jacobian check, no C5 verdict for them")


HELP = """Measure the loss landscape along the gradient (C4) and check BN's Jacobian (C5).

Every N steps of real training, before the update, on that step's batch: the loss
L(θ − η′g) on a grid of step lengths η′ (multiples of the lr), the gradient
predictiveness ‖g − ∇L(θ − η′g)‖, the effective β-smoothness
max ‖g − ∇L(θ − η′g)‖ / ‖η′g‖, ‖g‖ and (--hessian) the extreme Hessian
eigenvalues. On BN arms: autograd's Jacobian of each BN layer against
(1/σ)(I − 11ᵀ/m − ŷŷᵀ/m), orthogonality of ∂L/∂x to 1 and ŷ, Santurkar Thm 4.1.
Measuring changes nothing: training ends in the same weights as `bncli train`.

C4 verdict (per lr, BN arm vs plain, paired by seed): the BN arm's loss variation, gradient
predictiveness and effective β, each the MEDIAN over a run's measurement steps (heavy-tailed: a
blown-up η′ grid counts as inf but cannot decide alone), must all be lower than plain's by more
than the margin (default 10%, verdict.margin): one-sided paired t-tests of the log ratio against
the margin, every metric, p Holm-adjusted across the command's claims < 0.05 (supported); all
higher likewise: refuted; else inconclusive. A seed whose median is inf counts against its arm.
Fewer than 3 paired seeds: exploratory. Only when one arm's median is inf in every seed and the
other's in none does the blow-up decide ("decided by non-finite"). The result depends on the lr:
Santurkar measure near the plain net's edge of stability.
C5 verdict (per lr, BN arm; a maths check): supported when autograd's Jacobian and backward
pass match the closed forms within analysis.lipschitz.jacobian_tol (default 1e-4, relative,
float32) on every BN layer at every measured step, refuted otherwise (a non-finite error
refutes)."""


def memory(lip: Any, z: Sizes) -> MemoryParts:
    """The η′ grid as one vmap'ed batch (a parameter copy and a batch of activations per point),
    the Hessian's Lanczos vectors, and rows x m of BN's m x m Jacobian per unit."""
    parts = [("lipschitz η′ grid", lip.eta_points * (3 * z.params * F32 + 2 * z.batch * z.act * F32),
              "analysis.lipschitz.eta_points")]
    if lip.hessian:
        parts.append(("lipschitz Hessian", 6 * z.params * F32 + 4 * z.batch * z.act * F32,
                      "analysis.lipschitz.hessian"))
    if lip.hessian_trace or lip.hessian_density:  # 8 Hutchinson vectors per batched HVP; SLQ's basis
        parts.append(("lipschitz Hessian views", 8 * (3 * z.params * F32 + 2 * z.batch * z.act * F32)
                      + lip.density_steps * z.params * 8, "analysis.lipschitz.hessian_trace"))
    if lip.surface is not None:  # a chunk of grid points (vmapped on a GPU), at most CHUNK_BYTES
        from bncli.probes.surface import CHUNK_BYTES

        pts = lip.surface.points ** lip.surface.dims
        parts.append(("lipschitz surface", min(CHUNK_BYTES, pts * (2 * z.params * F32 + 2 * lip.surface.probe_size
                                                                    * z.act * F32)), "analysis.lipschitz.surface"))
    if lip.jacobian:
        m = z.batch * z.positions  # m = batch x spatial positions
        rows = min(lip.jacobian_rows, m)
        parts.append(("lipschitz Jacobian", 3 * lip.jacobian_units * rows * m * F32,
                      "analysis.lipschitz.jacobian_rows"))
    return parts

ANALYSIS = Analysis(
    name="landscape",
    command="lipschitz",
    claims=("C4", "C5", "C9"),
    section="lipschitz",
    options=(
        every_option("lipschitz"),
        Option("eta_range", ("--eta-range",), tuple[float, float] | None, "analysis.lipschitz.eta_range",
               "LOW HIGH: the η′ grid in multiples of the learning rate "
               "(analysis.lipschitz.eta_range; default 0.5 4).", to_spec=list),
        Option("eta_points", ("--eta-points",), int | None, "analysis.lipschitz.eta_points",
               "Points on the η′ grid (default 8)."),
        Option("hessian", ("--hessian/--no-hessian",), bool | None, "analysis.lipschitz.hessian",
               "Also the extreme Hessian eigenvalues λ_max and λ_min (Lanczos on Hessian-vector "
               "products, scipy eigsh)."),
        Option("hessian_iters", ("--hessian-iters",), int | None, "analysis.lipschitz.hessian_iters",
               "Hessian-vector products per eigenvalue, at most (default 100)."),
        Option("hessian_tol", ("--hessian-tol",), float | None, "analysis.lipschitz.hessian_tol",
               "Converged when the residual ‖Hv − λv‖ ≤ this × |λ| (default 1e-3)."),
        Option("surface", ("--surface",), int | None, "analysis.lipschitz.surface.dims",
               "1 or 2: also the filter-normalized loss surface (Li et al. 2018) along that many random "
               "directions at the end of training (analysis.lipschitz.surface; shown, not judged).",
               metavar="DIMS"),
        Option("hessian_trace", ("--hessian-trace/--no-hessian-trace",), bool | None,
               "analysis.lipschitz.hessian_trace",
               "Also the Hessian's trace (Hutchinson) and top-k eigenvalues on the measurement steps "
               "(shown, not judged)."),
        Option("hessian_density", ("--hessian-density/--no-hessian-density",), bool | None,
               "analysis.lipschitz.hessian_density",
               "Also the Hessian's eigenvalue density (stochastic Lanczos quadrature) on the measurement "
               "steps (shown, not judged)."),
        Option("bn_mode", ("--bn-mode",), Literal["train", "eval"] | None, "analysis.lipschitz.bn_mode",
               "train: batch statistics, what SGD optimizes (default); eval: the inference network "
               "(running statistics, no noise), its own gradient."),
    ),
    plan_probes=plan_probes,
    summarize=summarize,
    render="bncli.render.landscape",
    help=HELP,
    metrics=("loss_variation", "grad_pred_max", "grad_pred_mean", "beta", "grad_norm", "lambda_max",
             "lambda_min", "jacobian_err_f32", "grad_err"),
    memory=memory,
    shrink=(("analysis.lipschitz.eta_points", lambda c: {"eta_points": min(c.eta_points, 8)}),
            ("analysis.lipschitz.jacobian_rows", lambda c: {"jacobian_rows": min(c.jacobian_rows, 256),
                                                            "jacobian_units": min(c.jacobian_units, 8)})),
    budgeted=True,
)


# its claims: what render, report, plot files and batch expectations read (bncli.claims)
CLAIMS = (
    ClaimInfo("C4", C4_STATEMENT, "landscape", figure="bncli.render.figures_more:c4_figure", plot_name="landscape",
              caption=('Along −g at each measured step: shaded, the range (min–max) over the η′ grid, mean over '
                       'seeds (Santurkar Fig 4a–b); bottom, effective β-smoothness, mean ± std over seeds.')),
    ClaimInfo("C5", C5_STATEMENT, "landscape", figure="bncli.render.figures_more:c5_figure", plot_name="bn_jacobian",
              caption=("Worst relative error over layers (max over seeds) of autograd against BN's closed-form "
                       'Jacobian and backward pass; dotted: the tolerance.')),
)
