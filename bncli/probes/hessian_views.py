"""PyHessian's views of the Hessian (Yao et al. 2020): Hutchinson trace, top-k eigenvalues and the
spectral density by stochastic Lanczos quadrature, all on Hessian-vector products."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

from bncli.probes.hessian import DENSE_MAX, Tensors, _numpy_blas_single_threaded

# HVP-many: rows of V [m, n] -> rows of H V^T [m, n] (one batched double backward where it works)
HVPMany = Callable[[torch.Tensor], torch.Tensor]


def hvp_many_closure(loss_of_params: Callable[[Tensors], torch.Tensor], params: Tensors) -> tuple[HVPMany, int]:
    """(hvp_many, n): hvp_many(V) = V H for V [m, n] (H symmetric; a 1-D v gives H v), by one
    double backward with `is_grads_batched` (vmap over the backward), or one HVP per row where an
    op has no batching rule. `loss_of_params` is called once, on detached leaf aliases; nothing is
    written (see hessian.hvp_closure). Flat order: dict order, unused parameters left out."""
    with torch.enable_grad():
        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        loss = loss_of_params(leaves)
        keys = list(leaves)
        grads = torch.autograd.grad(loss, [leaves[k] for k in keys], create_graph=True, allow_unused=True)
    ps = [leaves[k] for k, g in zip(keys, grads, strict=True) if g is not None]
    gs = [g for g in grads if g is not None]
    live = [i for i, g in enumerate(gs) if g.requires_grad]
    sizes = [p.numel() for p in ps]
    n = sum(sizes)
    state = {"batched": True}

    def rows(v: torch.Tensor, batched: bool) -> torch.Tensor:
        m = v.shape[0]
        parts = [t.reshape(m, *p.shape).to(p) if batched else t.reshape(p.shape).to(p)
                 for t, p in zip(v.split(sizes, dim=1), ps, strict=True)]
        with torch.enable_grad():
            hv = torch.autograd.grad([gs[i] for i in live], ps, grad_outputs=[parts[i] for i in live],
                                     retain_graph=True, allow_unused=True, is_grads_batched=batched)
        return torch.cat([(torch.zeros(m, p.numel(), dtype=p.dtype, device=p.device) if h is None
                           else h.detach().reshape(m, -1)) for p, h in zip(ps, hv, strict=True)], dim=1)

    def many(v: torch.Tensor) -> torch.Tensor:
        one = v.dim() == 1
        v = v.reshape(1, -1) if one else v
        if not live:
            out = torch.zeros(v.shape[0], n, dtype=ps[0].dtype if ps else torch.float32)
        elif state["batched"] and v.shape[0] > 1:
            try:
                out = rows(v, True)
            except RuntimeError:  # no batching rule for some op: one HVP per row from now on
                state["batched"] = False
                out = torch.cat([rows(r.reshape(1, -1), False) for r in v])
        else:
            out = torch.cat([rows(r.reshape(1, -1), False) for r in v])
        return out[0] if one else out

    return many, n


def hutchinson_trace(
    hvp: HVPMany, n: int, *, tol: float = 0.01, min_samples: int = 8, max_samples: int = 200,
    block: int = 8, seed: int = 0,
) -> dict[str, Any]:
    """tr(H) by Hutchinson's estimator E[vᵀHv], v Rademacher (±1, numpy default_rng(seed)), drawn
    `block` at a time (one batched HVP each), until the running mean's standard error is at most
    tol·|mean| (at least min_samples), or max_samples. Keys: trace, trace_se (the standard error
    of the mean), samples, converged; plain floats."""
    if n == 0:
        return {"trace": 0.0, "trace_se": 0.0, "samples": 0, "converged": True}
    rng = np.random.default_rng(seed)
    vals: list[float] = []
    mean, se = math.nan, math.inf
    while len(vals) < max_samples:
        m = min(block, max_samples - len(vals))
        v = torch.from_numpy(rng.integers(0, 2, size=(m, n)).astype(np.float64) * 2 - 1)
        with torch.no_grad():
            hv = hvp(v).double().cpu()
        vals.extend((v * hv).sum(1).tolist())
        a = np.asarray(vals)
        if not np.all(np.isfinite(a)):
            return {"trace": math.nan, "trace_se": math.nan, "samples": len(vals), "converged": False}
        mean = float(a.mean())
        se = float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else math.inf
        if len(a) >= min_samples and se <= tol * abs(mean):
            break
    return {"trace": mean, "trace_se": se, "samples": len(vals), "converged": bool(se <= tol * abs(mean))}


def top_eigenvalues(
    hvp: HVPMany, n: int, k: int = 3, *, tol: float = 1e-3, max_iters: int = 300, seed: int = 0,
    dense_max: int = DENSE_MAX,
) -> dict[str, Any]:
    """The k algebraically largest Hessian eigenvalues, descending: ARPACK (eigsh 'LA') on the HVP
    operator, its matmat one batched HVP; for n <= dense_max the Hessian from n HVPs (one batched
    call) and numpy.linalg.eigh. Keys: eigenvalues (k plain floats, NaN where not found), hvps, dense."""
    k = max(0, min(int(k), n))
    if k == 0:
        return {"eigenvalues": [], "hvps": 0, "dense": n <= dense_max}
    count = 0

    def mat(x: np.ndarray) -> np.ndarray:
        nonlocal count
        x2 = np.asarray(x, dtype=np.float64).reshape(n, -1)
        count += x2.shape[1]
        with torch.no_grad():
            out = hvp(torch.from_numpy(np.ascontiguousarray(x2.T))).double().cpu().numpy().T
        return out.reshape(x.shape) if np.ndim(x) == 1 else out

    with _numpy_blas_single_threaded():
        if n <= max(dense_max, k + 1):
            h = mat(np.eye(n))
            evals = np.linalg.eigvalsh((h + h.T) / 2)[::-1][:k]
            return {"eigenvalues": [float(e) for e in evals], "hvps": count, "dense": True}
        op = LinearOperator((n, n), matvec=mat, matmat=mat, dtype=np.float64)
        v0 = np.random.default_rng(seed).standard_normal(n)
        try:
            w = eigsh(op, k=k, which="LA", v0=v0, tol=tol, maxiter=max_iters, return_eigenvectors=False)
        except ArpackNoConvergence as e:
            w = np.concatenate([e.eigenvalues, np.full(k - e.eigenvalues.size, np.nan)])
        except ArpackError:
            w = np.full(k, np.nan)
    w = np.sort(w)[::-1]
    return {"eigenvalues": [float(e) for e in w], "hvps": count, "dense": False}


def lanczos_tridiagonal(hvp: HVPMany, n: int, steps: int, v0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) of `steps` Lanczos iterations from v0 with full reorthogonalization (float64):
    the tridiagonal T whose eigenpairs give the quadrature. Stops early on an invariant subspace."""
    q = v0 / np.linalg.norm(v0)
    basis = [q]
    alphas: list[float] = []
    betas: list[float] = []
    for j in range(min(steps, n)):
        with torch.no_grad():
            w = hvp(torch.from_numpy(q)).double().cpu().numpy().reshape(-1)
        a = float(w @ q)
        alphas.append(a)
        b_mat = np.stack(basis, axis=1)
        w = w - b_mat @ (b_mat.T @ w)
        w = w - b_mat @ (b_mat.T @ w)  # twice is enough (Kahan)
        b = float(np.linalg.norm(w))
        if j == min(steps, n) - 1 or b <= 1e-10 * max(abs(a), 1.0) or not math.isfinite(b):
            break
        betas.append(b)
        q = w / b
        basis.append(q)
    return np.asarray(alphas), np.asarray(betas)


