"""Benchmark the top Hessian eigenvalue: today's power iteration vs Lanczos (bncli.probes.hessian).

Run: python benchmarks/bench_hessian.py [--repeats 7] [--steps 200] [--cap 3000]
The 3 x 100 sigmoid MLP of sample_configs/mlp_sigmoid_digits.yaml (both arms, BN in training
mode as the lipschitz probe uses it), one batch of 60 digits, at initialization and after
--steps SGD steps. The reference is Lanczos in float64 at tol 1e-8. "Equal accuracy" is the
number of power iterations whose eigenvalue estimate is first (and stays) within 1e-3 of the
reference lambda_max, found by running power iteration with no early stop up to --cap HVPs.
Times are medians of --repeats interleaved calls (CPU timings on a shared machine are noisy).
"""

from __future__ import annotations

import argparse
import copy
import math
from pathlib import Path

import torch
from _timing import interleaved_medians
from torch import nn
from torch.func import functional_call

from bncli.data import load_data
from bncli.models import loss_fn_for
from bncli.probes.base import buffer_copies
from bncli.probes.hessian import hessian_extremes, hvp_closure
from bncli.probes.landscape import hessian_top_eig
from bncli.runner.build import build_arm_model, initial_model
from bncli.runtime import make_generator
from bncli.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1e-3


def loss_closure(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor, bufs: dict):
    def loss_of(params: dict[str, torch.Tensor]) -> torch.Tensor:
        return loss_fn(functional_call(model, (params, buffer_copies(bufs)), (x,)), y)

    return loss_of


def states(steps: int):
    """(label, arm, model in train mode, x, y, loss_fn): each arm at init and after `steps` steps."""
    spec = load_spec(ROOT / "sample_configs" / "mlp_sigmoid_digits.yaml")
    data = load_data(spec.data)
    loss_fn = loss_fn_for(data.task)
    x, y = data.probe_batch(spec.train.batch_size)
    lr = spec.train.lr[0] if isinstance(spec.train.lr, list) else spec.train.lr
    init = initial_model(spec, data, spec.seed)
    for arm in spec.arms:
        model = build_arm_model(spec, arm, init, data, spec.seed)
        model.train()
        yield "init", arm.name, model, x, y, loss_fn
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        gen = make_generator(spec.seed)
        for _ in range(steps):
            idx = torch.randint(0, data.n_train, (spec.train.batch_size,), generator=gen)
            opt.zero_grad()
            loss_fn(model(data.x_train[idx]), data.y_train[idx]).backward()
            opt.step()
        yield f"{steps} steps", arm.name, model, x, y, loss_fn


def reference(model: nn.Module, loss_fn, x, y) -> dict:
    """lambda_max and lambda_min in float64 at tol 1e-8 (a model copy; the original is untouched)."""
    m64 = copy.deepcopy(model).double()
    theta = {n: p.detach() for n, p in m64.named_parameters()}
    bufs = {n: b.detach().clone() for n, b in m64.named_buffers()}
    ref = hessian_extremes(loss_closure(m64, loss_fn, x.double(), y, bufs), theta, tol=1e-8, max_iters=3000)
    if not (ref["converged_max"] and ref["converged_min"]):
        print(f"  (warning: reference not converged: residuals {ref['residual_max']:.1e}, "
              f"{ref['residual_min']:.1e})")
    return ref


def power_iters_to_target(hvp, shapes: list[torch.Size], ref_max: float, cap: int) -> int | None:
    """Power iteration exactly as hessian_top_eig (same start vector), no early stop: the first
    iteration from which the Rayleigh quotient stays within TARGET of ref_max (None: never)."""
    gen = torch.Generator().manual_seed(0)
    # hessian_top_eig draws one randn per parameter tensor in dict order; so does this
    v = torch.cat([torch.randn(s, generator=gen, dtype=torch.float64).reshape(-1) for s in shapes])
    v = (v / v.norm()).float()
    first = None
    for i in range(1, cap + 1):
        hv = hvp(v)
        eig = float(v.double() @ hv.double())
        ok = math.isfinite(eig) and abs(eig - ref_max) <= TARGET * abs(ref_max)
        first = (first or i) if ok else None
        v = hv / hv.norm()
    return first


def lanczos_steps_to_target(loss_of, theta: dict, ref_max: float, cap: int = 60) -> int | None:
    """Fewest Lanczos steps (HVPs, no restart: ncv >= budget) whose Ritz value is within TARGET of
    ref_max and stays so (None: not within `cap`). ARPACK itself checks only after each sweep."""
    first = None
    for k in range(1, cap + 1):
        r = hessian_extremes(loss_of, theta, which=("LA",), max_iters=k, ncv=max(k, 2), tol=1e-12)
        ok = abs(r["lambda_max"] - ref_max) <= TARGET * abs(ref_max)
        first = (first or k) if ok else None
        if first is not None and k >= first + 5:
            break
    return first


