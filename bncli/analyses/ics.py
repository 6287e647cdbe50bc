"""The `measure-ics` analysis (C2, C3): per layer x arm rows and the C2 / C3 claims (SCIENCE.md)."""

from __future__ import annotations

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
from bncli.results import Claim, RunRecord, mean_std
from bncli.spec import Spec
from bncli.stats import finite_mean, fmt
from bncli.verdicts import MetricInput, by_arm_lr, claim_pairs, make_claim, seeds_of

C2_STATEMENT = (
    "BN keeps each layer's input distribution stable (Ioffe & Szegedy 2015): the input to the "
    "nonlinearity shifts less from step to step with BN"
)
C3_STATEMENT = (
    "BN does not reduce internal covariate shift (Santurkar et al. 2018, Def. 2.1): with BN, "
    "‖G − G′‖/‖G‖ is not smaller and cos(G, G′) not larger than without"
)
FIRST_LAYER_NOTE = "layer 1 is left out: with no earlier layers G′ = G there by definition"
# C2 is judged on what normalization does not fix by construction (SCIENCE.md C2): in training
# mode BN's output has per-unit batch mean β and variance γ² on any batch, so |Δμ| and |Δσ²| there
# follow γ and β only. They are reported (tables, notes), not judged.
C2_METRICS = (("w1", "W1 shift per step (per unit)"),
              ("d_pct", "15/50/85th percentile shift per step (tracked units)"))
# noise floor of the shift metrics (absolute, in activation units): float32 round-off of O(1)
# pre-activations; a difference of the means below it points neither way
SHIFT_FLOOR = 1e-6
C2_SHOWN = (("d_mean", "|Δμ|"), ("d_var", "|Δσ²|"))
# the C3 verdict uses the relative difference: ‖G − G′‖ alone scales with the gradient, which BN
# rescales (scale invariance), so it would compare gradient sizes rather than shifts. Alignment is
# judged as the misalignment 1 − cos(G, G′): cos sits near 1, where a 10% relative margin on cos
# itself could never be met, while the misalignment's ratio between arms is what differs.
C3_METRICS = (("rel_diff", "‖G − G′‖/‖G‖", "higher"), ("misalign", "1 − cos(G, G′) (misalignment)", "higher"))
DIST_COLUMNS = ("mean", "var", "d_mean", "d_var", "w1", "d_pct", "pct_drift")
GRAD_COLUMNS = ("g_norm", "diff_norm", "rel_diff", "cos")


def percentile_drift(site: dict[str, Any]) -> float:
    """Mean over tracked units and 15/50/85th percentiles of |last − first| over the run."""
    drifts = [abs(s[-1] - s[0]) for series in site["percentiles"].values() for s in series if s]
    return finite_mean(drifts)


def site_metric(site: dict[str, Any], metric: str) -> float:
    """Mean over measurement steps of one distribution metric (or the run's percentile drift)."""
    return percentile_drift(site) if metric == "pct_drift" else finite_mean(site[metric])


def run_dist_mean(r: RunRecord, metric: str, site: str = "preact") -> float:
    """Mean over measured layers (each a mean over steps) of one C2 metric at one site."""
    per_layer = r.probes.get("ics_dist", {}).get("per_layer", {})
    return finite_mean([site_metric(d[site], metric) for d in per_layer.values()])


def c3_layers(probe: dict[str, Any]) -> list[str]:
    """The measured layers that C3 uses: all but the network's first (G′ ≡ G there)."""
    first = probe.get("first_layer", "layer1")
    return [layer for layer in probe.get("layers", []) if layer != first]


def run_grad_mean(r: RunRecord, metric: str) -> float:
    """Mean over the C3 layers (each a mean over steps) of one C3 metric; `misalign` is 1 − cos."""
    probe = r.probes.get("ics_grad", {})
    per_layer = probe.get("per_layer", {})
    if metric == "misalign":
        return 1.0 - run_grad_mean(r, "cos")
    return finite_mean([finite_mean(per_layer[layer][metric]) for layer in c3_layers(probe)])


def _shows_bn_input(spec: Spec, arm: str) -> bool:
    a = spec.arm(arm)
    # elsewhere BN's input is the same tensor as the preact (weight norm has no module after W)
    return (a.normalized and a.norm_info.reparametrize is None) or a.noisy


