"""`bncli train`: paired trainings with and without BN (claim C1)."""

from __future__ import annotations

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


def train(
    spec_path: SpecArg,
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
    """Train every arm (same init, same batches) at every learning rate and seed; test claim C1.

    Prints a table per learning rate x arm (final train loss, held-out accuracy or MSE, steps to
    the target, divergence), BN-minus-plain lines, and a C1 verdict per learning rate and BN arm.

    Verdict rule: the metrics are the final train loss, the best held-out error (or MSE), the
    steps to the target (a run that never reaches it counts one evaluation past the budget) and,
    when any run diverged, the fraction of seeds that diverged. Supported when every metric
    favours the BN arm by more than the margin (default 10%, verdict.margin), refuted when every
    metric favours the plain arm by the margin, else inconclusive; with >= 3 seeds each metric
    must also pass Welch's t-test (p < 0.05). If exactly one arm diverged at every seed, that
    alone decides.

    Exit codes: 0 done (diverged arms are reported), 1 run failed, 2 bad spec or usage,
    130 interrupted (finished runs are still reported).
    """
    opts = CommonOptions(steps, lr, seeds, seed, device, arms, batch_size, json, out, quiet, threads)
    with guarded(spec_path):
        from bncli.experiment import run_train
        from bncli.render.train import render_train, write_train_files

        spec = load(spec_path, opts)
        with reporter(opts) as rep:
            result = run_train(spec, rep)
        finish(result, render_train(spec, result), opts, lambda d: write_train_files(spec, result, d))
