"""Training steps per second of the paper-sized models (VGG-11, ResNet-20, full width) on
CIFAR-size inputs (3x32x32) at batch 128, plain and BN arms: what a CPU-size or GPU-size paper
replication costs. Usage: python benchmarks/bench_papers_models.py [--steps 10] [--device cpu]
[--threads 1]"""

from __future__ import annotations

import argparse
import time

import torch

from bncli.models import build_model, loss_fn_for
from bncli.spec import ArmSpec, ModelSpec


def bench(kind: str, depth: int, norm: str, device: str, steps: int, batch: int) -> float:
    torch.manual_seed(0)
    net = build_model(ModelSpec(kind=kind, depth=depth), ArmSpec(name=norm, norm=norm),
                      (3, 32, 32), 10).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    loss_fn = loss_fn_for("classification")

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(net(x), y).backward()
        opt.step()

    for _ in range(2):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for kind, depth in (("vgg", 11), ("resnet", 20)):
        for norm in ("none", "batch"):
            sps = bench(kind, depth, norm, a.device, a.steps, a.batch)
            print(f"{kind}{depth} {norm:5s} batch {a.batch} {a.device} threads {a.threads}: "
                  f"{sps:.2f} steps/s", flush=True)


if __name__ == "__main__":
    main()
