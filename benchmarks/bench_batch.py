"""`bncli batch` speed: the same plan with --jobs 1 and --jobs 2 (goal: >= 1.7x on 2 cores), and
the batch against running the same comparisons as separate subcommand calls (goal: faster, since
data and start-up are shared).

    python benchmarks/bench_batch.py [--steps 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from _timing import interleaved_medians

ROOT = Path(__file__).resolve().parents[1]


def batch_file(folder: Path, steps: int) -> Path:
    """4 comparisons x 2 lrs x 2 arms = 16 jobs of the sigmoid digits MLP (one thread each)."""
    doc = {
        "defaults": {"threads": 1, "device": "cpu", "train": {"steps": steps, "eval_every": 100}},
        "comparisons": [
            {"name": f"seed{k}", "spec": str(ROOT / "sample_configs" / "mlp_sigmoid_digits.yaml"),
             "command": "train", "overrides": {"seed": k}}
            for k in range(4)
        ],
    }
    p = folder / "bench_batch.yaml"
    p.write_text(yaml.safe_dump(doc))
    return p


def run(args: list[str]) -> None:
    subprocess.run([sys.executable, "-m", "bncli", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "160"})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bf = batch_file(folder, a.steps)
        spec = ROOT / "sample_configs" / "mlp_sigmoid_digits.yaml"

        def separate() -> None:
            for k in range(4):
                run(["train", str(spec), "--seed", str(k), "--steps", str(a.steps), "--threads", "1", "-q"])

        times = interleaved_medians({
            "batch --jobs 1": lambda: lambda: run(["batch", str(bf), "--jobs", "1", "-q"]),
            "batch --jobs 2": lambda: lambda: run(["batch", str(bf), "--jobs", "2", "-q"]),
            "4 separate `bncli train` calls": lambda: separate,
        }, a.repeats)
    print(f"16 jobs (mlp_sigmoid_digits, {a.steps} steps, 1 thread each), median of {a.repeats}, "
          f"{os.cpu_count()} cores:")
    for k, v in times.items():
        print(f"  {k:34s} {v:7.2f} s")
    print(f"speed-up --jobs 2 over --jobs 1: {times['batch --jobs 1'] / times['batch --jobs 2']:.2f}x (goal >= 1.7)")
    print(f"batch --jobs 1 vs separate calls: {times['4 separate `bncli train` calls'] / times['batch --jobs 1']:.2f}x "
          "(> 1: the batch is faster)")


if __name__ == "__main__":
    main()
