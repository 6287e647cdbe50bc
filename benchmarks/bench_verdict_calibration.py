"""Calibration of the verdict engine, simulated through the public `bncli.judge` (SCIENCE.md,
Verdicts; issue 28): type I at the margin, power on large effects, multi-metric claims, the global
null, C9's non-inferiority, each alone (a family of one claim) and inside a realistic command family
(Holm across 8 claims, the 7 others null). Prints Markdown tables (the ones in SCIENCE.md).

    python benchmarks/bench_verdict_calibration.py              # 2,000 repetitions a cell (~6 min, 2 cores)
    python benchmarks/bench_verdict_calibration.py --reps 300   # a quick look

The model: per seed i the arm's and the baseline's values share the seed's own level S_i (the paired
design) and each has its own noise, a_i = R · S_i · Y_i, b_i = S_i · X_i with X, Y i.i.d., so
ln(a_i / b_i) = ln R + ln Y_i − ln X_i and the true effect is exactly R for every noise law:
normal (values 1 + 0.05 Z: CV 5 %), lognormal (ln X ~ N(0, 1)), Student t with 2 degrees of freedom
(ln X ~ 0.05 T₂, heavy tails). The effect cells draw the per-seed log ratio as N(ln R, sd²) with
sd 0.3 or 0.7. "supported" counts a verdict of supported (the claimed way: lower for R < 1, higher for
R > 1); at the margin that is a type I error.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NS = (3, 5, 10)
MARGIN = 0.1
NULL_OTHERS = 7  # a realistic command family: 8 claims (e.g. 2 claims x 2 lrs x 2 arms)


def _noise(law: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """ln X for one arm's n seeds."""
    if law == "normal":
        return np.log(np.abs(1 + 0.05 * rng.standard_normal(n)))
    if law == "lognormal":
        return rng.standard_normal(n)
    return 0.05 * rng.standard_t(2, n)


def _claim(log_ratios: np.ndarray, level: np.ndarray, better: str, test: str = "superiority",
           name: str = "m") -> dict:
    b = np.exp(level)
    return {"name": name, "better": better, "arm": list(b * np.exp(log_ratios)), "baseline": list(b),
            "test": test}


def _null_claims(rng: np.random.Generator, n: int, k: int) -> list[list[dict]]:
    return [[_claim(rng.normal(0, 0.3, n), rng.normal(0, 1, n), "lower")] for _ in range(k)]


def run_cell(args: tuple) -> tuple:
    """One cell: (kind, n, params, reps, seed) -> (kind, n, params, share supported, share refuted,
    share of any false verdict)."""
    import bncli

    kind, n, params, reps, seed = args
    rng = np.random.default_rng(seed)
    sup = ref = anyfalse = 0
    for _ in range(reps):
        level = rng.normal(0, 1, n)
        family = int(params.get("family", 1))
        if kind == "margin":  # exactly at the margin, the claimed way lower
            lr = math.log(1 / (1 + MARGIN)) + _noise(params["law"], rng, n) - _noise(params["law"], rng, n)
            claims = [[_claim(lr, level, "lower")]]
        elif kind == "effect":
            r, sd = params["ratio"], params["sd"]
            claims = [[_claim(rng.normal(math.log(r), sd, n), level, "higher")]]
        elif kind == "multi":  # 3 correlated metrics (rho 0.5), all with the same true effect
            r, sd, rho = params["ratio"], 0.3, 0.5
            cov = sd * sd * (rho * np.ones((3, 3)) + (1 - rho) * np.eye(3))
            z = rng.multivariate_normal(np.zeros(3), cov, n).T
            claims = [[_claim(math.log(r) + z[j], level + j, "lower", name=f"m{j}") for j in range(3)]]
        elif kind == "null":  # the global null: every claim's true effect is 1
            claims = _null_claims(rng, n, 8)
        else:  # "c9": lp / BN non-inferiority for a loss (lower), per-seed ratio CV 10 %
            r = params["ratio"]
            claims = [[_claim(rng.normal(math.log(r), 0.1, n), level, "lower", "non-inferiority")]]
        if family > 1:
            claims = claims + _null_claims(rng, n, family - 1)
        out = bncli.judge(claims, margin=MARGIN)
        sup += out[0].verdict == "supported"
        ref += out[0].verdict == "refuted"
        if kind == "null":
            anyfalse += any(c.verdict in ("supported", "refuted") for c in out)
    return kind, n, tuple(sorted(params.items())), sup / reps, ref / reps, anyfalse / reps


