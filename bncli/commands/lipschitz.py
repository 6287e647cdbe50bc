"""`bncli lipschitz`: is the loss landscape smoother with BN (C4), and BN's Jacobian (C5)."""

from __future__ import annotations

from typing import Annotated, Literal

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
    int | None, typer.Option("--every", help="Measure every N steps (analysis.lipschitz.every).")
]
EtaRangeOpt = Annotated[
    tuple[float, float] | None,
    typer.Option("--eta-range", help="LOW HIGH: the eta' grid in multiples of the learning rate "
                 "(analysis.lipschitz.eta_range; default 0.5 4).", show_default=False),
]
EtaPointsOpt = Annotated[
    int | None, typer.Option("--eta-points", help="Points on the eta' grid (default 8).")
]
HessianOpt = Annotated[
    bool | None,
    typer.Option("--hessian/--no-hessian", help="Also the top Hessian eigenvalue (power "
                 "iteration on Hessian-vector products).", show_default=False),
]
HessianItersOpt = Annotated[
    int | None, typer.Option("--hessian-iters", help="Power-iteration cap (default 20).")
]
HessianTolOpt = Annotated[
    float | None,
    typer.Option("--hessian-tol", help="Stop when the eigenvalue estimate changes by less than "
                 "this, relative (default 1e-3)."),
]
BnModeOpt = Annotated[
    Literal["train", "eval"] | None,
    typer.Option("--bn-mode", help="train: batch statistics, what SGD optimizes (default); "
                 "eval: the inference network (running statistics, no noise), its own gradient."),
]


def lipschitz(
    spec_path: SpecArg,
    every: EveryOpt = None,
    eta_range: EtaRangeOpt = None,
    eta_points: EtaPointsOpt = None,
    hessian: HessianOpt = None,
    hessian_iters: HessianItersOpt = None,
    hessian_tol: HessianTolOpt = None,
    bn_mode: BnModeOpt = None,
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
    """Measure the loss landscape along the gradient (C4) and check BN's Jacobian (C5).

    Every N steps of real training, before the update, on that step's batch: the loss
    L(theta - eta' g) on a grid of step lengths eta' (multiples of the lr), the gradient
    predictiveness ||g - grad L(theta - eta' g)||, the effective beta-smoothness
    max ||g - grad L(theta - eta' g)|| / ||eta' g||, ||g|| and (--hessian) the top Hessian
    eigenvalue. On BN arms: autograd's Jacobian of each BN layer against
    (1/sigma)(I - 11^T/m - y^y^T/m), orthogonality of dL/dx to 1 and y^, Santurkar Thm 4.1.
    Measuring changes nothing: training ends in the same weights as `bncli train`.

    C4 verdict (per lr, BN arm vs plain): supported when the BN arm's loss variation, gradient
    predictiveness and effective beta (each the mean over measurement steps, then over seeds)
    are all lower than the plain arm's by more than the margin (default 10%, verdict.margin),
    refuted when all are higher by the margin, else inconclusive; with >= 3 seeds each must
    also pass Welch's t-test (p < 0.05). A non-finite loss or gradient anywhere on the grid
    makes that arm's metrics inf: if only one arm blew up the verdict goes against it. The
    result depends on the lr: Santurkar measure near the plain net's edge of stability.
    C5 verdict (per lr, BN arm; a maths check): supported when autograd's Jacobian and backward
    pass match the closed forms within analysis.lipschitz.jacobian_tol (default 1e-4, relative,
    float32) on every BN layer at every measured step, refuted otherwise (a non-finite error
    refutes).
    Exit codes: 0 done, 1 run failed, 2 bad spec or usage, 130 interrupted.
    """
    opts = CommonOptions(steps, lr, seeds, seed, device, arms, batch_size, json, out, quiet, threads)
    with guarded(spec_path):
        from bncli.probes.landscape_run import run_lipschitz
        from bncli.render.landscape import render_lipschitz, write_lipschitz_files

        extra = {
            "analysis.lipschitz.every": every,
            "analysis.lipschitz.eta_range": list(eta_range) if eta_range else None,
            "analysis.lipschitz.eta_points": eta_points,
            "analysis.lipschitz.hessian": hessian,
            "analysis.lipschitz.hessian_iters": hessian_iters,
            "analysis.lipschitz.hessian_tol": hessian_tol,
            "analysis.lipschitz.bn_mode": bn_mode,
        }
        spec = load(spec_path, opts, extra=extra)
        with reporter(opts) as rep:
            result = run_lipschitz(spec, rep)
        finish(result, render_lipschitz(spec, result), opts,
               lambda d: write_lipschitz_files(spec, result, d))
