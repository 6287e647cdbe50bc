"""`bncli scale-check`: BN's scale invariance BN(αWx) = BN(Wx), model and training (C6)."""

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

AlphaOpt = Annotated[
    list[float] | None,
    typer.Option("--alpha", help="Scale factor α for W; repeat for a grid (overrides analysis.scale.alphas)."),
]
EveryOpt = Annotated[
    int | None,
    typer.Option("--every", help="Record ‖W‖ every N steps (overrides analysis.scale.every)."),
]


def scale_check(
    spec_path: SpecArg,
    alpha: AlphaOpt = None,
    every: EveryOpt = None,
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
    r"""Test claim C6: a BN network ignores the scale of each weight W feeding a BN.

    At initialization and at the end of training, for every layer and every α on the grid,
    W_i ← α·W_i (its bias is not scaled: BN's mean subtraction cancels it) with BN in training
    mode; reports the change of the output and loss, α·‖∇_{αW}L‖/‖∇_W L‖ (1 when ∇ scales as 1/α),
    cos(∇\_W L, W), the same with ε → 0 and in eval mode, and where BN's ε breaks invariance
    (α²σ² comparable to ε). Over training: ‖W_i‖, the effective step η/‖W_i‖² and, under plain
    SGD, ‖W\_{t+1}‖² − ‖W_t‖² against η²‖∇L‖². The model is restored bitwise after each check.
    Verdict rule (per learning rate, each BN arm vs the plain arm, metrics: worst relative output
    change over α in analysis.scale.verdict_alpha_range (default 0.01…100), worst |α·ratio − 1|,
    worst |cos(∇\_W L, W)|, each the mean of the init and end checks): supported when every metric
    is lower for the BN arm by more than the margin (default 10%, verdict.margin), refuted when
    every metric is higher by the margin, else inconclusive; with >= 3 seeds each metric must also
    pass Welch's t-test (p < 0.05). A BN arm whose output still changes by more than
    analysis.scale.not_invariant_above (default 1e-3) with ε → 0 is not scale-invariant at all
    (e.g. BN after a sigmoid): refuted, whatever the margins say.
    --out writes plots of ‖W‖ and η/‖W‖² per arm and of the output change against α.
    Exit codes: 0 done, 1 run failed, 2 bad spec or usage, 130 interrupted.
    """
    opts = CommonOptions(steps, lr, seeds, seed, device, arms, batch_size, json, out, quiet, threads)
    with guarded(spec_path):
        from bncli.probes.scale import run_scale_check
        from bncli.render.scale import render_scale, write_scale_files

        spec = load(
            spec_path,
            opts,
            extra={
                "analysis.scale.alphas": list(alpha) if alpha else None,
                "analysis.scale.every": every,
            },
        )
        with reporter(opts) as rep:
            result = run_scale_check(spec, rep)
        finish(result, render_scale(spec, result), opts, lambda d: write_scale_files(spec, result, d))