def layer_rows(spec: Spec, records: Sequence[RunRecord]) -> dict[str, list[dict[str, Any]]]:
    """Per (lr, arm, layer[, site]): each metric's mean over steps, then mean ± std over seeds."""
    dist_rows: list[dict[str, Any]] = []
    grad_rows: list[dict[str, Any]] = []
    for (arm, lr), rs in by_arm_lr(records).items():
        base = {"lr": lr, "arm": arm, "n_seeds": len(rs), "n_diverged": sum(r.diverged for r in rs),
                "final_train_loss": mean_std([r.final_train_loss for r in rs])}
        dist = [r.probes.get("ics_dist", {}) for r in rs]
        layers = dist[0].get("layers", []) if dist else []
        sites = ["preact", "bn_in", "preact_eval"] if _shows_bn_input(spec, arm) else ["preact"]
        for layer in layers:
            for site in sites:
                row = {**base, "layer": layer, "site": site}
                for m in DIST_COLUMNS:
                    row[m] = mean_std([site_metric(p["per_layer"][layer][site], m) for p in dist])
                dist_rows.append(row)
        grads = [r.probes.get("ics_grad", {}) for r in rs]
        for layer in c3_layers(grads[0]) if grads else []:
            row = {**base, "layer": layer}
            for m in GRAD_COLUMNS:
                row[m] = mean_std([finite_mean(g["per_layer"][layer][m]) for g in grads])
            grad_rows.append(row)
    return {"distribution": dist_rows, "gradient": grad_rows}


def _bn_output_note(spec: Spec, arm: str) -> list[str]:
    """Why C2's means and variances of BN's output say little: they are fixed by construction."""
    a = spec.arm(arm)
    if not a.normalized or a.position != "pre":
        return []
    note = a.norm_info.ics_note  # each normalization's entry says what it fixes (bncli.norms)
    return note(a) if note is not None else []


def c2_claims(spec: Spec, records: Sequence[RunRecord]) -> list[Claim]:
    """C2 per learning rate and normalized arm: one-step shifts of the nonlinearity's input, judged
    on the W1 shift and the tracked percentiles' shift (not fixed by construction), training mode."""
    out = []
    for lr, arm, base, a, b, notes in claim_pairs(spec, records):
        metrics = [
            MetricInput(f"mean {label}", "lower",
                        [run_dist_mean(r, m) for r in a], [run_dist_mean(r, m) for r in b],
                        SHIFT_FLOOR, "mean")
            for m, label in C2_METRICS
        ]
        notes.append("input to the nonlinearity on a fixed probe batch in training mode; mean over "
                     f"layers and every {spec.analysis.ics.every} steps")
        shown = ", ".join(
            f"{label} {fmt(finite_mean([run_dist_mean(r, m) for r in a]))} ({arm}) vs "
            f"{fmt(finite_mean([run_dist_mean(r, m) for r in b]))} ({base})" for m, label in C2_SHOWN)
        notes.append(f"not judged (fixed by construction for BN in training mode): {shown}")
        if _shows_bn_input(spec, arm):
            ev = ", ".join(
                f"{label} {fmt(finite_mean([run_dist_mean(r, m, 'preact_eval') for r in a]))} ({arm}) vs "
                f"{fmt(finite_mean([run_dist_mean(r, m, 'preact') for r in b]))} ({base})"
                for m, label in C2_METRICS)
            notes.append(f"eval mode (running statistics, what the trained net uses): {ev}")
        notes += _bn_output_note(spec, arm)
        out.append(make_claim("C2", C2_STATEMENT, lr, arm, base, metrics, spec.verdict,
                              "; ".join(notes), seeds=seeds_of(a), runs=(a, b)))
    return out


def c3_claims(spec: Spec, records: Sequence[RunRecord]) -> list[Claim]:
    """C3 per learning rate and BN arm: 'supported' when BN's gradient ICS is the larger."""
    if not spec.analysis.ics.gradient_ics:
        return []
    out = []
    for lr, arm, base, a, b, notes in claim_pairs(spec, records):
        metrics = [
            MetricInput(f"mean {label}", better,
                        [run_grad_mean(r, m) for r in a], [run_grad_mean(r, m) for r in b],
                        SHIFT_FLOOR, "mean")
            for m, label, better in C3_METRICS
        ]
        abs_a = finite_mean([run_grad_mean(r, "diff_norm") for r in a])
        abs_b = finite_mean([run_grad_mean(r, "diff_norm") for r in b])
        cos_a = finite_mean([run_grad_mean(r, "cos") for r in a])
        cos_b = finite_mean([run_grad_mean(r, "cos") for r in b])
        notes.append(f"cos(G, G′) {cos_a:.4g} ({arm}) vs {cos_b:.4g} ({base}), judged as 1 − cos; "
                     f"absolute ‖G − G′‖ {abs_a:.4g} ({arm}) vs {abs_b:.4g} ({base}), not judged: "
                     "it scales with ‖G‖; refuted would mean BN reduces gradient ICS")
        notes.append(FIRST_LAYER_NOTE)
        out.append(make_claim("C3", C3_STATEMENT, lr, arm, base, metrics, spec.verdict,
                              "; ".join(notes), seeds=seeds_of(a), runs=(a, b)))
    return out


def layer_list(text: str | None) -> list[str] | None:
    """--layers layer1,layer3 -> ["layer1", "layer3"] (None when empty)."""
    if text is None:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    return names or None