def cells(reps: int) -> list[tuple]:
    out = []
    seed = 0
    for n in NS:
        for law in ("normal", "lognormal", "t2"):
            out.append(("margin", n, {"law": law}, reps, seed := seed + 1))
        for fam in (1, 1 + NULL_OTHERS):
            for sd in (0.3, 0.7):
                for ratio in (1.2, 1.5, 3.0, 12.5):
                    out.append(("effect", n, {"ratio": ratio, "sd": sd, "family": fam}, reps, seed := seed + 1))
            for ratio in (1 / 1.1, 1 / 3):
                out.append(("multi", n, {"ratio": ratio, "family": fam}, reps, seed := seed + 1))
            for ratio in (1.0, 1.1, 0.8):
                out.append(("c9", n, {"ratio": ratio, "family": fam}, reps, seed := seed + 1))
        out.append(("null", n, {}, reps, seed := seed + 1))
    return out


def _se(p: float, reps: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / reps)


def tables(results: list[tuple], reps: int) -> str:
    by = {(k, n, p): (s, r, a) for k, n, p, s, r, a in results}

    def cell(kind: str, n: int, **params: float | str) -> tuple[float, float, float]:
        return by[(kind, n, tuple(sorted(params.items())))]

    def pct(v: float) -> str:
        return f"{100 * v:.1f} %"

    head = ["| " + " | ".join(f"n = {n}" for n in NS) + " |", "|---|" + "---|" * len(NS)]  # after a first column
    se = 100 * _se(0.025, reps)
    lines = [f"Repetitions per cell: {reps} (simulation standard error at 2.5 %: ±{se:.2f} points).", ""]
    lines += ["Type I at the margin (true effect exactly ×1/1.1, lower claimed; share called supported; "
              "target ≤ 2.5 % + simulation error):", "", "| noise " + head[0], head[1]]
    for law, label in (("normal", "normal, CV 5 %"), ("lognormal", "lognormal σ 1"), ("t2", "Student t, df 2")):
        lines.append(f"| {label} | " + " | ".join(pct(cell("margin", n, law=law)[0]) for n in NS) + " |")
    lines += ["", "Claim-level false verdicts under the global null (8 claims, every true effect 1; share "
              "of commands with any supported or refuted; target ≤ 5 %):", "", "| " + head[0], head[1],
              "| any false verdict | " + " | ".join(pct(cell("null", n)[2]) for n in NS) + " |"]
    for fam, title in ((1, "alone (a family of 1)"),
                       (1 + NULL_OTHERS, f"inside a command family of {1 + NULL_OTHERS} (7 null claims)")):
        lines += ["", f"Power, one metric, higher claimed, {title}: share supported:", "",
                  "| effect | log sd " + head[0], "|---" + head[1]]
        for sd in (0.3, 0.7):
            for ratio in (1.2, 1.5, 3.0, 12.5):
                vals = [pct(cell("effect", n, family=fam, ratio=ratio, sd=sd)[0]) for n in NS]
                lines.append(f"| ×{ratio:g} | {sd} | " + " | ".join(vals) + " |")
        lines += ["", f"Three correlated metrics (ρ 0.5, log sd 0.3, lower claimed), {title}: share supported:",
                  "", "| true effect " + head[0], head[1]]
        for ratio, label in ((1 / 1.1, "×1/1.1 (at the margin: type I)"), (1 / 3, "×1/3")):
            vals = [pct(cell("multi", n, family=fam, ratio=ratio)[0]) for n in NS]
            lines.append(f"| {label} | " + " | ".join(vals) + " |")
        lines += ["", f"C9 non-inferiority, ℓp / BN loss ratio (per-seed CV 10 %), {title}: share "
                  "'no worse than BN' / share 'worse than BN beyond the margin':", "",
                  "| ℓp / BN " + head[0], head[1]]
        for ratio in (1.0, 1.1, 0.8):
            vals = [cell("c9", n, family=fam, ratio=ratio) for n in NS]
            lines.append(f"| {ratio:g} | " + " | ".join(f"{pct(v[0])} / {pct(v[1])}" for v in vals) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    t0 = time.perf_counter()
    todo = cells(args.reps)
    with ProcessPoolExecutor(args.workers) as pool:
        results = list(pool.map(run_cell, todo, chunksize=1))
    print(tables(results, args.reps))
    print(f"\n{len(todo)} cells in {time.perf_counter() - t0:.0f} s ({args.workers} workers)")


if __name__ == "__main__":
    main()
