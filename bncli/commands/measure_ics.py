"""`bncli measure-ics`: both views of internal covariate shift (claims C2 and C3)."""

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
    typer.Option("--every", help="Measure every N steps and at the last one (analysis.ics.every)."),
]
LayersOpt = Annotated[
    str | None,
    typer.Option("--layers", help="Comma-separated normalization points, e.g. layer1,layer3 "
                                  "(analysis.ics.layers; default: all)."),
]
GradOpt = Annotated[
    bool | None,
    typer.Option("--gradient-ics/--no-gradient-ics",
                 help="Measure Santurkar's gradient ICS (C3) too (analysis.ics.gradient_ics)."),
]


def _layer_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    return names or None


def measure_ics(
    spec_path: SpecArg,
    every: EveryOpt = None,
    layers: LayersOpt = None,
    gradient_ics: GradOpt = None,
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
    """Train every arm and measure internal covariate shift both ways; test claims C2 and C3.

    C2 (Ioffe): at each normalization point, on a fixed probe batch in training mode, the input to
    the nonlinearity (BN's output on BN arms; BN's input is shown too): mean, variance, 15/50/85th
    percentiles of a few units, and the one-step shifts |Δμ|, |Δσ²| and 1-Wasserstein between the
    distribution at θ_t and θ_{t+1}. C3 (Santurkar Def. 2.1): per layer, G = ∇_{W_i} L and G' =
    the same gradient after every earlier layer took this step's real update; ‖G − G'‖,
    ‖G − G'‖/‖G‖ and cos(G, G'). Add noisy_batchnorm / noisy_plain arms with --arms.

    Verdicts, per learning rate and BN arm against the plain arm (means over layers and
    measurement steps, then seeds): C2 'BN keeps distributions stable' is supported when BN's
    mean |Δμ|, |Δσ²| and W1 shift are all lower than plain's by more than the margin (default 10%,
    verdict.margin), refuted when all are higher. C3 'BN does not reduce gradient ICS' is
    supported when BN's ‖G − G'‖/‖G‖ AND its misalignment 1 − cos(G, G') are both higher than
    plain's by the margin (BN's gradient ICS is larger), refuted when both point the other way
    (BN reduces it); means over layers 2..k (layer 1 has no earlier layers, so G' = G there);
    cos and the absolute ‖G − G'‖ are shown but not judged. Otherwise inconclusive;
    with >= 3 seeds each metric must also pass Welch's t-test (p < 0.05). Diverged runs are left
    out of the verdict. Exit codes: 0 done, 1 run failed, 2 bad spec or usage, 130 interrupted.
    """
    opts = CommonOptions(steps, lr, seeds, seed, device, arms, batch_size, json, out, quiet, threads)
    with guarded(spec_path):
        from bncli.probes.ics import run_ics
        from bncli.render.ics import render_ics, write_ics_files

        spec = load(spec_path, opts, extra={
            "analysis.ics.every": every,
            "analysis.ics.layers": _layer_list(layers),
            "analysis.ics.gradient_ics": gradient_ics,
        })
        with reporter(opts) as rep:
            result = run_ics(spec, rep)
        finish(result, render_ics(spec, result), opts, lambda d: write_ics_files(spec, result, d))
