"""Benchmark: a 16-job plan on a local 2-CPU Ray against the serial and the local executors.

The plan is a sample config at few steps, 2 lrs x 2 arms x 4 seeds, one torch thread per job.
Prints the wall time of each executor (Ray cold: starting and stopping its private Ray counted;
Ray warm: on an already running Ray with warmed-up workers, interleaved with the serial executor),
and Ray's overhead per job, measured on the same plan at 1 step, where a job is almost nothing but
overhead: (t_ray - t_serial / 2) / 16, the ideal for 2 workers being half the serial time
(goal < 0.2 s).
Ray's records are checked to be the serial executor's.

    python benchmarks/bench_ray.py [SPEC] [--steps N] [--seeds N] [--repeats N]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from _timing import interleaved_medians, timed  # noqa: E402

from bncli.executors import execute  # noqa: E402
from bncli.executors.ray import RayExecutor  # noqa: E402
from bncli.executors.serial import SerialExecutor  # noqa: E402
from bncli.plan import plan  # noqa: E402
from bncli.spec import apply_overrides, load_spec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CPUS = 2


def _same(a, b) -> bool:
    def strip(r):
        d = r.to_json()
        d.pop("wall_s")
        return d

    return len(a.records) == len(b.records) and all(strip(x) == strip(y) for x, y in zip(a.records, b.records))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("spec", nargs="?", default=str(ROOT / "sample_configs/mlp_sigmoid_digits.yaml"))
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import ray

    base = apply_overrides(load_spec(args.spec), {"device": "cpu", "threads": 1, "seeds": args.seeds})
    spec = apply_overrides(base, {"train.steps": args.steps, "train.eval_every": max(1, args.steps // 4)})
    tiny = apply_overrides(base, {"train.steps": 1, "train.eval_every": 1})
    jobs, tiny_jobs = plan(spec, "train"), plan(tiny, "train")
    n = len(jobs)
    print(f"{n} jobs ({args.steps} steps each) from {Path(args.spec).name}, {CPUS} CPUs, 1 thread per job")

    execute(tiny_jobs, SerialExecutor())  # warm-up: imports, the dataset's first load
    t_serial, serial = timed(lambda: execute(jobs, SerialExecutor()))
    t_serial1, _ = timed(lambda: execute(tiny_jobs, SerialExecutor()))
    print(f"serial              {t_serial:7.2f} s   (1-step plan {t_serial1:.2f} s)")

    try:
        from bncli.executors.local import LocalExecutor
    except ImportError:
        LocalExecutor = None  # noqa: N806
    if LocalExecutor is not None:
        t_local, local = timed(lambda: execute(jobs, LocalExecutor(jobs=CPUS, threads=1)))
        print(f"local --jobs {CPUS}      {t_local:7.2f} s   (worker processes started and stopped)")

    t_cold, cold = timed(lambda: execute(jobs, RayExecutor(num_cpus=CPUS)))
    print(f"ray, cold           {t_cold:7.2f} s   (its private Ray started and shut down)")

    t_init, _ = timed(lambda: ray.init(address="local", num_cpus=CPUS, include_dashboard=False,
                                       _node_ip_address="127.0.0.1", log_to_driver=False,
                                       logging_level="ERROR"))
    try:
        execute(tiny_jobs, RayExecutor())  # warm the workers up (each imports torch once)
        warm = execute(jobs, RayExecutor())
        # interleaved medians: other processes on a shared machine slow both alike
        tiny_t = interleaved_medians({"serial": lambda: lambda: execute(tiny_jobs, SerialExecutor()),
                                      "ray": lambda: lambda: execute(tiny_jobs, RayExecutor())}, args.repeats)
        full_t = interleaved_medians({"serial": lambda: lambda: execute(jobs, SerialExecutor()),
                                      "ray": lambda: lambda: execute(jobs, RayExecutor())}, args.repeats)
    finally:
        t_down, _ = timed(ray.shutdown)
    print(f"ray, warm           {full_t['ray']:7.2f} s   (serial alongside it {full_t['serial']:.2f} s; "
          f"median of {args.repeats})")
    print(f"ray start-up        {t_init:7.2f} s   ray.init; shutdown {t_down:.2f} s; the rest of the cold "
          f"run's extra time is its workers importing torch")
    print(f"records identical to serial: ray cold {_same(cold, serial)}, ray warm {_same(warm, serial)}"
          + (f", local {_same(local, serial)}" if LocalExecutor is not None else ""))
    per_job = (tiny_t["ray"] - tiny_t["serial"] / CPUS) / n
    print(f"ray overhead per job: {per_job * 1000:.1f} ms on the 1-step plan (ray {tiny_t['ray']:.2f} s, "
          f"serial {tiny_t['serial']:.2f} s; goal < 200 ms); "
          f"{(full_t['ray'] - full_t['serial'] / CPUS) / n * 1000:.1f} ms on the {args.steps}-step plan; "
          f"cold, start-up included: {(t_cold - t_serial / CPUS) / n * 1000:.0f} ms")

if __name__ == "__main__":
    main()