def slq_density(
    hvp: HVPMany, n: int, *, runs: int = 3, steps: int = 80, seed: int = 0, grid_points: int = 400,
    sigma: float = 0.01, pad: float = 0.05,
) -> dict[str, Any]:
    """The Hessian's eigenvalue density by stochastic Lanczos quadrature: `runs` Lanczos runs
    (Gaussian start vectors from numpy default_rng(seed)) of `steps` iterations give Ritz nodes
    θ_j with weights τ_j (squared first components of T's eigenvectors), averaged over runs;
    each node is broadened by a Gaussian of width sigma x the nodes' range, on a grid of
    grid_points over that range padded by pad x the range each side, normalized to integral 1
    (trapezoid). Keys: grid, density, nodes, weights (plain lists), runs, steps."""
    rng = np.random.default_rng(seed)
    nodes: list[float] = []
    weights: list[float] = []
    used = 0
    with _numpy_blas_single_threaded():
        for _ in range(max(1, runs)):
            a, b = lanczos_tridiagonal(hvp, n, steps, rng.standard_normal(n))
            used = max(used, len(a))
            t = np.diag(a) + np.diag(b[: len(a) - 1], 1) + np.diag(b[: len(a) - 1], -1)
            theta, vecs = np.linalg.eigh(t)
            nodes.extend(theta.tolist())
            weights.extend((vecs[0] ** 2 / max(1, runs)).tolist())
    nd, wt = np.asarray(nodes), np.asarray(weights)
    if nd.size == 0 or not np.all(np.isfinite(nd)):
        return {"grid": [], "density": [], "nodes": nodes, "weights": weights, "runs": runs, "steps": used}
    lo, hi = float(nd.min()), float(nd.max())
    width = max(hi - lo, 1e-12 * max(abs(lo), abs(hi), 1.0))
    grid = np.linspace(lo - pad * width, hi + pad * width, grid_points)
    s = sigma * width
    kern = np.exp(-((grid[:, None] - nd[None, :]) ** 2) / (2 * s * s)) / (s * math.sqrt(2 * math.pi))
    dens = (wt[None, :] * kern).sum(1)
    area = float(np.trapezoid(dens, grid)) if hasattr(np, "trapezoid") else float(np.trapz(dens, grid))
    if area > 0:
        dens = dens / area
    return {"grid": grid.tolist(), "density": dens.tolist(), "nodes": nd.tolist(), "weights": wt.tolist(),
            "runs": int(runs), "steps": int(used)}