def measure(model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor, repeats: int, cap: int) -> dict:
    """One network state: reference, power iteration (today's default and at equal accuracy), Lanczos."""
    theta = {n: p.detach() for n, p in model.named_parameters()}
    bufs = {n: b.detach().clone() for n, b in model.named_buffers()}
    loss_of = loss_closure(model, loss_fn, x, y, bufs)
    ref = reference(model, loss_fn, x, y)
    lmax = ref["lambda_max"]
    out: dict = {}

    def power(iters: int, tol: float) -> None:
        gen = torch.Generator().manual_seed(0)
        out["p"] = hessian_top_eig(model, loss_fn, x, y, theta, bufs, iters, tol, gen)

    def lanczos(which: tuple[str, ...]) -> None:
        out["l"] = hessian_extremes(loss_of, theta, which=which, tol=TARGET, max_iters=100)

    # equal accuracy: as many power iterations as it takes to stay within 1e-3 of lambda_max
    hvp, n = hvp_closure(loss_of, theta)
    k = power_iters_to_target(hvp, [p.shape for p in theta.values()], lmax, cap)
    cases = {  # today's default (cap 20, stop when the estimate moves by < 1e-3), then equal accuracy
        "pow": lambda: lambda: power(20, 1e-3),
        "eq": lambda: lambda: power(k, 0.0),
        "la": lambda: lambda: lanczos(("LA",)),
        "both": lambda: lambda: lanczos(("LA", "SA")),
    }
    if not k:
        del cases["eq"]
    for case in cases.values():  # warm-up
        case()()
    t = interleaved_medians(cases, repeats)
    eq_eig = math.nan
    if k:
        power(k, 0.0)
        eq_eig = out["p"][0]
    power(20, 1e-3)
    p_eig, p_it, p_conv = out["p"]
    lanczos(("LA",))
    la = out["l"]
    lanczos(("LA", "SA"))
    t_pow, t_eq, t_la, t_both = t["pow"], t.get("eq", math.inf), t["la"], t["both"]
    return {"n": n, "ref": ref, "power": (p_eig, p_it, p_conv), "t_pow": t_pow, "k": k, "eq_eig": eq_eig, "t_eq": t_eq,
            "la": la, "t_la": t_la, "both": out["l"], "t_both": t_both,
            "k_lanczos": lanczos_steps_to_target(loss_of, theta, lmax)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--cap", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"torch {torch.__version__}, {a.threads} thread(s), medians of {a.repeats} repeats; "
          f"3x100 sigmoid MLP, digits batch 60, BN in training mode")
    rows = [(label, arm, measure(model, loss_fn, x, y, a.repeats, a.cap))
            for label, arm, model, x, y, loss_fn in states(a.steps)]

    def rel(v: float, ref: float) -> float:
        return abs(v - ref) / abs(ref)

    print()
    print("reference: Lanczos in float64 at tol 1e-8. err = |lambda - ref| / |ref|. Lanczos HVPs include its one")
    print("checking HVP per eigenvalue. Times: medians, ms, the whole call (graph build + HVPs + ARPACK).")
    hdr = (f"{'state':<9} {'arm':<9} {'ref l_max':>9} {'ref l_min':>9} | {'power 20/1e-3':>13} {'it':>3} "
           f"{'conv':>5} {'err':>7} {'ms':>5} | {'power to 1e-3':>13} {'err':>7} {'ms':>5} | "
           f"{'Lanczos LA':>10} {'HVPs':>4} "
           f"{'conv':>5} {'err':>7} {'ms':>5} | {'k-step to 1e-3':>14} | {'LA+SA l_min':>11} {'conv':>5} "
           f"{'err':>7} {'HVPs':>4} {'ms':>5}")
    print(hdr)
    print("-" * len(hdr))
    for label, arm, r in rows:
        lmax, lmin = r["ref"]["lambda_max"], r["ref"]["lambda_min"]
        p_eig, p_it, p_conv = r["power"]
        la, both = r["la"], r["both"]
        k_s = f"{r['k']} it" if r["k"] else f">{a.cap} it"
        kl_s = f"{r['k_lanczos']} steps" if r["k_lanczos"] else "> 60 steps"
        print(f"{label:<9} {arm:<9} {lmax:9.5g} {lmin:9.4g} | {p_eig:13.5g} {p_it:3d} {str(p_conv):>5} "
              f"{rel(p_eig, lmax):7.1e} {r['t_pow'] * 1e3:5.1f} | "
              f"{k_s:>13} {rel(r['eq_eig'], lmax):7.1e} {r['t_eq'] * 1e3:5.1f} | "
              f"{la['lambda_max']:10.5g} {la['hvps']:4d} {str(la['converged_max']):>5} "
              f"{rel(la['lambda_max'], lmax):7.1e} {r['t_la'] * 1e3:5.1f} | {kl_s:>14} | "
              f"{both['lambda_min']:11.4g} {str(both['converged_min']):>5} {rel(both['lambda_min'], lmin):7.1e} "
              f"{both['hvps']:4d} {r['t_both'] * 1e3:5.1f}")
    print()
    for label, arm, r in rows:
        la = r["la"]
        ratio = r["t_eq"] / r["t_la"]
        k_s = r["k"] or f">{a.cap}"
        print(f"{label}, {arm} ({r['n']} parameters): to 1e-3 of lambda_max power iteration needs {k_s} HVPs "
              f"({r['t_eq'] * 1e3:.1f} ms); Lanczos (eigsh, tol 1e-3) {la['hvps']} HVPs ({r['t_la'] * 1e3:.1f} ms, "
              f"residual {la['residual_max']:.1e}) -> time power / Lanczos = {ratio:.2f}")


if __name__ == "__main__":
    main()
