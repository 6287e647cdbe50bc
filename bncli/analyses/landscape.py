"""The `lipschitz` analysis (C4, C5): landscape tables and the C4 / C5 claims."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from bncli.analyses.base import Analysis, DataInfo, Option, Summary
from bncli.results import Claim, RunRecord
from bncli.spec import Spec
from bncli.stats import finite_max, finite_mean, worst_max
from bncli.verdicts import MetricInput, by_arm_lr, claim_pairs, make_claim

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


def mean_or_inf(vals: Sequence[float | None]) -> float:
    """Mean of the finite values, but +inf when any value is non-finite (NaN or ±inf): a landscape
    that blew up somewhere on the grid is not smooth, and must not drop out of the mean."""
    v = [float(x) for x in vals if x is not None]
    return math.inf if any(not math.isfinite(x) for x in v) else finite_mean(v)


def run_landscape_stats(record: RunRecord) -> dict[str, float]:
    """Mean (and max) over this run's measurement steps of each landscape metric.

    The C4 metrics of a measurement with a non-finite loss or gradient on the grid are inf, and so
    is the run's mean and max: the blow-up counts against the arm."""
    series = record.probes.get("landscape", {}).get("series", [])
    out: dict[str, float] = {"n_steps": float(len(series))}
    for key in STEP_KEYS:
        vals = [s[key] for s in series if key in s]
        c4 = key in C4_KEYS
        out[f"{key}_mean"] = mean_or_inf(vals) if c4 else finite_mean(vals)
        out[f"{key}_max"] = worst_max(vals) if c4 else finite_max(vals)
    # a reloaded document has null where the run had inf or NaN: that is non-finite too
    out["n_nonfinite"] = float(sum(s.get("loss_variation") is None or not math.isfinite(s["loss_variation"])
                                   for s in series))
    out["n_finite"] = float(len(series)) - out["n_nonfinite"]
    if any("lambda_max" in s for s in series):
        out["hessian_unconverged"] = float(sum(not (s.get("hessian_converged_max") and s.get("hessian_converged_min"))
                                               for s in series if "lambda_max" in s))
    return out


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
                if key.removesuffix("_max").removesuffix("_mean") in C4_KEYS:
                    row[key] = worst_max(vals) if key.endswith("_max") else mean_or_inf(vals)
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
    """C4 per learning rate and BN arm: the three landscape metrics, lower claimed for BN.

    A measurement whose loss or gradient is non-finite somewhere on the η′ grid makes that
    seed's metrics inf (the landscape blew up: not smooth). When only one arm has such
    measurements, that decides the verdict against it; when both do, it is inconclusive.
    """
    cfg = spec.analysis.lipschitz
    out = []
    for lr, arm, base, a, b, notes in claim_pairs(spec, records):
        sa = [run_landscape_stats(r) for r in a]
        sb = [run_landscape_stats(r) for r in b]
        metrics = [MetricInput(label, "lower", [s[f"{k}_mean"] for s in sa],
                               [s[f"{k}_mean"] for s in sb]) for k, label in C4_METRICS]
        notes.append(f"per seed: mean over measurement steps; η′ in [{cfg.eta_range[0]:g}, "
                     f"{cfg.eta_range[1]:g}]×lr; BN in {cfg.bn_mode} mode")
        blown = {n: int(sum(s["n_nonfinite"] for s in ss)) for n, ss in ((arm, sa), (base, sb))}
        for name, k in blown.items():
            if k:
                notes.append(f"{name}: {k} measurement(s) hit a non-finite loss or gradient on the "
                             "grid: its metrics are inf (means over finite seeds shown)")
        override = None
        few = {n: min(int(s["n_finite"]) for s in ss) for n, ss in ((arm, sa), (base, sb)) if ss}
        if blown[arm] and not blown[base]:
            override = "refuted"
            notes.append(f"only {arm}'s landscape blew up: counted against it")
        elif blown[base] and not blown[arm]:
            override = "supported"
            notes.append(f"only {base}'s landscape blew up: counted against it")
        if override is None and any(k < MIN_FINITE_STEPS for k in few.values()):
            override = "inconclusive"
            short = ", ".join(f"{n} ({k})" for n, k in few.items() if k < MIN_FINITE_STEPS)
            notes.append(f"too few finite measurement steps to judge (at least {MIN_FINITE_STEPS} per "
                         f"run needed): {short}")
        div = [n for n, rs in ((arm, a), (base, b)) if any(r.diverged for r in rs)]
        if div:
            notes.append(f"diverged: {', '.join(div)} (measured until divergence)")
        out.append(make_claim("C4", C4_STATEMENT, lr, arm, base, metrics, spec.verdict,
                              "; ".join(notes), override))
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
                            "lower", jac, [tol]),
                MetricInput("max rel. error, autograd ∂L/∂x (float32) vs (γ/σ)Pg",
                            "lower", grad, [tol]),
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
                                  metrics, spec.verdict, note, verdict))
    return out


def plan_probes(spec: Spec, arm: Any) -> tuple[str, ...]:
    """The landscape probe on every arm; the BN-Jacobian probe where C5's closed form applies (C9
    adds the C2 distribution probe on the arms it compares: bncli.analyses.c9)."""
    if spec.analysis.lipschitz.jacobian and arm.norm_info.jacobian_closed_form:
        return ("landscape", "bn_jacobian")
    return ("landscape",)


def summarize(spec: Spec, records: Sequence[RunRecord], data: DataInfo) -> Summary:
    from bncli.probes.landscape import eta_grid

    cfg = spec.analysis.lipschitz
    land, jac = arm_tables(spec, records)
    claims = c4_claims(spec, records) + c5_claims(spec, records)
    extra: dict[str, Any] = {}
    na = c5_not_applicable(spec)
    if na:
        extra["c5_note"] = na
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

C4 verdict (per lr, BN arm vs plain): supported when the BN arm's loss variation, gradient
predictiveness and effective β (each the mean over measurement steps, then over seeds)
are all lower than the plain arm's by more than the margin (default 10%, verdict.margin),
refuted when all are higher by the margin, else inconclusive; with >= 3 seeds each must
also pass Welch's t-test (p < 0.05). A non-finite loss or gradient anywhere on the grid
makes that arm's metrics inf: if only one arm blew up the verdict goes against it. The
result depends on the lr: Santurkar measure near the plain net's edge of stability.
C5 verdict (per lr, BN arm; a maths check): supported when autograd's Jacobian and backward
pass match the closed forms within analysis.lipschitz.jacobian_tol (default 1e-4, relative,
float32) on every BN layer at every measured step, refuted otherwise (a non-finite error
refutes).
Exit codes: 0 done, 1 run failed, 2 bad spec or usage, 130 interrupted."""

ANALYSIS = Analysis(
    name="landscape",
    command="lipschitz",
    claims=("C4", "C5", "C9"),
    section="lipschitz",
    options=(
        Option("every", ("--every",), int | None, "analysis.lipschitz.every",
               "Measure every N steps (analysis.lipschitz.every)."),
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
)
