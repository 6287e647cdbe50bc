"""scale-check (C6): per-arm/per-layer table data, notes and verdicts from ScaleProbe results."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from bncli.analyses.base import (
    F32,
    Analysis,
    DataInfo,
    MemoryParts,
    Option,
    Sizes,
    Summary,
    every_option,
    probe_size_option,
)
from bncli.claims import ClaimInfo
from bncli.results import Claim, RunRecord
from bncli.spec import Spec
from bncli.stats import finite_max, finite_mean, fmt
from bncli.verdicts import MetricInput, by_arm_lr, claim_pairs, make_claim, seeds_of

C6_STATEMENT = (
    "Scale invariance: BN(αWx) = BN(Wx), so the loss ignores ‖W‖ and ∇_{αW}L = ∇_W L / α "
    "(Arora et al. 2019; Hoffer et al. 2018)"
)
WHENS = ("init", "end")
# resolution of the scale-invariance residuals on the log-ratio scale: float32 rounding (they are
# zero in exact arithmetic for BN and ~1e-7 in float32; the plain arm's are O(1))
RESIDUAL_FLOOR = 1e-8


def _max(vals: Sequence[float | None]) -> float:
    v = [float(x) for x in vals if x is not None]
    if not v:
        return math.nan
    return math.nan if any(math.isnan(x) for x in v) else max(v)


def _static(r: RunRecord, when: str) -> dict[str, Any] | None:
    return (r.probes.get("scale") or {}).get("static", {}).get(when)


def verdict_indices(spec: Spec) -> tuple[list[int], bool]:
    """Indices of the grid α inside verdict_alpha_range; (all of them, False) when none are."""
    cfg = spec.analysis.scale
    lo, hi = cfg.verdict_alpha_range
    idx = [i for i, a in enumerate(cfg.alphas) if lo <= a <= hi]
    return (idx, True) if idx else (list(range(len(cfg.alphas))), False)


def _row_at(st: dict[str, Any], k: int) -> dict[str, Any]:
    """Worst case over layers of everything measured at the k-th α, for one run."""
    L = st["layers"].values()
    worst = max(st["layers"], key=lambda n: st["layers"][n]["out_rel"][k])
    dev = [abs(v["ratio_x_alpha"][k] - 1) for v in L]
    normalized = all(v["eps0_out_rel"] is not None for v in L)
    closed = all(v["eps_pred"] is not None for v in L)  # BN's closed form of the ε effect
    return {
        "out_abs": _max([v["out_abs"][k] for v in L]),
        "out_rel": _max([v["out_rel"][k] for v in L]),
        "worst_layer": worst,
        "loss_abs": _max([v["loss_abs"][k] for v in L]),
        "ratio_min": min(v["ratio_x_alpha"][k] for v in L),
        "ratio_max": max(v["ratio_x_alpha"][k] for v in L),
        "ratio_dev": _max(dev),
        "grad_err": _max([v["grad_err"][k] for v in L]),
        "eps0_out_rel": _max([v["eps0_out_rel"][k] for v in L]) if normalized else None,
        "eps0_ratio_dev": _max([abs(v["eps0_ratio_x_alpha"][k] - 1) for v in L]) if normalized else None,
        "eps_pred": _max([v["eps_pred"][k] for v in L]) if closed else None,
        "eval_out_rel": _max([v["eval_out_rel"][k] for v in L]),
    }


def status(row: dict[str, Any], tol: float, grad_tol: float) -> str:
    """invariant / ε-limited (holds once ε -> 0) / not invariant, from the numbers only."""
    if row["out_rel"] is None or not math.isfinite(row["out_rel"]):
        return "non-finite"
    if row["out_rel"] <= tol and row["ratio_dev"] <= grad_tol:
        return "invariant"
    e_out, e_dev = row.get("eps0_out_rel"), row.get("eps0_ratio_dev")
    if e_out is not None and e_dev is not None and e_out <= tol and e_dev <= grad_tol:
        return "ε-limited"
    return "not invariant"


def _mean_rows(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"worst_layer": rows[0]["worst_layer"]}
    for key in rows[0]:
        if key == "worst_layer":
            continue
        vals = [r[key] for r in rows]
        out[key] = None if all(v is None for v in vals) else finite_mean(vals)
    return out


def static_rows(spec: Spec, records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per (when, lr, arm, α): worst over layers, mean over seeds."""
    cfg = spec.analysis.scale
    groups = by_arm_lr(records)
    rows = []
    for when in WHENS:
        for lr in spec.train.lr:
            for arm in spec.arms:
                sts = [s for r in groups.get((arm.name, lr), []) if (s := _static(r, when))]
                if not sts:
                    continue
                for k, a in enumerate(cfg.alphas):
                    row = _mean_rows([_row_at(s, k) for s in sts])
                    row.update(
                        when=when,
                        lr=lr,
                        arm=arm.name,
                        alpha=a,
                        status=status(row, cfg.tolerance, cfg.grad_tolerance),
                    )
                    rows.append(row)
    return rows


