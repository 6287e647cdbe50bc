"""Benchmark (issue 31, item 5): one definition of the model maths? The fused MLP's training step
through torch.func (`functional_call` + `vmap` over the Net itself, bncli.runner.fused_vmap.VmapStack,
as the conv families use) against the hand-stacked MLP (bncli.runner.fused.StackedMLP), on the CPU,
1 thread, K members, same weights and batches. A step: forward on x [K, B, in], per-member
cross-entropy summed, backward, an SGD update of every stacked parameter. Interleaved medians
(other processes' load hits both alike); also checks both give the same outputs.

    python benchmarks/bench_vmap_vs_stacked.py [--k 8 16] [--steps 100] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F
from _timing import interleaved_medians

from bncli.models import build_model
from bncli.runner.fused import StackedMLP
from bncli.runner.fused_vmap import VmapStack
from bncli.spec import ArmSpec, ModelSpec


def nets(k: int, norm: str, hidden: list[int], n_in: int, n_out: int, activation: str) -> list:
    model = ModelSpec(kind="mlp", hidden=hidden, activation=activation)
    arm = ArmSpec(name=norm, norm=norm)
    out = []
    for i in range(k):
        torch.manual_seed(i)
        out.append(build_model(model, arm, (n_in,), n_out))
    return out


def step_fn(stack, x: torch.Tensor, y: torch.Tensor, lr: float = 0.1):
    params = stack.parameters()

    def step() -> None:
        out = stack.forward(x, True)  # [K, B, C]
        loss = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(y.shape).mean(1).sum()
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            torch._foreach_add_(params, grads, alpha=-lr)

    return step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(1)
    n_in, n_out, hidden, act = 64, 10, [100, 100, 100], "sigmoid"  # the sample sigmoid MLP on digits
    print(f"torch {torch.__version__}, 1 thread, MLP {n_in}-{'x'.join(map(str, hidden))}-{n_out} {act}, "
          f"batch {args.batch}, {args.steps} steps, medians of {args.repeats}; load {os.getloadavg()[0]:.2f}")
    for norm in ("none", "batch"):
        for k in args.k:
            ms, same = measure(norm, k, args, (n_in, n_out, hidden, act))
            print(f"norm {norm:5s} K={k:2d}: stacked {ms['stacked']:.3f} ms/step, torch.func {ms['vmap']:.3f} "
                  f"ms/step, torch.func/stacked {ms['vmap'] / ms['stacked']:.2f}x (max |Δout| {same:.1e})")


def measure(norm: str, k: int, args: argparse.Namespace, shape: tuple) -> tuple[dict[str, float], float]:
    """ms per step of each form, and the largest output difference between them."""
    n_in, n_out, hidden, act = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(k, args.batch, n_in, generator=g)
    y = torch.randint(0, n_out, (k, args.batch), generator=g)
    forms = {"stacked": StackedMLP, "vmap": VmapStack}
    with torch.no_grad():
        a, b = (cls(nets(k, norm, hidden, n_in, n_out, act)) for cls in forms.values())
        same = float((a.forward(x, True) - b.forward(x, True)).abs().max())

    def setup(cls):
        def make():
            step = step_fn(cls(nets(k, norm, hidden, n_in, n_out, act)), x, y)
            step()  # warm-up (vmap's first call traces)

            def go() -> None:
                for _ in range(args.steps):
                    step()
            return go
        return make

    t = interleaved_medians({name: setup(cls) for name, cls in forms.items()}, args.repeats)
    return {n: 1e3 * v / args.steps for n, v in t.items()}, same

if __name__ == "__main__":
    main()
