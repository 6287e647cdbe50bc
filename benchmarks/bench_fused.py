"""Benchmark: a sweep trained fused (bncli.runner.fused: each arm's seeds x lrs as one batched
model) against the same jobs trained one by one (the single path), same process, 1 thread.

Default: the sample sigmoid MLP (2 arms x 2 lrs x 4 seeds, 1,500 steps). Medians of interleaved
pairs; prints the ratio single / fused (goal >= 2.5) and the machine load.

    python benchmarks/bench_fused.py [SPEC] [--seeds 4] [--steps N] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from _timing import interleaved_medians

from bncli.plan import plan
from bncli.runner.base import group_jobs
from bncli.runner.cache import job_data
from bncli.runner.fused import FusedRunner
from bncli.runner.single import run_job
from bncli.spec import apply_overrides, load_spec

ROOT = Path(__file__).resolve().parent.parent


def load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec", nargs="?", default=str(ROOT / "sample_configs/mlp_sigmoid_digits.yaml"))
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    spec = load_spec(args.spec)
    over = {"seeds": args.seeds, "threads": 1, "device": args.device}
    if args.steps:
        over["train.steps"] = args.steps
    spec = apply_overrides(spec, over)
    torch.set_num_threads(1)
    data = job_data(spec)
    fused_jobs = plan(spec, "train")
    single_jobs = plan(apply_overrides(spec, {"fuse": "off"}), "train")
    runner = FusedRunner()
    groups = group_jobs(fused_jobs, runner)
    assert all(j.numerics == "fused" for j in fused_jobs)

    def sync() -> None:
        if data.x_train.device.type == "cuda":
            torch.cuda.synchronize()

    def fused():
        def go():
            for g in groups:
                runner.run(g, data)
            sync()
        return go

    def single():
        def go():
            for j in single_jobs:
                run_job(j, data)
            sync()
        return go

    fused()()  # warm-up (first-call costs, not start-up)
    loads = [load()]
    t = interleaved_medians({"single": single, "fused": fused}, args.repeats)
    loads.append(load())
    print(f"{spec.name}: {len(fused_jobs)} runs ({len(groups)} fused groups of {len(groups[0])}), "
          f"{spec.train.steps} steps, device {args.device}, 1 thread, {os.cpu_count()} cores, "
          f"load {' -> '.join(loads)}")
    print(f"single {t['single']:.2f} s, fused {t['fused']:.2f} s, ratio {t['single'] / t['fused']:.2f}x "
          f"(median of {args.repeats} interleaved pairs; goal >= 2.5x)")


if __name__ == "__main__":
    main()