def plan_probes(spec: Spec, arm: Any) -> tuple[str, ...]:
    """The distribution probe (C2) and, unless switched off, the gradient-ICS probe (C3) (C9 adds
    the landscape probe on the arms it compares: bncli.analyses.c9)."""
    return ("ics_dist", "ics_grad") if spec.analysis.ics.gradient_ics else ("ics_dist",)


def summarize(spec: Spec, records: Sequence[RunRecord], data: DataInfo) -> Summary:
    claims = c2_claims(spec, records) + c3_claims(spec, records)
    return Summary(claims, {"ics_rows": layer_rows(spec, records)})


HELP = """Train every arm and measure internal covariate shift both ways; test claims C2 and C3.

C2 (Ioffe): at each normalization point, on a fixed probe batch in training mode, the input to
the nonlinearity (BN's output on BN arms; BN's input is shown too): mean, variance, 15/50/85th
percentiles of a few units, and the one-step shifts |Δμ|, |Δσ²| and 1-Wasserstein between the
distribution at θ_t and θ_{t+1}. C3 (Santurkar Def. 2.1): per layer, G = ∇_{W_i} L and G' =
the same gradient after every earlier layer took this step's real update; ‖G − G'‖,
‖G − G'‖/‖G‖ and cos(G, G'). Add noisy_batchnorm / noisy_plain arms with --arms.

Verdicts, per learning rate and BN arm against the plain arm, paired by seed (means over
layers and measurement steps per run). C2 'BN keeps distributions stable' is judged on what BN
does not fix by construction: the W1 shift per step of each unit's distribution and the
15/50/85th percentile shift per step of the tracked units; supported when both are lower with
BN by more than the margin (default 10%, verdict.margin), refuted when both are higher. |Δμ|
and |Δσ²| are shown, not judged: in training mode BN's output has mean β and variance ≈ γ² on
any batch. C3 'BN does not reduce gradient ICS' is supported when BN's ‖G − G'‖/‖G‖ AND its
misalignment 1 − cos(G, G') are both higher than plain's by the margin (BN's gradient ICS is
larger), refuted when both point the other way (BN reduces it); layers 2..k (layer 1 has no
earlier layers, so G' = G there); cos and the absolute ‖G − G'‖ are shown but not judged.
Per metric, one-sided paired t-tests of the log ratio against the margin; a claim holds a side
when every metric does, with p adjusted by Holm across the command's claims < 0.05; otherwise
inconclusive. Fewer than 3 paired seeds: exploratory.
A diverged seed counts against its arm."""


def memory(cfg: Any, z: Sizes) -> MemoryParts:
    """The probe batch's activations and gradients, and copies of the parameters."""
    m = min(cfg.probe_size, z.n_train)
    return [("measure-ics probes", 2 * m * z.act * F32 + 3 * z.params * F32, "analysis.ics.probe_size")]

ANALYSIS = Analysis(
    name="ics",
    command="measure-ics",
    claims=("C2", "C3", "C9"),
    section="ics",
    options=(
        every_option("ics"),
        probe_size_option("ics"),
        Option("layers", ("--layers",), str | None, "analysis.ics.layers",
               "Comma-separated normalization points, e.g. layer1,layer3 (analysis.ics.layers; "
               "default: all).", to_spec=layer_list),
        Option("gradient_ics", ("--gradient-ics/--no-gradient-ics",), bool | None,
               "analysis.ics.gradient_ics",
               "Measure Santurkar's gradient ICS (C3) too (analysis.ics.gradient_ics)."),
    ),
    plan_probes=plan_probes,
    summarize=summarize,
    render="bncli.render.ics",
    help=HELP,
    metrics=("d_mean", "d_var", "w1", "pct_drift", "mean", "var", "g_norm", "diff_norm", "rel_diff", "cos"),
    memory=memory,
    shrink=(("analysis.ics.probe_size", lambda c: {"probe_size": min(c.probe_size, 256)}),),
    budgeted=True,
)


# its claims: what render, report, plot files and batch expectations read (bncli.claims)
CLAIMS = (
    ClaimInfo("C2", C2_STATEMENT, "ics", figure="bncli.render.figures:c2_figure", plot_name="distribution_shift",
              caption=("Bands: 15th–85th percentile of each tracked unit's activation input on a fixed probe "
                       'batch, line: median (first seed; Ioffe & Szegedy Fig 1). Right: 1-Wasserstein shift per '
                       'step, mean over layers, mean ± std over seeds.')),
    ClaimInfo("C3", C3_STATEMENT, "ics", figure="bncli.render.figures:c3_figure", plot_name="gradient_ics",
              caption=("G = ∇_W L at θ_t, G′ the same after every earlier layer took this step's update "
                       '(Santurkar Def. 2.1); layer 1 is left out (G′ = G there). Mean ± std over seeds.')),
)