def _layer_invariant_alphas(
    st: dict[str, Any], n: str, alphas: Sequence[float], tol: float, grad_tol: float
) -> list[float]:
    v = st["layers"][n]
    return [a for k, a in enumerate(alphas) if v["out_rel"][k] <= tol and abs(v["ratio_x_alpha"][k] - 1) <= grad_tol]


def layer_rows(spec: Spec, records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per (lr, arm, layer): gradient ⟂ W, bias cancellation, ε limit, ‖W‖ over training."""
    cfg = spec.analysis.scale
    groups = by_arm_lr(records)
    rows = []
    for lr in spec.train.lr:
        for arm in spec.arms:
            rs = [r for r in groups.get((arm.name, lr), []) if _static(r, "init")]
            if not rs:
                continue
            for n in rs[0].probes["scale"]["layers"]:
                per: dict[str, list[Any]] = {}

                def put(key: str, value: Any, _per: dict[str, list[Any]] = per) -> None:
                    _per.setdefault(key, []).append(value)

                first = _static(rs[0], "init")["layers"][n]
                for r in rs:
                    pr = r.probes["scale"]
                    si, se = (
                        _static(r, "init")["layers"][n],
                        (_static(r, "end") or {}).get("layers", {}).get(n),
                    )
                    put("cos_init", abs(si["cos_grad_w"]))
                    put("cos_end", abs(se["cos_grad_w"]) if se else None)
                    # the end check is the informative one: some inits start with b = 0
                    put("bias_cancel_rel", (se or si)["bias_cancel_rel"])
                    put("alpha_eps_low_init", si["alpha_eps_low"])
                    put("alpha_eps_low_end", se["alpha_eps_low"] if se else None)
                    n0 = si["weight_norm"]
                    n1 = pr["final_norm"].get(n, math.nan)
                    put("norm0", n0)
                    put("norm_end", n1)
                    put("growth", n1 / n0 if n0 > 0 else math.nan)
                    put("eff0", lr / n0**2 if n0 > 0 else math.nan)
                    put("eff_end", lr / n1**2 if n1 > 0 else math.nan)
                    s = pr["series"][n]
                    errs = [abs(d - p) / p for d, p in zip(s["dnorm2"], s["pred"], strict=True) if p > 0]
                    put("identity_rel_err", finite_mean(errs))
                    cross = [abs(c) / p for c, p in zip(s["cross"], s["pred"], strict=True) if p > 0]
                    put("cross_rel", finite_mean(cross))
                    grew = [d > 0 for d in s["dnorm2"]]
                    put("grew_frac", sum(grew) / len(grew) if grew else None)
                row: dict[str, Any] = {
                    k: (None if all(v is None for v in vals) else finite_mean(vals)) for k, vals in per.items()
                }
                row.update(
                    lr=lr,
                    arm=arm.name,
                    layer=n,
                    expected_invariant=first["expected_invariant"],
                    why=first["why"],
                    has_bias=first["has_bias"],
                    eps=first["eps"],
                    identity_applies=rs[0].probes["scale"]["identity_applies"],
                    invariant_alphas={
                        w: _layer_invariant_alphas(st, n, cfg.alphas, cfg.tolerance, cfg.grad_tolerance)
                        for w in WHENS
                        if (st := _static(rs[0], w))
                    },
                )
                rows.append(row)
    return rows


def norm_summary(
    spec: Spec, lrows: Sequence[dict[str, Any]], records: Sequence[RunRecord] = ()
) -> list[dict[str, Any]]:
    """Per (lr, arm): the range of ‖W_end‖/‖W_0‖ over layers, whether any norm exploded, and
    the steps at which runs diverged."""
    groups = by_arm_lr(records)
    out = []
    for lr in spec.train.lr:
        for arm in spec.arms:
            g = [r["growth"] for r in lrows if r["lr"] == lr and r["arm"] == arm.name]
            if not g:
                continue
            bad = [x for x in g if x is None or not math.isfinite(x)]
            fin = [x for x in g if x is not None and math.isfinite(x)]
            out.append(
                {
                    "lr": lr,
                    "arm": arm.name,
                    "growth_min": min(fin) if fin else math.nan,
                    "growth_max": max(fin) if fin else math.nan,
                    "exploded": bool(bad) or any(x > spec.analysis.scale.explode_factor for x in fin),
                    "diverged_at": [r.diverged_at for r in groups.get((arm.name, lr), []) if r.diverged],
                }
            )
    return out


def scale_tables(spec: Spec, records: Sequence[RunRecord]) -> dict[str, Any]:
    """Everything the renderer draws, as plain data (goes to JSON as `scale`)."""
    lrows = layer_rows(spec, records)
    idx, in_range = verdict_indices(spec)
    walls = [s["wall_s"] for r in records for w in WHENS if (s := _static(r, w))]
    tables = {
        "mode": "BN in training mode (batch statistics of a fixed probe batch)",
        "probe_examples": next((s["n_examples"] for r in records if (s := _static(r, "init"))), None),
        "alphas": list(spec.analysis.scale.alphas),
        "verdict_alphas": [spec.analysis.scale.alphas[i] for i in idx],
        "verdict_alphas_in_range": in_range,
        "tolerance": spec.analysis.scale.tolerance,
        "grad_tolerance": spec.analysis.scale.grad_tolerance,
        "static_wall_s": {
            "median": statistics.median(walls) if walls else None,
            "max": max(walls) if walls else None,
            "n": len(walls),
        },
        "static": static_rows(spec, records),
        "layers": lrows,
        "norms": norm_summary(spec, lrows, records),
    }
    tables["notes"] = scale_notes(spec, tables)
    return tables


def scale_notes(spec: Spec, tables: dict[str, Any]) -> list[str]:
    """Plain-language notes with their numbers (mode, bias, ε, the norm identity, growth)."""
    cfg = spec.analysis.scale
    srows, lrows = tables["static"], tables["layers"]
    bn_arms = [a for a in spec.arms if a.normalized]
    only_bn = all(a.norm_info.reference for a in bn_arms)
    notes = [
        f"Mode: {tables['mode']} of {tables['probe_examples']} training examples: what SGD "
        "optimizes. "
        "The 'eval' column uses running statistics, gathered for the unscaled W: they are not "
        f"invariant (largest eval-mode change, {'BN' if only_bn else 'normalized'} arms: "
        f"{fmt(_max([r['eval_out_rel'] for r in srows if spec.arm(r['arm']).normalized]), 2)})."
    ]
    if not only_bn:
        notes.append(
            "Other normalizations (SCIENCE.md, Arms): ℓp keeps running statistics like BN; LN, GN "
            "and weight norm have none, so their eval mode equals training mode. What is scaled is "
            "W_i, the whole weight feeding the normalization; for weight norm (W = g·v/‖v‖) it is "
            "the direction v, which the layer ignores by construction ('theory' column)."
        )
    if spec.model.bias:
        # BN and ℓp subtract a per-unit batch mean, which removes a per-unit bias
        pre = [
            r["bias_cancel_rel"] for r in lrows
            if spec.arm(r["arm"]).norm_info.bias_cancels and spec.arm(r["arm"]).position == "pre"
        ]
        per_example = [r["bias_cancel_rel"] for r in lrows
                       if spec.arm(r["arm"]).norm_info.per_example]
        plain = [r["bias_cancel_rel"] for r in lrows if not spec.arm(r["arm"]).normalized]
        notes.append(
            "Only W_i is scaled, not its bias b_i. b_i is the same for every example, so BN's "
            "batch-mean subtraction removes it: BN(αW_i x + b_i) = BN(αW_i x) up to ε and "
            "roundoff. "
            f"Check (end of training): setting b_i = 0 changes the output by ≤ {fmt(finite_max(pre), 2)} "
            f"relative in pre-BN arms, and by up to {fmt(finite_max(plain), 2)} in arms without BN."
        )
        if per_example:
            notes.append(
                "LN and GN subtract each example's mean over units (or a group), not each unit's "
                "batch mean, so a bias that differs between units does not cancel and W_i alone "
                "is not scale-invariant: setting b_i = 0 changes their output by up to "
                f"{fmt(finite_max(per_example), 2)} relative. They are invariant with model.bias: "
                "false."
            )
    idx, _ = verdict_indices(spec)
    in_range = {cfg.alphas[i] for i in idx}
    for arm in bn_arms:
        lr_ = [r for r in lrows if r["arm"] == arm.name]
        if not any(r["expected_invariant"] for r in lr_):
            continue  # ε is beside the point where W's scale passes through a nonlinearity
        if not arm.norm_info.eps_closed_form:
            notes.append(_other_eps_note(arm, [r for r in srows if r["arm"] == arm.name], in_range))
            continue
        low = _max([r["alpha_eps_low_init"] for r in lr_] + [r["alpha_eps_low_end"] for r in lr_])
        mine = [r for r in srows if r["arm"] == arm.name]
        e_in = _max([r["eps0_out_rel"] for r in mine if r["alpha"] in in_range])
        e_all = _max([r["eps0_out_rel"] for r in mine])
        notes.append(
            f"{arm.name}: ε = {arm.eps:g} breaks invariance where α²σ² is comparable to ε. Below "
            f"α ≈ {fmt(low, 2)} the ε term alone moves the smallest-variance unit's BN output by "
            f"more than {cfg.tolerance:g} (closed form |1 − √((σ²+ε)/(σ²+ε/α²))|, column "
            "'ε pred.'); "
            "for large α it levels off near ε/2σ², because the α = 1 reference carries ε too. "
            f"With ε → 1e-30 the worst output change is {fmt(e_in, 2)} for the verdict's α and "
            f"{fmt(e_all, 2)} over the whole grid: float32 rounding, which grows at small α because "
            "the unscaled bias swamps αW_i x in αW_i x + b_i (about 6e-8·|b|/(α·σ)). Rows marked "
            "'ε-limited' hold once ε is gone: that is the ε effect, not a bug."
        )
    if any(a.position == "post" for a in bn_arms):
        notes.append(
            "position: post puts BN after the nonlinearity, so W's scale goes through it first. "
            "That is invariant only for a positively homogeneous activation (ReLU, linear) with "
            "b = 0: ReLU(αz) = αReLU(z). Inits that zero the bias start invariant and lose it as "
            "b trains; sigmoid/tanh are never invariant."
        )
    t = spec.train
    if any(r["identity_applies"] for r in lrows):
        inv = [r["identity_rel_err"] for r in lrows if r["expected_invariant"]]
        cross = [r["cross_rel"] for r in lrows if not r["expected_invariant"]]
        notes.append(
            "Plain SGD: for scale-invariant W, ⟨∇_W L, W⟩ = 0, so ‖W_{t+1}‖² − ‖W_t‖² = η²‖∇L‖² "
            f"and the norm only grows. Measured: mean relative error {fmt(finite_mean(inv), 2)} over "
            f"the invariant layers' steps; where W is not invariant the term 2η⟨∇L, W⟩ is "
            f"{fmt(finite_mean(cross), 2)} × η²‖∇L‖² on average."
        )
    else:
        why = (
            f"optimizer {t.optimizer}"
            if t.optimizer != "sgd"
            else f"SGD with momentum {t.momentum:g}, weight decay {t.weight_decay:g}"
        )
        notes.append(
            f"{why}: the identity ‖W_{{t+1}}‖² = ‖W_t‖² + η²‖∇L‖² is for plain SGD and does "
            "not apply here; the measured change of ‖W‖² is shown as it is."
        )
    for n in tables["norms"]:
        if n["diverged_at"]:
            notes.append(
                f"lr={n['lr']:g} {n['arm']}: diverged at step "
                f"{', '.join(str(d) for d in n['diverged_at'])}; its end-of-training check and "
                "final norms are not finite."
            )
            continue
        notes.append(
            f"lr={n['lr']:g} {n['arm']}: ‖W_end‖/‖W_0‖ "
            f"×{n['growth_min']:.4g}–×{n['growth_max']:.4g} "
            f"over layers; {'EXPLODED' if n['exploded'] else 'no explosion'} "
            f"(threshold ×{cfg.explode_factor:g} or non-finite)."
        )
    return notes


def _other_eps_note(arm: Any, mine: Sequence[dict[str, Any]], in_range: set[float]) -> str:
    """The ε note of a normalization other than BN (no closed form of its ε effect here)."""
    if not arm.norm_info.has_eps:
        worst = _max([r["out_rel"] for r in mine if r["alpha"] in in_range])
        return (f"{arm.name}: {arm.norm_info.in_prose} has no ε; scaling v changes the output by at most "
                f"{fmt(worst, 2)} over the verdict's α (float32 rounding of g·v/‖v‖).")
    e_in = _max([r["eps0_out_rel"] for r in mine if r["alpha"] in in_range])
    what = arm.norm_info.eps_enters
    return (f"{arm.name}: ε = {arm.eps:g} enters through {what}, so it breaks invariance where "
            f"the scaled magnitude is comparable to ε; with ε → 1e-30 the worst output change "
            f"over the verdict's α is {fmt(e_in, 2)}.")


def _claim_metrics(rs: Sequence[RunRecord], idx: Sequence[int]) -> tuple[list[float], ...]:
    """Per seed: mean over init/end of the worst (over layers, verdict α) output change, 1/α-law
    deviation and |cos(∇_W L, W)|."""
    out_rel, dev, cos = [], [], []
    for r in rs:
        o, d, c = [], [], []
        for w in WHENS:
            st = _static(r, w)
            if not st:
                continue
            L = st["layers"].values()
            o.append(_max([v["out_rel"][k] for v in L for k in idx]))
            d.append(_max([abs(v["ratio_x_alpha"][k] - 1) for v in L for k in idx]))
            c.append(_max([abs(v["cos_grad_w"]) for v in L]))
        out_rel.append(finite_mean(o) if o else math.nan)
        dev.append(finite_mean(d) if d else math.nan)
        cos.append(finite_mean(c) if c else math.nan)
    return out_rel, dev, cos


def _growth(n: dict[str, Any], name: str) -> str:
    if n["diverged_at"]:
        return f"{name} diverged (step {', '.join(str(d) for d in n['diverged_at'])})"
    return f"{name} ×{n['growth_min']:.4g}–×{n['growth_max']:.4g}"


def _eps0_metric(rs: Sequence[RunRecord], idx: Sequence[int]) -> list[float]:
    """Per seed: mean over init/end of the worst ε → 0 output change (verdict α, all layers)."""
    out = []
    for r in rs:
        vals = []
        for w in WHENS:
            st = _static(r, w)
            if st and all(v["eps0_out_rel"] is not None for v in st["layers"].values()):
                vals.append(_max([v["eps0_out_rel"][k] for v in st["layers"].values() for k in idx]))
        out.append(finite_mean(vals) if vals else math.nan)
    return out


def c6_claims(spec: Spec, records: Sequence[RunRecord]) -> list[Claim]:
    """C6 per learning rate and BN arm vs the plain arm; all three metrics: lower is claimed."""
    idx, in_range = verdict_indices(spec)
    alphas = [spec.analysis.scale.alphas[i] for i in idx]
    span = f"α ∈ {{{', '.join(f'{a:g}' for a in alphas)}}}"
    lrows = layer_rows(spec, records)
    norms = {(n["arm"], n["lr"]): n for n in norm_summary(spec, lrows, records)}
    limit = spec.analysis.scale.not_invariant_above
    out = []
    for lr, arm, base, a, b, _ in claim_pairs(spec, records):
        ao, ad, ac = _claim_metrics(a, idx)
        bo, bd, bc = _claim_metrics(b, idx)
        metrics = [
            MetricInput(f"worst rel. output change, {span}", "lower", ao, bo, RESIDUAL_FLOOR, "worst"),
            MetricInput("worst |α·‖∇_{αW}L‖/‖∇_W L‖ − 1|", "lower", ad, bd, RESIDUAL_FLOOR, "worst"),
            MetricInput("worst |cos(∇_W L, W)|", "lower", ac, bc, RESIDUAL_FLOOR, "worst"),
        ]
        ref = spec.arm(arm).norm_info.reference
        mode = "BN in training mode" if ref else "training mode"
        note = (f"{mode}; mean of the checks at init and end of training (init alone where the "
                f"end check is not finite; a diverged run counts against its arm); worst over layers and {span}")
        if not in_range:
            note += " (no grid α inside verdict_alpha_range: all used)"
        if not ref:
            why = sorted({r["why"] for r in lrows if r["arm"] == arm and r["lr"] == lr})
            note += f"; theory for {arm}: {' | '.join(why)}"
        e0 = finite_mean(_eps0_metric(a, idx))
        override = None
        if not spec.arm(arm).norm_info.has_eps:
            note += f"; {spec.arm(arm).norm_info.in_prose} has no ε (no ε → 0 check)"
        elif math.isfinite(e0) and e0 > limit:
            # an identity that fails in exact arithmetic is decisive, however far below the
            # plain arm's sensitivity the BN arm sits
            override = "refuted"
            note += (
                f"; REFUTED for this arm: with ε → 0 its output still changes by {e0:.3g} "
                f"(> {limit:g}): W is not scale-invariant here"
            )
        else:
            note += f"; with ε → 0 the worst output change is {e0:.3g} (≤ {limit:g})"
        na, nb = norms.get((arm, lr)), norms.get((base, lr))
        if na and nb:
            note += f"; ‖W_end‖/‖W_0‖: {_growth(na, arm)}, {_growth(nb, base)} (not in the verdict)"
        out.append(make_claim("C6", C6_STATEMENT, lr, arm, base, metrics, spec.verdict, note, override,
                              "epsilon-check" if override else None, seeds=seeds_of(a), runs=(a, b)))
    return out


def plan_probes(spec: Spec, arm: Any) -> tuple[str, ...]:
    """The scale probe: the static check at init and end, and the weight-norm dynamics."""
    return ("scale",)


def summarize(spec: Spec, records: Sequence[RunRecord], data: DataInfo) -> Summary:
    return Summary(c6_claims(spec, records), {"scale": scale_tables(spec, records)})


HELP = """Test claim C6: a BN network ignores the scale of each weight W feeding a BN.

At initialization and at the end of training, for every layer and every α on the grid,
W_i ← α·W_i (its bias is not scaled: BN's mean subtraction cancels it) with BN in training
mode; reports the change of the output and loss, α·‖∇_{αW}L‖/‖∇_W L‖ (1 when ∇ scales as 1/α),
cos(∇\\_W L, W), the same with ε → 0 and in eval mode, and where BN's ε breaks invariance
(α²σ² comparable to ε). Over training: ‖W_i‖, the effective step η/‖W_i‖² and, under plain
SGD, ‖W\\_{t+1}‖² − ‖W_t‖² against η²‖∇L‖². The model is restored bitwise after each check.
Verdict rule (per learning rate, each BN arm vs the plain arm, metrics: worst relative output
change over α in analysis.scale.verdict_alpha_range (default 0.01…100), worst |α·ratio − 1|,
worst |cos(∇\\_W L, W)|, each the mean of the init and end checks): supported when every metric
is lower for the BN arm by more than the margin (default 10%, verdict.margin), refuted when
every metric is higher by the margin, else inconclusive; paired by seed, each metric needs its
one-sided paired t-tests of the log ratio beyond the margin, p Holm-adjusted across the
command's claims < 0.05; fewer
than 3 paired seeds: exploratory. A BN arm whose output still changes by more than
analysis.scale.not_invariant_above (default 1e-3) with ε → 0 is not scale-invariant at all
(e.g. BN after a sigmoid): refuted, whatever the margins say ("decided by epsilon-check").
--out writes plots of ‖W‖ and η/‖W‖² per arm and of the output change against α."""


def memory(cfg: Any, z: Sizes) -> MemoryParts:
    m = min(cfg.probe_size, z.n_train)
    return [("scale-check probes", 2 * m * z.act * F32 + 3 * z.params * F32, "analysis.scale.probe_size")]

ANALYSIS = Analysis(
    name="scale",
    command="scale-check",
    claims=("C6",),
    section="scale",
    options=(
        Option("alpha", ("--alpha",), list[float] | None, "analysis.scale.alphas",
               "Scale factor α for W; repeat for a grid (overrides analysis.scale.alphas).",
               to_spec=lambda v: list(v) if v else None),
        every_option("scale", "Record ‖W‖"),
        probe_size_option("scale"),
    ),
    plan_probes=plan_probes,
    summarize=summarize,
    render="bncli.render.scale",
    help=HELP,
    metrics=("growth_min", "growth_max", "cos_init", "cos_end", "out_rel", "ratio_dev", "bias_cancel_rel"),
    memory=memory,
    shrink=(("analysis.scale.probe_size", lambda c: {"probe_size": min(c.probe_size, 256)}),),
)


# its claims: what render, report, plot files and batch expectations read (bncli.claims)
CLAIMS = (
    ClaimInfo("C6", C6_STATEMENT, "scale", figure="bncli.render.figures_more:c6_figure", plot_name="scale",
              caption=("Left: relative output change when one layer's weight W is scaled by α, worst layer, at "
                       "initialization (dashed) and at the end (solid). Right: each layer's ‖W‖ relative to its "
                       'first measurement, one colour per layer, one line style per arm, mean over seeds.')),
)
