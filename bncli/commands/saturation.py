"""`bncli saturation`: saturation, dead units, vanishing gradients and what γ/β do (C7, C8)."""

from __future__ import annotations

from typing import Annotated

import typer

from bncli.commands._common import (
    ArmsOpt,
    BatchSizeOpt,
    CommonOptions,
    DeviceOpt,
    JsonOpt,
    LrOpt,
    OutOpt,
    QuietOpt,
    SeedOpt,
    SeedsOpt,
    SpecArg,
    StepsOpt,
    ThreadsOpt,
    finish,
    guarded,
    load,
    reporter,
)

EveryOpt = Annotated[
    int | None,
    typer.Option("--every", help="Measure every N steps (overrides analysis.saturation.every)."),
]
ThresholdOpt = Annotated[
    float | None,
    typer.Option(
        "--threshold",
        help="Sigmoid/tanh unit value counts as saturated when its derivative is below this "
        "fraction of the maximum derivative (overrides analysis.saturation.threshold).",
    ),
]


def saturation(
    spec_path: SpecArg,
    every: EveryOpt = None,
    threshold: ThresholdOpt = None,
    steps: StepsOpt = None,
    lr: LrOpt = None,
    seeds: SeedsOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    arms: ArmsOpt = None,
    batch_size: BatchSizeOpt = None,
    json: JsonOpt = False,
    out: OutOpt = None,
    quiet: QuietOpt = False,
    threads: ThreadsOpt = None,
) -> None:
    """Track saturation, dead units, per-layer gradients (C7) and BN's γ/β (C8) while training.

    Every N steps, on a fixed probe batch (the first analysis.saturation.probe_size training
    examples) in training mode (BN uses the probe batch's statistics; running statistics are not
    touched), per layer and arm: the fraction of pre-activations with |x| <= 2 (the bound is
    analysis.saturation.linear_bound); for sigmoid/tanh the saturated fraction (values whose
    derivative is below --threshold x its maximum); for ReLU the active fraction and dead units
    (inactive on every probe example); ‖∇W_i‖ on the step's batch and the first/last ratio; for
    BN layers β mean/spread, share of β > 0, γ spread and the relative distance of (γ, β) from the
    identity-recovery point (σ, μ) of BN's input. Step 0 gives the deep-net initialization view:
    gradient growth per layer toward the input.

    Verdict rule (per learning rate, BN arm vs plain for C7; affine BN vs batchnorm_noaffine for
    C8; each metric is the mean over measurement steps and layers, then over seeds):
    C7 metrics: sigmoid/tanh: saturated fraction lower and the fraction with |x| > 2 lower; ReLU:
    dead-unit fraction lower; all: |log10(‖∇W_1‖/‖∇W_k‖)| lower. C8 metrics: final train loss
    lower, best held-out error (or MSE) lower, plus ReLU active fraction higher or, for
    sigmoid/tanh, the fraction with |x| > 2 higher (out of the linear regime). Fractions within
    0.5 percentage points of each other count as neither way. Supported when every metric points the claimed way
    by more than the margin (default 10%, verdict.margin), refuted when every one points the other
    way, else inconclusive; with >= 3 seeds each must also pass Welch's t-test (p < 0.05). The
    sign of β and the identity-recovery distance are reported in the C8 note, not voted on.
    Exit codes: 0 done, 1 run failed, 2 bad spec or usage, 130 interrupted.
    """
    opts = CommonOptions(steps, lr, seeds, seed, device, arms, batch_size, json, out, quiet, threads)
    with guarded(spec_path):
        from bncli.probes.saturation import run_saturation
        from bncli.render.saturation import render_saturation, write_saturation_files

        spec = load(
            spec_path,
            opts,
            extra={"analysis.saturation.every": every, "analysis.saturation.threshold": threshold},
        )
        with reporter(opts) as rep:
            result = run_saturation(spec, rep)
        finish(
            result,
            render_saturation(spec, result),
            opts,
            lambda d: write_saturation_files(spec, result, d),
        )
