"""Benchmark: probes measured for a whole fused group at once (bncli.probes.group) against the
same probes measured member by member on each member's own Net, same process, 1 thread.

Default: lp_norm_deep_linear.yaml's batchnorm arm (5 seeds x 3 lrs as one fused group), the
lipschitz probes. Per probe set (landscape alone, bn_jacobian and landscape; ics for measure-ics;
--hessian: the landscape with the Hessian's extremes, 30 HVPs per end),
the probe time is the group's training time with the probes minus without them; interleaved
repeats, medians. Prints per-member / group probe time and the machine load.

    python benchmarks/bench_group_probes.py [SPEC] [--arm batchnorm] [--seeds 5] [--steps 100]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _timing import interleaved_medians

from bncli.plan import plan
from bncli.runner.base import group_jobs
from bncli.runner.cache import job_data
from bncli.runner.fused import FusedRunner, train_fused
from bncli.spec import apply_overrides, load_spec

ROOT = Path(__file__).resolve().parent.parent


def load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec", nargs="?", default=str(ROOT / "sample_configs/lp_norm_deep_linear.yaml"))
    ap.add_argument("--arm", default="batchnorm")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--every", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--hessian", action="store_true", help="also the landscape with the Hessian's extremes")
    args = ap.parse_args()
    base = load_spec(args.spec)
    arms = [a for a in base.arms if a.name == args.arm]
    spec = apply_overrides(base, {"seeds": args.seeds, "threads": 1, "train.steps": args.steps,
                                  "analysis.lipschitz.every": args.every, "analysis.ics.every": args.every})
    spec = spec.model_copy(update={"arms": arms})
    torch.set_num_threads(1)
    data = job_data(spec)

    def group(analysis: str, **lip) -> list:
        s = apply_overrides(spec, {f"analysis.lipschitz.{k}": v for k, v in lip.items()}) if lip else spec
        jobs = plan(s, analysis)
        (g,) = group_jobs(jobs, FusedRunner())
        assert all(j.numerics == "fused" for j in g)
        return g

    sets = {
        "landscape": group("lipschitz", jacobian=False),
        "bn_jacobian+landscape": group("lipschitz"),
        "ics": group("measure-ics"),
    }
    if args.hessian:
        sets["landscape+hessian"] = group("lipschitz", jacobian=False, hessian=True, hessian_iters=30)
    base_group = group("train")
    cases = {"train only": lambda: (lambda: train_fused(base_group, data))}
    for name, g in sets.items():
        probes = sorted({p for j in g for p in j.probes})
        cases[f"{name} group"] = lambda g=g: (lambda: train_fused(g, data, group_probes=True))
        cases[f"{name} per-member"] = lambda g=g: (lambda: train_fused(g, data, group_probes=False))
        print(f"{name}: probes {', '.join(probes)}")
    print(f"{args.arm} x {len(base_group)} members, {args.steps} steps, every {args.every}; load {load()}")
    med = interleaved_medians(cases, args.repeats)
    t0 = med["train only"]
    print(f"train only: {t0:.2f} s")
    for name in sets:
        grp, per = med[f"{name} group"] - t0, med[f"{name} per-member"] - t0
        print(f"{name:24s} probe time: group {grp:6.2f} s, per-member {per:6.2f} s, "
              f"ratio {per / max(grp, 1e-9):.2f}x (whole: {med[f'{name} per-member'] / med[f'{name} group']:.2f}x)")
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
