"""Benchmark: torch threads per run, idle and with the cores busy: the data behind `threads: auto`.

Each sample config (not batch_* / ci_*), plus a few wider MLPs that bracket the rule's threshold,
trains its arms at the first learning rate for --steps steps (one evaluation at the end) at each
thread count, first on an idle machine, then with one CPU-bound process per core running beside
it (`python -c "while True: pass"`, what a shared machine or a second job looks like). Prints
the median wall time per case, the forward multiply-adds per step (runtime.step_macs) and what
`threads: auto` picks.

    python benchmarks/bench_threads.py [--steps 100] [--threads 1 2] [--repeats 3] [--only NAME]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from _timing import interleaved_medians

from bncli.data import load_data
from bncli.runner.build import build_arm_model, initial_model
from bncli.runtime import auto_threads, available_cores, resolve_threads, step_macs
from bncli.spec import Spec, apply_overrides, load_spec, parse_spec
from bncli.train import train_run

ROOT = Path(__file__).resolve().parent.parent

# wider than any sample config: where a second thread starts to pay (synthetic, 64 features)
WIDE = {
    "mlp_3x256_b128": ([256] * 3, 128),
    "mlp_3x512_b256": ([512] * 3, 256),
    "mlp_3x1024_b256": ([1024] * 3, 256),
    "mlp_3x1024_b1024": ([1024] * 3, 1024),
    "mlp_3x2048_b512": ([2048] * 3, 512),
}


def sample_specs() -> dict[str, Spec]:
    out = {}
    for p in sorted((ROOT / "sample_configs").glob("*.yaml")):
        if p.name.startswith(("batch_", "ci_")):
            continue
        try:
            out[p.stem] = load_spec(p)
        except Exception as exc:  # noqa: BLE001 - a config another change is still adding
            print(f"skipped {p.name}: {exc}", file=sys.stderr)
    for name, (hidden, batch) in WIDE.items():
        out[name] = parse_spec({
            "name": name, "data": {"source": "synthetic", "n_samples": 4000, "n_features": 64},
            "model": {"hidden": hidden, "activation": "relu"}, "train": {"batch_size": batch},
        })
    return out


def case(spec: Spec, steps: int, threads: int) -> Callable[[], Callable[[], object]]:
    """A setup (fresh models, untimed) returning the timed call: every arm, `steps` steps."""
    spec = apply_overrides(spec, {"train.steps": steps, "train.eval_every": steps, "device": "cpu",
                                  "seeds": 1})
    data = load_data(spec.data)
    lr = spec.train.lr[0]

    def setup() -> Callable[[], object]:
        torch.set_num_threads(threads)
        init = initial_model(spec, data, spec.seed)
        models = [(arm, build_arm_model(spec, arm, init, data, spec.seed)) for arm in spec.arms]

        def run() -> None:
            torch.set_num_threads(threads)
            for arm, m in models:
                train_run(m, data, arm, spec.train, lr, spec.seed)

        return run

    return setup


class Busy:
    """One spinning Python process per core for the duration of a `with` block."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> Busy:
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(self.n)]
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--busy", type=int, default=None, help="spinning processes (default: one per core)")
    ap.add_argument("--only", nargs="*", default=None, help="config names to run")
    ap.add_argument("--no-busy", action="store_true", help="idle measurements only")
    args = ap.parse_args()
    cores = available_cores()
    specs = sample_specs()
    if args.only:
        specs = {k: v for k, v in specs.items() if k in args.only}
    print(f"{cores} cores, torch {torch.__version__}, {args.steps} steps per arm, median of "
          f"{args.repeats}; busy = {args.busy or cores} spinning process(es)")
    head = "".join(f"{f'idle {t}t':>10}" for t in args.threads)
    if not args.no_busy:
        head += "".join(f"{f'busy {t}t':>10}" for t in args.threads)
    print(f"{'config':<26}{'MACs/step':>11}{'auto':>6}{head}")
    for name, spec in specs.items():
        data = load_data(spec.data)
        macs = step_macs(spec.model, data.input_shape, data.n_out,
                         min(spec.train.batch_size, data.n_train))
        auto = resolve_threads(spec.model_copy(update={"threads": "auto"}), data.input_shape,
                               data.n_out, data.n_train)
        assert auto == auto_threads(macs)
        cases = {t: case(spec, args.steps, t) for t in args.threads}
        idle = interleaved_medians({str(t): c for t, c in cases.items()}, args.repeats)
        cells = [idle[str(t)] for t in args.threads]
        if not args.no_busy:
            with Busy(args.busy or cores):
                busy = interleaved_medians({str(t): c for t, c in cases.items()}, args.repeats)
            cells += [busy[str(t)] for t in args.threads]
        print(f"{name:<26}{macs:>11.2e}{auto:>6}" + "".join(f"{c:>9.2f}s" for c in cells), flush=True)


if __name__ == "__main__":
    main()
