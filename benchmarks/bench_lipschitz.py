"""Benchmark `bncli lipschitz`: batched eta' grid vs loop, HVP power iteration, overhead over train.

Run: python benchmarks/bench_lipschitz.py [--repeats 5] [--steps 500]
Prints medians of several repeats (CPU timings on a shared machine are noisy).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from _timing import interleaved_medians, median_time

from bncli.models import build_model
from bncli.pipeline import run_analysis, run_experiment
from bncli.probes.landscape import eta_grid, hessian_top_eig, line_search
from bncli.spec import ArmSpec, LipschitzSpec, load_spec

ROOT = Path(__file__).resolve().parents[1]


def setup(kind: str, batch: int):
    torch.manual_seed(0)
    from bncli.spec import ModelSpec

    if kind == "mlp":
        ms, shape = ModelSpec(kind="mlp", hidden=[100, 100, 100], activation="sigmoid"), (64,)
    else:
        ms, shape = ModelSpec(kind="cnn", channels=[16, 32, 64]), (1, 8, 8)
    model = build_model(ms, ArmSpec(name="bn", kind="batchnorm"), shape, 10)
    model.train()
    x, y = torch.randn(batch, *shape), torch.randint(0, 10, (batch,))
    F.cross_entropy(model(x), y).backward()
    theta = {n: p.detach() for n, p in model.named_parameters()}
    g = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    bufs = {n: b.clone() for n, b in model.named_buffers()}
    return model, x, y, theta, g, bufs


def bench_grid(repeats: int) -> None:
    etas = eta_grid(0.5, LipschitzSpec())
    for kind, batch in (("mlp", 60), ("cnn", 64)):
        model, x, y, theta, g, bufs = setup(kind, batch)
        args = (model, F.cross_entropy, x, y, theta, g, etas, bufs)
        lb, db = line_search(*args, batched=True)
        ll, dl = line_search(*args, batched=False)
        diff = max(float((lb - ll).abs().max()), float((db - dl).abs().max()))
        tb = median_time(lambda a=args: line_search(*a, batched=True), repeats)
        tl = median_time(lambda a=args: line_search(*a, batched=False), repeats)
        print(f"eta' grid ({kind} BN, batch {batch}, {len(etas)} points): loop {tl * 1e3:.1f} ms, "
              f"batched {tb * 1e3:.1f} ms -> batched is {tl / tb:.2f}x faster "
              f"(max |difference| {diff:.1e})")


def bench_hessian(repeats: int) -> None:
    model, x, y, theta, _, bufs = setup("mlp", 60)
    out = {}

    def one() -> None:
        gen = torch.Generator().manual_seed(0)
        out["r"] = hessian_top_eig(model, F.cross_entropy, x, y, theta, bufs, 20, 1e-3, gen)

    t = median_time(one, repeats)
    eig, iters, conv = out["r"]
    print(f"Hessian top eigenvalue (mlp 64-100x3-10 BN, batch 60): {t * 1e3:.1f} ms per eigenvalue "
          f"({iters} HVPs, converged={conv}, lambda={eig:.4g}; {t / iters * 1e3:.1f} ms per HVP)")


def bench_overhead(repeats: int, steps: int) -> None:
    spec = load_spec(ROOT / "sample_configs" / "mlp_sigmoid_digits.yaml")
    spec = spec.model_copy(update={"train": spec.train.model_copy(update={"steps": steps})})
    # interleaved, so load from other processes on a shared machine hits both alike
    t = interleaved_medians({"train": lambda: lambda: run_experiment(spec),
                             "lipschitz": lambda: lambda: run_analysis(spec, "landscape")}, repeats)
    tt, tl = t["train"], t["lipschitz"]
    print(f"overhead at default cadence (every {spec.analysis.lipschitz.every}, "
          f"mlp_sigmoid_digits, {steps} steps, 2 arms): train {tt:.2f} s, lipschitz {tl:.2f} s "
          f"-> {tl / tt:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {a.threads} thread(s), medians of {a.repeats} repeats")
    bench_grid(a.repeats)
    bench_hessian(a.repeats)
    bench_overhead(max(1, a.repeats // 2), a.steps)


if __name__ == "__main__":
    main()
