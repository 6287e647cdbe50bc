"""Benchmark: bncli's training loop against a plain hand-written PyTorch loop.

Same model (both arms of the sample config), same in-memory data, same batches, same steps,
same held-out evaluation cadence; whole run, median of several repeats. Prints the ratio
bncli / plain (goal <= 1.10) and bncli / a functional hand loop of the same maths (F.linear,
F.batch_norm, one torch._foreach_add_ update: no modules, no torch.optim; goal <= 1.15).

    python benchmarks/bench_train.py [SPEC] [--repeats N] [--steps N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bncli.data import batch_indices, load_data
from bncli.runner.build import build_arm_model, initial_model
from bncli.spec import apply_overrides, load_spec
from bncli.train import train_run

ROOT = Path(__file__).resolve().parent.parent


def plain_loop(model, data, steps, lr, batch_size, eval_every, seed):
    """What a user would write by hand: index batches, forward, backward, step, eval now and then."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    batches = batch_indices(data.n_train, batch_size, seed)
    x, y = data.x_train, data.y_train
    n_eval = min(2000, data.n_train)
    model.train()
    for step in range(steps):
        idx = next(batches)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            model.eval()
            with torch.no_grad():
                for xs, ys in ((data.x_test, data.y_test), (x[:n_eval], y[:n_eval])):
                    out = model(xs)
                    float(F.cross_entropy(out, ys))
                    int((out.argmax(1) == ys).sum())
            model.train()
            float(loss.detach())


def functional_loop(model, data, steps, lr, batch_size, eval_every, seed):
    """The same maths with no modules: F.linear / F.batch_norm / the activation on raw tensors,
    one foreach update (an MLP with norm none or batch, pre-activation)."""
    blocks = [(b.fc.weight, b.fc.bias, getattr(b.norm, "weight", None), getattr(b.norm, "bias", None),
               getattr(b.norm, "running_mean", None), getattr(b.norm, "running_var", None),
               b.norm_kind == "batch") for b in model.layers.values()]
    act = type(next(iter(model.layers.values())).act).__name__.lower()
    fn = {"sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh}.get(act, lambda t: t)
    hw, hb = model.head.weight, model.head.bias
    params = [p for p in model.parameters()]
    batches = batch_indices(data.n_train, batch_size, seed)
    x, y = data.x_train, data.y_train
    n_eval = min(2000, data.n_train)

    def forward(h, training):
        h = h.flatten(1)
        for w, b, g, be, rm, rv, bn in blocks:
            h = F.linear(h, w, b)
            if bn:
                h = F.batch_norm(h, rm, rv, g, be, training, 0.1, 1e-5)
            h = fn(h)
        return F.linear(h, hw, hb)

    for step in range(steps):
        idx = next(batches)
        loss = F.cross_entropy(forward(x[idx], True), y[idx])
        for p in params:
            p.grad = None
        loss.backward()
        with torch.no_grad():
            torch._foreach_add_(params, [p.grad for p in params], alpha=-lr)
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            with torch.no_grad():
                for xs, ys in ((data.x_test, data.y_test), (x[:n_eval], y[:n_eval])):
                    out = forward(xs, False)
                    float(F.cross_entropy(out, ys))
                    int((out.argmax(1) == ys).sum())
            float(loss.detach())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec", nargs="?", default=str(ROOT / "sample_configs/mlp_sigmoid_digits.yaml"))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    spec = load_spec(args.spec)
    if args.steps:
        spec = apply_overrides(spec, {"train.steps": args.steps})
    spec = apply_overrides(spec, {"device": "cpu"})
    data = load_data(spec.data)
    lr = spec.train.lr[0]
    seed = spec.seed
    init = initial_model(spec, data, seed)
    results = {}
    for arm in spec.arms:
        t_bn, t_plain, t_fn = [], [], []
        functional = spec.model.kind == "mlp" and arm.norm in ("none", "batch") and arm.position == "pre"
        for _ in range(args.repeats):
            m = build_arm_model(spec, arm, init, data, seed)
            t0 = time.perf_counter()
            train_run(m, data, arm, spec.train, lr, seed)
            t_bn.append(time.perf_counter() - t0)
            m = build_arm_model(spec, arm, init, data, seed)
            t0 = time.perf_counter()
            plain_loop(m, data, spec.train.steps, lr, spec.train.batch_size, spec.train.eval_every, seed)
            t_plain.append(time.perf_counter() - t0)
            if functional:
                m = build_arm_model(spec, arm, init, data, seed)
                t0 = time.perf_counter()
                functional_loop(m, data, spec.train.steps, lr, spec.train.batch_size, spec.train.eval_every, seed)
                t_fn.append(time.perf_counter() - t0)
        a, b = statistics.median(t_bn), statistics.median(t_plain)
        c = statistics.median(t_fn) if t_fn else float("nan")
        results[arm.name] = (a, b, c)
        print(f"{arm.name:>12}: bncli {a:.3f} s, plain loop {b:.3f} s, functional loop {c:.3f} s, "
              f"ratios {a / b:.3f} / {a / c:.3f} ({spec.train.steps} steps, median of {args.repeats}, "
              f"{torch.get_num_threads()} threads)")
    total = sum(v[0] for v in results.values()) / sum(v[1] for v in results.values())
    print(f"overall ratio bncli / plain loop: {total:.3f} (goal <= 1.10)")
    if all(v[2] == v[2] for v in results.values()):
        fn_total = sum(v[0] for v in results.values()) / sum(v[2] for v in results.values())
        print(f"overall ratio bncli / functional loop: {fn_total:.3f} (goal <= 1.15)")
    print(f"load {open('/proc/loadavg').read().split()[0] if Path('/proc/loadavg').exists() else '?'}")


if __name__ == "__main__":
    main()
