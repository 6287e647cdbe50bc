"""Whole-process wall time of one bncli command, `--fuse auto` against `--fuse off`: interleaved
repeats (auto, off, auto, off, ...), medians, the machine load at each start and end, and the
claims' verdicts of every run compared (fusing must not change one).

    python benchmarks/bench_fuse_cli.py [--repeats 3] -- lipschitz sample_configs/lp_norm_deep_linear.yaml \
        --arms plain,batchnorm --seeds 5 --threads 1
    python benchmarks/bench_fuse_cli.py -- train sample_configs/mlp_sigmoid_digits.yaml --seeds 8 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def run(args: list[str], fuse: str) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "160"}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bncli", *args, "--fuse", fuse, "--json"], capture_output=True,
                          text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(f"bncli exited {done.returncode}: {done.stderr.strip()[-400:]}")
    doc = json.loads(done.stdout)
    verdicts = {(c.get("claim"), c.get("arm"), str(c.get("lr"))): c.get("verdict") for c in doc.get("claims") or []}
    return wall, verdicts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("command", nargs=argparse.REMAINDER, help="after --: the bncli subcommand and its arguments")
    opts = ap.parse_args()
    args = [a for a in opts.command if a != "--"]
    times: dict[str, list[float]] = {"auto": [], "off": []}
    seen: dict[str, dict] = {}
    for r in range(max(1, opts.repeats)):
        for fuse in ("auto", "off"):
            before = load()
            wall, verdicts = run(args, fuse)
            times[fuse].append(wall)
            seen.setdefault(fuse, verdicts)
            if verdicts != seen[fuse]:
                print(f"  (verdicts of --fuse {fuse} changed between repeats)")
            print(f"repeat {r + 1} --fuse {fuse:>4}: {wall:7.1f} s (load {before} -> {load()})", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"bncli {' '.join(args)}")
    print(f"median --fuse auto {med['auto']:.1f} s, --fuse off {med['off']:.1f} s over {opts.repeats} interleaved "
          f"pairs: off / auto {med['off'] / med['auto']:.2f}x ({os.cpu_count()} cores)")
    same = sum(seen["auto"].get(k) == v for k, v in seen["off"].items())
    print(f"verdicts equal: {same}/{len(seen['off'])}"
          + ("" if same == len(seen["off"]) and len(seen["auto"]) == len(seen["off"]) else
             f"; differ: {sorted(k for k in seen['off'] if seen['auto'].get(k) != seen['off'][k])[:5]}"))


if __name__ == "__main__":
    main()
