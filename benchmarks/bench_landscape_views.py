"""Benchmark the landscape views (issue 33) on the sample CNN (sample_configs/cnn_digits.yaml).

Run: python benchmarks/bench_landscape_views.py [--repeats 3] [--points 21] [--threads 1]
Both arms at initialization, BN in training mode, 256 probe examples: a 21 x 21 filter-normalized
surface batched (vmap over grid points in chunks) against point by point; the Hutchinson trace
(tol 0.05, at most 200 HVPs) with batched HVPs (is_grads_batched) against one HVP at a time; the
SLQ density (3 runs x 80 Lanczos steps); top-3 eigenvalues (eigsh). Times are medians of
--repeats interleaved calls; HVP counts are what each method used.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _timing import interleaved_medians
from torch.func import functional_call

from bncli.data import load_data
from bncli.models import loss_fn_for
from bncli.probes.base import buffer_copies
from bncli.probes.hessian_views import hutchinson_trace, hvp_many_closure, slq_density, top_eigenvalues
from bncli.probes.surface import filter_directions, loss_surface, surface_coords
from bncli.runner.build import build_arm_model, initial_model
from bncli.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--points", type=int, default=21)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--probe-size", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = load_spec(ROOT / "sample_configs" / "cnn_digits.yaml")
    data = load_data(spec.data)
    loss_fn = loss_fn_for(data.task)
    x, y = data.probe_batch(args.probe_size)
    init = initial_model(spec, data, spec.seed)
    coords = surface_coords(args.points, 1.0)
    for arm in spec.arms:
        model = build_arm_model(spec, arm, init, data, spec.seed)
        bench_arm(arm.name, model, loss_fn, x, y, coords, args)


def bench_arm(name: str, model, loss_fn, x, y, coords, args) -> None:
    model.train()
    theta = {n: p.detach() for n, p in model.named_parameters()}
    bufs = {n: b.detach().clone() for n, b in model.named_buffers()}
    dirs = [filter_directions(theta, 1), filter_directions(theta, 2)]

    def loss_of(p):
        return loss_fn(functional_call(model, (p, buffer_copies(bufs)), (x,)), y)

    hvp, n = hvp_many_closure(loss_of, theta)

    def single(v):
        return torch.stack([hvp(r) for r in v]) if v.dim() == 2 else hvp(v)

    counts = {}

    def trace(h, key):
        def run():
            counts[key] = hutchinson_trace(h, n, tol=0.05, max_samples=200, seed=0)["samples"]
        return run

    def density():
        counts["slq"] = slq_density(hvp, n, runs=3, steps=80, seed=0)["steps"] * 3

    def top():
        counts["top3"] = top_eigenvalues(hvp, n, 3, max_iters=300, seed=0)["hvps"]

    cases = {
        f"surface {args.points}x{args.points} vmapped": lambda: (
            lambda: loss_surface(model, loss_fn, x, y, theta, bufs, dirs, coords)),
        f"surface {args.points}x{args.points} loop": lambda: (
            lambda: loss_surface(model, loss_fn, x, y, theta, bufs, dirs, coords, batched=False)),
        "trace batched HVPs": lambda: trace(hvp, "trace"),
        "trace one HVP at a time": lambda: trace(single, "trace1"),
        "density SLQ 3x80": lambda: density,
        "top-3 eigsh": lambda: top,
    }
    t = interleaved_medians(cases, args.repeats)
    print(f"{name}: {n} parameters, {len(x)} examples, threads {args.threads}")
    for k, v in t.items():
        print(f"  {k:32s} {v:8.3f} s")
    print(f"  HVPs: {counts}")

if __name__ == "__main__":
    main()