def hessian_views(
    loss_of_params: Callable[[Tensors], torch.Tensor], params: Tensors, *, trace: bool = True, top_k: int = 3,
    density: bool = False, density_runs: int = 3, density_steps: int = 80, trace_tol: float = 0.01,
    trace_max: int = 200, eig_tol: float = 1e-3, eig_iters: int = 300, seed: int = 0,
) -> dict[str, Any]:
    """The views asked for, at params, as plain data: hessian_trace, hessian_trace_se,
    hessian_trace_samples, hessian_trace_converged; hessian_top (k floats, descending);
    hessian_density {grid, density, nodes, weights, runs, steps}. `loss_of_params` is called once
    (a functional_call on buffer copies); nothing is written (no parameter, buffer, .grad or RNG)."""
    hvp, n = hvp_many_closure(loss_of_params, params)
    out: dict[str, Any] = {"hessian_n_params": n}
    if trace:
        t = hutchinson_trace(hvp, n, tol=trace_tol, max_samples=trace_max, seed=seed)
        out.update(hessian_trace=t["trace"], hessian_trace_se=t["trace_se"],
                   hessian_trace_samples=t["samples"], hessian_trace_converged=t["converged"])
    if top_k > 0:
        top = top_eigenvalues(hvp, n, top_k, tol=eig_tol, max_iters=eig_iters, seed=seed + 1)
        out["hessian_top"] = top["eigenvalues"]
    if density:
        out["hessian_density"] = slq_density(hvp, n, runs=density_runs, steps=density_steps, seed=seed + 2)
    return out
