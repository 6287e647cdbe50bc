"""Benchmark: `bncli saturation`'s probe overhead against plain `train` (the same loop, no probe).

Same spec, arms, init, batches and steps; the probe at the spec's cadence (default every 50
steps). Whole run per arm, median of several interleaved repeats. Prints the ratio
with-probe / without (goal <= 1.20).

    python benchmarks/bench_saturation.py [SPEC] [--repeats N] [--steps N] [--every N] [--threads N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _timing import interleaved_medians

from bncli.data import load_data
from bncli.probes.saturation import make_probe
from bncli.runner.build import build_arm_model, initial_model
from bncli.spec import apply_overrides, load_spec
from bncli.train import train_run

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec", nargs="?", default=str(ROOT / "sample_configs/mlp_sigmoid_digits.yaml"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--every", type=int, default=None)
    # one thread by default: on a loaded machine multi-threaded ops stall on busy cores, which
    # punishes the probe's larger batch far more than the loop's small ones (noise, not cost)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = load_spec(args.spec)
    over = {"device": "cpu", "train.steps": args.steps, "analysis.saturation.every": args.every}
    spec = apply_overrides(spec, over)
    data = load_data(spec.data)
    lr, seed = spec.train.lr[0], spec.seed
    init = initial_model(spec, data, seed)
    totals = [0.0, 0.0]
    for arm in spec.arms:

        def with_probe(arm=arm):
            m, probes = build_arm_model(spec, arm, init, data, seed), [make_probe(spec, arm, lr, seed, data)]
            return lambda: train_run(m, data, arm, spec.train, lr, seed, probes)

        def without(arm=arm):
            m = build_arm_model(spec, arm, init, data, seed)
            return lambda: train_run(m, data, arm, spec.train, lr, seed)

        t = interleaved_medians({"probe": with_probe, "train": without}, args.repeats)
        a, b = t["probe"], t["train"]
        totals[0] += a
        totals[1] += b
        print(
            f"{arm.name:>18}: with probe {a:.3f} s, train {b:.3f} s, ratio {a / b:.3f} "
            f"({spec.train.steps} steps, every {spec.analysis.saturation.every}, "
            f"probe batch {spec.analysis.saturation.probe_size}, median of {args.repeats}, "
            f"{torch.get_num_threads()} threads)"
        )
    print(f"overall ratio saturation / train: {totals[0] / totals[1]:.3f} (goal <= 1.20)")


if __name__ == "__main__":
    main()
