"""Benchmark: `bncli scale-check`'s static check (all α and layers) and its overhead on training.

For each spec (default: every sample config), on the spec's initial model of each arm:
the wall time of one static check (median of several repeats; the goal is under 5 s on 2 CPU
cores), and the whole run with the ScaleProbe against the same run without it (interleaved
repeats, median; the ratio is printed).

    python benchmarks/bench_scale.py [SPEC ...] [--repeats N] [--steps N] [--threads N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _timing import interleaved_medians, median_time

from bncli.data import load_data
from bncli.models import loss_fn_for
from bncli.probes.scale import ScaleProbe, scale_layers
from bncli.probes.scale_static import static_check
from bncli.runner.build import build_arm_model, initial_model
from bncli.spec import apply_overrides, load_spec
from bncli.train import train_run

ROOT = Path(__file__).resolve().parent.parent


def bench_spec(path: str, repeats: int, steps: int | None) -> tuple[float, float, float]:
    """Print per-arm figures; return (worst static-check median, probe run total, plain total)."""
    spec = apply_overrides(load_spec(path), {"device": "cpu", "train.steps": steps})
    cfg = spec.analysis.scale
    data = load_data(spec.data)
    lr, seed = spec.train.lr[0], spec.seed
    init = initial_model(spec, data, seed)
    layers = scale_layers(spec)
    x, y = data.probe_batch(cfg.probe_size)
    worst, tot_with, tot_without = 0.0, 0.0, 0.0
    for arm in spec.arms:
        model = build_arm_model(spec, arm, init, data, seed)
        run = (model, x, y, loss_fn_for(data.task), cfg.alphas, layers, cfg.tolerance)
        c = median_time(lambda r=run: static_check(*r), repeats, warmup=False)

        def with_probe(arm=arm):
            m, probe = build_arm_model(spec, arm, init, data, seed), ScaleProbe(cfg, spec.train, lr, data, layers)
            return lambda: train_run(m, data, arm, spec.train, lr, seed, [probe])

        def without(arm=arm):
            m = build_arm_model(spec, arm, init, data, seed)
            return lambda: train_run(m, data, arm, spec.train, lr, seed)

        t = interleaved_medians({"probe": with_probe, "train": without}, repeats)
        a, b = t["probe"], t["train"]
        worst, tot_with, tot_without = max(worst, c), tot_with + a, tot_without + b
        print(
            f"{Path(path).stem:>24} {arm.name:>16}: static check {c:.3f} s ("
            f"{len(layers)} layers x {len(cfg.alphas)} α); run with probe {a:.3f} s / without "
            f"{b:.3f} s = ratio {a / b:.3f} ({spec.train.steps} steps, every {cfg.every})"
        )
    return worst, tot_with, tot_without


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("specs", nargs="*")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    specs = args.specs or sorted(str(p) for p in (ROOT / "sample_configs").glob("*.yaml"))
    print(f"torch threads {torch.get_num_threads()}, median of {args.repeats} (shared: noisy)")
    worst, a, b = 0.0, 0.0, 0.0
    for s in specs:
        w, x, y = bench_spec(s, args.repeats, args.steps)
        worst, a, b = max(worst, w), a + x, b + y
    print(f"slowest static check (median): {worst:.3f} s (goal < 5 s)")
    print(f"overall ratio scale-check run / train run: {a / b:.3f}")


if __name__ == "__main__":
    main()
