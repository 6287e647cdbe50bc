"""`bncli batch sample_configs/batch_claims.yaml` wall time: this checkout with --fuse auto, the same
with --fuse off, and (optionally) an older checkout of bncli ("before"), interleaved repeats,
medians, and the verdicts of every run compared (fusing must not change one).

    python benchmarks/bench_batch_claims.py [--repeats 3] [--jobs 2] [--seeds 5] [--steps N]
        [--before /path/to/old/checkout]

`--before` runs `python -m bncli` with PYTHONPATH set to that checkout (e.g. a `git worktree` at the
commit before the fused runner, ff4d00d) on THIS checkout's batch file (copied with its specs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(pythonpath: Path, batch: Path, out: Path, jobs: int, fuse: str | None,
        extra: list[str] | None = None) -> tuple[float, dict]:
    args = [sys.executable, "-m", "bncli", "batch", str(batch), "--jobs", str(jobs), "--out", str(out), *(extra or [])]
    if fuse is not None:
        args += ["--fuse", fuse]
    env = {**os.environ, "PYTHONPATH": str(pythonpath), "COLUMNS": "160"}
    t0 = time.perf_counter()
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=pythonpath)
    wall = time.perf_counter() - t0
    doc = json.loads((out / "batch.json").read_text())
    verdicts = {}
    for c in doc.get("comparisons", []):
        for claim in c.get("claims") or []:
            verdicts[(c["name"], c["command"], claim.get("claim"), claim.get("arm"),
                      str(claim.get("lr")))] = claim.get("verdict")
    return wall, {"verdicts": verdicts, "counts": doc.get("counts"), "exit": doc.get("exit_code")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--before", type=Path, default=None, help="an older bncli checkout to time too")
    ap.add_argument("--seeds", type=int, default=None, help="every comparison at this many seeds")
    ap.add_argument("--steps", type=int, default=None, help="every run this many steps (a shorter benchmark)")
    ap.add_argument("--cases", default="auto,off,before", help="which of auto, off, before to time (before: "
                    "with --before)")
    args = ap.parse_args()
    extra = [*(["--seeds", str(args.seeds)] if args.seeds else []),
             *(["--steps", str(args.steps)] if args.steps else [])]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "cfg"
        shutil.copytree(ROOT / "sample_configs", cfg)
        batch = cfg / "batch_claims.yaml"
        wanted = set(args.cases.split(","))
        cases = {k: v for k, v in {"auto": (ROOT, "auto"), "off": (ROOT, "off")}.items() if k in wanted}
        if args.before is not None and "before" in wanted:
            cases["before"] = (args.before.resolve(), None)
        times: dict[str, list[float]] = {k: [] for k in cases}
        seen: dict[str, dict] = {}
        for r in range(args.repeats):
            for name, (path, fuse) in cases.items():
                out = Path(tmp) / f"{name}{r}"
                wall, info = run(path, batch, out, args.jobs, fuse, extra)
                times[name].append(wall)
                seen.setdefault(name, info)
                load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
                print(f"repeat {r + 1} {name:>6}: {wall:7.1f} s (exit {info['exit']}, load {load})", flush=True)
                shutil.rmtree(out, ignore_errors=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        for k, v in med.items():
            print(f"median {k:>6}: {v:7.1f} s over {len(times[k])}")
        if "off" in med and "auto" in med:
            print(f"--fuse off / --fuse auto: {med['off'] / med['auto']:.2f}x")
        if "before" in med and "auto" in med:
            print(f"before / --fuse auto: {med['before'] / med['auto']:.2f}x (goal >= 2)")
        first = next(iter(seen))
        base_name = "off" if "off" in seen else first
        base = seen[base_name]["verdicts"]
        for k, info in seen.items():
            diff = {key for key in base if info["verdicts"].get(key) != base[key]}
            print(f"verdicts {k} vs {base_name}: {len(base) - len(diff)}/{len(base)} equal"
                  + (f"; differ: {sorted(diff)[:5]}" if diff else ""))


if __name__ == "__main__":
    main()
