"""Benchmark measure-ics: batched G' (vmap) against the per-layer loop, and probe overhead.

1. G' for every layer on real training states (θ_t, θ_{t+1}) of each arm: the batched path the
   probe uses (gprime_shared), a plain vmap over full parameter mixes (gprime_batched) and the
   per-layer loop (gprime_loop); same numbers (max difference relative to max |G'| printed),
   median time of several repeats, ratio loop / batched (goal >= 2).
2. A whole training run with the ICS probes at the spec's default cadence against the same run
   without probes; median of several repeats, ratio (goal <= 1.5).

    python benchmarks/bench_ics.py [SPEC ...] [--repeats N] [--steps N] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from _timing import interleaved_medians, timed

from bncli.probes.base import ProbeBase
from bncli.probes.ics import ics_probes
from bncli.probes.ics_grad import gprime_batched, gprime_loop, gprime_shared
from bncli.runner.build import build_arm_model, initial_model, prepare
from bncli.spec import Spec, apply_overrides, load_spec
from bncli.train import train_run

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPECS = [ROOT / "sample_configs/deep_linear.yaml",
                 ROOT / "sample_configs/mlp_sigmoid_digits.yaml"]


class GPrimeTimer(ProbeBase):
    """At each due step, time both G' paths on the real (θ_t, θ_{t+1}) and compare them."""

    name = "bench"

    def __init__(self, every: int, repeats: int) -> None:
        super().__init__(every)
        self.repeats = repeats
        self.times: dict[str, list[float]] = {"shared": [], "vmap": [], "loop": []}
        self.max_diff = 0.0

    def before_update(self, ctx) -> None:
        self.old = {n: p.detach().clone() for n, p in ctx.run.model.named_parameters()}

    def after_update(self, ctx) -> None:
        model = ctx.run.model
        layers = model.point_names[1:]  # the probe skips layer 1 (G' = G there)
        new = {n: p.detach() for n, p in model.named_parameters()}
        args = (model, ctx.run.loss_fn, ctx.x, ctx.y, self.old, new, ctx.buffers_before, layers)
        outs = {}
        for label, fn in (("shared", gprime_shared), ("vmap", gprime_batched), ("loop", gprime_loop)):
            for _ in range(self.repeats):
                dt, outs[label] = timed(lambda f=fn: f(*args))
                self.times[label].append(dt)
        # relative to the gradient's size: float32 sums over 1,000 examples differ in the last bits
        for label in ("shared", "vmap"):
            for n in layers:
                scale = max(float(outs["loop"][n].abs().max()), 1e-12)
                err = float((outs[label][n] - outs["loop"][n]).abs().max()) / scale
                self.max_diff = max(self.max_diff, err)


def bench_gprime(spec: Spec, repeats: int) -> None:
    data, _ = prepare(spec)
    init = initial_model(spec, data, spec.seed)
    lr = spec.train.lr[0]
    steps = min(spec.train.steps, 101)
    train = spec.train.model_copy(update={"steps": steps})
    for arm in spec.arms:
        model = build_arm_model(spec, arm, init, data, spec.seed)
        timer = GPrimeTimer(50, repeats)
        train_run(model, data, arm, train, lr, spec.seed, [timer])
        t = {k: statistics.median(v) for k, v in timer.times.items()}
        print(f"  G' {arm.name:>16}: batched (shared prefix) {t['shared'] * 1e3:6.1f} ms, "
              f"plain vmap {t['vmap'] * 1e3:6.1f} ms, loop {t['loop'] * 1e3:6.1f} ms; "
              f"loop/batched {t['loop'] / t['shared']:4.2f}x, loop/vmap {t['loop'] / t['vmap']:4.2f}x, "
              f"max rel. diff {timer.max_diff:.1e} "
              f"({len(model.point_names) - 1} layers, batch {min(train.batch_size, data.n_train)})")


def bench_overhead(spec: Spec, repeats: int) -> None:
    data, _ = prepare(spec)
    init = initial_model(spec, data, spec.seed)
    lr = spec.train.lr[0]
    total = {"train": 0.0, "ics": 0.0}
    for arm in spec.arms:

        def run(with_probes: bool, arm=arm):
            model = build_arm_model(spec, arm, init, data, spec.seed)
            probes = ics_probes(spec, arm, lr, spec.seed, data) if with_probes else []
            return lambda: train_run(model, data, arm, spec.train, lr, spec.seed, probes)

        t = interleaved_medians({"ics": lambda: run(True), "train": lambda: run(False)}, repeats)
        a, b = t["ics"], t["train"]
        total["ics"] += a
        total["train"] += b
        print(f"  run {arm.name:>15}: with ICS probes {a:6.2f} s, train only {b:6.2f} s, "
              f"ratio {a / b:4.2f}x (every {spec.analysis.ics.every} of {spec.train.steps} steps)")
    print(f"  overall overhead measure-ics / train: {total['ics'] / total['train']:.2f}x "
          "(goal <= 1.5)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("specs", nargs="*", default=[str(p) for p in DEFAULT_SPECS])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    for path in args.specs:
        spec = apply_overrides(load_spec(path), {"device": "cpu"})
        if args.steps:
            spec = apply_overrides(spec, {"train.steps": args.steps})
        print(f"{Path(path).name} ({torch.get_num_threads()} threads, median of {args.repeats}; "
              "shared machine, timings are noisy)")
        bench_gprime(spec, args.repeats)
        bench_overhead(spec, args.repeats)


if __name__ == "__main__":
    main()
