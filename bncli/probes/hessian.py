"""Extreme Hessian eigenvalues (lambda_max and lambda_min) by Lanczos (ARPACK) on Hessian-vector products."""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext

import numpy as np
import torch
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

Tensors = dict[str, torch.Tensor]
HVP = Callable[[torch.Tensor], torch.Tensor]
Result = dict[str, float | bool | int | None]

# Up to this many parameters the Hessian is formed densely (n HVPs) and diagonalised exactly:
# ARPACK needs k < ncv <= n, and below a few hundred parameters n HVPs cost about what Lanczos does.
DENSE_MAX = 200
# Lanczos vectors ARPACK keeps between restarts (its ncv); fewer when the HVP budget is smaller.
NCV = 20

_ENDS = {"LA": "max", "SA": "min"}


class _BudgetSpent(Exception):
    """Raised from the matvec when the HVP budget is used up: ARPACK is stopped where it is."""


class _NonFinite(Exception):
    """Raised from the matvec when an HVP is NaN or infinite (a blown-up landscape)."""


_BLAS_CONTROLLER: list = []  # the threadpoolctl selection of numpy/scipy's BLAS, found once


def _numpy_blas() -> object | None:
    if not _BLAS_CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
            _BLAS_CONTROLLER.append(None)
            return None
        ctl = ThreadpoolController()
        torch_dir = os.path.realpath(os.path.dirname(torch.__file__))
        paths = [lib.filepath for lib in ctl.select(user_api="blas").lib_controllers
                 if not os.path.realpath(lib.filepath).startswith(torch_dir)]
        _BLAS_CONTROLLER.append(ctl.select(filepath=paths) if paths else None)
    return _BLAS_CONTROLLER[0]


@contextmanager
def _numpy_blas_single_threaded() -> Iterator[None]:
    """numpy/scipy's BLAS on one thread meanwhile (torch's own threads untouched).

    ARPACK's BLAS calls are small, and OpenBLAS's idle threads spin for a while after each one,
    competing with the torch HVP that follows: 5x slower Lanczos on a 2-core machine without this.
    """
    ctl = _numpy_blas()
    if ctl is None:
        yield
        return
    with ctl.limit(limits=1):  # type: ignore[attr-defined]
        yield


def hvp_closure(loss_of_params: Callable[[Tensors], torch.Tensor], params: Tensors) -> tuple[HVP, int]:
    """(hvp, n): hvp(v) = H v for flat v of length n, H the Hessian of loss_of_params at params.

    `loss_of_params` is called once, on detached leaf aliases of `params` (values are never
    written); each HVP is a double backward through that one graph (torch.autograd.grad with
    retain_graph, never .backward, so no .grad is touched). Parameters the loss does not use are
    left out of the flat vector, as in landscape.hessian_top_eig. Flat order: dict order.
    """
    with torch.enable_grad():
        leaves = {k: v.detach().requires_grad_(True) for k, v in params.items()}
        loss = loss_of_params(leaves)
        keys = list(leaves)
        grads = torch.autograd.grad(loss, [leaves[k] for k in keys], create_graph=True, allow_unused=True)
    used = [(leaves[k], g) for k, g in zip(keys, grads) if g is not None]
    ps = [p for p, _ in used]
    sizes = [p.numel() for p in ps]
    n = sum(sizes)
    # a gradient that does not depend on the parameters (a linear term) contributes no curvature
    live = [i for i, (_, g) in enumerate(used) if g.requires_grad]

    one_kind = len({(p.dtype, p.device) for p in ps}) == 1

    def hvp(v: torch.Tensor) -> torch.Tensor:
        if one_kind:
            v = v.to(ps[0])
        parts = [t.reshape(p.shape).to(p) for t, p in zip(v.split(sizes), ps)]
        if not live:
            return torch.zeros(n, dtype=ps[0].dtype if ps else torch.float32)
        with torch.enable_grad():
            hv = torch.autograd.grad([used[i][1] for i in live], ps, grad_outputs=[parts[i] for i in live],
                                     retain_graph=True, allow_unused=True)
        return torch.cat([(torch.zeros_like(p) if h is None else h.detach()).reshape(-1) for p, h in zip(ps, hv)])

    return hvp, n


def _relative_residual(hv: np.ndarray, lam: float, vec: np.ndarray) -> float:
    """||Hv - lam v|| / |lam| for unit v; 0 when both are 0, inf when only lam is."""
    r = float(np.linalg.norm(hv - lam * vec))
    if not math.isfinite(r) or not math.isfinite(lam):
        return math.nan
    if lam == 0.0:
        return 0.0 if r == 0.0 else math.inf
    return r / abs(lam)


def _rayleigh_ritz(pairs: Sequence[tuple[np.ndarray, np.ndarray]], which: str) -> tuple[float, np.ndarray]:
    """Best Ritz pair (largest or smallest) over the span of the stored (v, Hv) pairs."""
    v = np.stack([a for a, _ in pairs], axis=1)
    hv = np.stack([b for _, b in pairs], axis=1)
    u, s, wt = np.linalg.svd(v, full_matrices=False)
    keep = s > s[0] * 1e-8
    # Q = V W S^-1 is an orthonormal basis of span(V); HQ follows from the stored HV
    basis_map = wt[keep].T / s[keep]
    q, hq = u[:, keep], hv @ basis_map
    t = q.T @ hq
    evals, evecs = np.linalg.eigh((t + t.T) / 2)
    j = -1 if which == "LA" else 0
    vec = q @ evecs[:, j]
    return float(evals[j]), vec / np.linalg.norm(vec)


def _lanczos_end(
    matvec: Callable[[np.ndarray], np.ndarray], n: int, which: str, v0: np.ndarray,
    tol: float, max_iters: int, ncv: int,
) -> tuple[float, np.ndarray, int]:
    """(eigenvalue, unit eigenvector, HVPs used) at one end of the spectrum, at most max_iters HVPs.

    ARPACK (scipy eigsh, implicitly restarted Lanczos) stops by its own Ritz estimate; when it
    runs out of budget or restarts, or reports no converged pair, the answer is the best Ritz
    pair over the last Lanczos vectors it asked for (kept here, ncv + 1 of them).
    """
    count = 0
    kept: deque[tuple[np.ndarray, np.ndarray]] = deque(maxlen=ncv + 1)

    def mv(x: np.ndarray) -> np.ndarray:
        nonlocal count
        if count >= max_iters:
            raise _BudgetSpent
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        hx = matvec(x)
        count += 1
        if not np.all(np.isfinite(hx)):
            raise _NonFinite
        kept.append((x.copy(), hx))
        return hx

    op = LinearOperator((n, n), matvec=mv, dtype=np.float64)
    try:
        w, vecs = eigsh(op, k=1, which=which, v0=v0, ncv=ncv, maxiter=max_iters, tol=tol)
        lam, vec = float(w[0]), vecs[:, 0]
    except ArpackNoConvergence as e:
        if e.eigenvalues.size:
            lam, vec = float(e.eigenvalues[0]), e.eigenvectors[:, 0]
        else:
            lam, vec = _rayleigh_ritz(kept, which)
    except _NonFinite:
        return math.nan, np.full(n, math.nan), count
    except (_BudgetSpent, ArpackError):
        if not kept:
            return math.nan, np.full(n, math.nan), count
        lam, vec = _rayleigh_ritz(kept, which)
    return lam, vec / np.linalg.norm(vec), count


def lanczos_extremes(
    hvp: HVP,
    n: int,
    *,
    tol: float = 1e-3,
    max_iters: int = 100,
    seed: int = 0,
    which: tuple[str, ...] = ("LA", "SA"),
    dense_max: int = DENSE_MAX,
    ncv: int = NCV,
    blas_limit: bool = True,
) -> Result:
    """lambda_max ('LA', algebraically largest: sharpness) and/or lambda_min ('SA', smallest
    algebraic: negative curvature) of the symmetric operator v -> hvp(v) of size n.

    At most `max_iters` Lanczos HVPs per eigenvalue (like power iteration's cap), then one more
    per eigenvalue to check it: converged_* means ||Hv - lambda v|| <= tol |lambda| for the
    returned unit v (residual_* is that ratio), whatever ARPACK said. For n <= dense_max the
    Hessian is formed from n HVPs and diagonalised exactly instead (max_iters does not apply).
    The start vector comes from numpy.random.default_rng(seed), never a global RNG. The ends
    not asked for are None. All numbers are plain Python floats, bools and ints.
    """
    bad = [w for w in which if w not in _ENDS]
    if bad or not which:
        raise ValueError(f"which: expected 'LA' and/or 'SA', got {which!r}")
    out: Result = {"n_params": n, "hvps": 0, "dense": False}
    for end in _ENDS.values():
        out.update({f"lambda_{end}": None, f"residual_{end}": None, f"converged_{end}": None})
    if n == 0:
        for w in which:
            end = _ENDS[w]
            out.update({f"lambda_{end}": 0.0, f"residual_{end}": 0.0, f"converged_{end}": True})
        return out

    def matvec(x: np.ndarray) -> np.ndarray:
        # float32 HVPs are fine; the Lanczos side runs in float64
        with torch.no_grad():
            return hvp(torch.from_numpy(x)).detach().double().cpu().numpy().reshape(-1)

    with _numpy_blas_single_threaded() if blas_limit else nullcontext():
        found, hvps = _extremes(matvec, n, which, tol, max_iters, seed, dense_max, ncv)
        out["dense"] = n <= max(dense_max, 2)
        for w in which:
            end = _ENDS[w]
            lam, vec = found[w]
            if math.isfinite(lam):
                res = _relative_residual(matvec(vec), lam, vec)  # the check: one HVP per eigenvalue
                hvps += 1
            else:
                res = math.nan
            out.update({f"lambda_{end}": float(lam), f"residual_{end}": float(res),
                        f"converged_{end}": bool(res <= tol)})
    out["hvps"] = int(hvps)
    return out


def _extremes(
    matvec: Callable[[np.ndarray], np.ndarray], n: int, which: tuple[str, ...], tol: float,
    max_iters: int, seed: int, dense_max: int, ncv: int,
) -> tuple[dict[str, tuple[float, np.ndarray]], int]:
    """{'LA' / 'SA': (eigenvalue, unit eigenvector)} and the HVPs used: dense or Lanczos."""
    hvps = 0
    found: dict[str, tuple[float, np.ndarray]] = {}
    if n <= max(dense_max, 2):
        # tiny nets: eigsh cannot run (it needs k < ncv <= n) or saves nothing, so the dense
        # Hessian from n HVPs and numpy.linalg.eigh, exact up to the HVP's rounding
        cols = np.empty((n, n))
        for i in range(n):
            e = np.zeros(n)
            e[i] = 1.0
            cols[:, i] = matvec(e)
        hvps += n
        if np.all(np.isfinite(cols)):
            evals, evecs = np.linalg.eigh((cols + cols.T) / 2)
            found = {"LA": (float(evals[-1]), evecs[:, -1]), "SA": (float(evals[0]), evecs[:, 0])}
        else:
            found = {w: (math.nan, np.full(n, math.nan)) for w in which}
    else:
        v0 = np.random.default_rng(seed).standard_normal(n)
        budget = max(1, int(max_iters))
        m = min(n, max(2, min(int(ncv), budget)))
        for w in which:
            lam, vec, used = _lanczos_end(matvec, n, w, v0, tol, budget, m)
            hvps += used
            found[w] = (lam, vec)
    return found, hvps


def hessian_extremes(
    loss_of_params: Callable[[Tensors], torch.Tensor],
    params: Tensors,
    *,
    tol: float = 1e-3,
    max_iters: int = 100,
    seed: int = 0,
    which: tuple[str, ...] = ("LA", "SA"),
    dense_max: int = DENSE_MAX,
    ncv: int = NCV,
) -> Result:
    """Extreme Hessian eigenvalues of loss_of_params at params (see lanczos_extremes).

    `loss_of_params(params) -> scalar` is called once (e.g. a functional_call with BN buffer
    copies, in whichever BN mode the model is in). Nothing is mutated: no parameter, .grad,
    buffer or RNG state. Keys: lambda_max, lambda_min, residual_max, residual_min,
    converged_max, converged_min, hvps, dense, n_params.
    """
    hvp, n = hvp_closure(loss_of_params, params)
    return lanczos_extremes(hvp, n, tol=tol, max_iters=max_iters, seed=seed, which=which,
                            dense_max=dense_max, ncv=ncv)


def _arpack_serial() -> bool:
    """Whether scipy's ARPACK runs one solve at a time (before scipy 1.15 a process-wide lock
    guarded its Fortran state: side-by-side runs in threads would wait on each other forever)."""
    from scipy.sparse.linalg._eigen.arpack import arpack

    return hasattr(arpack, "_ARPACK_LOCK")


_ARPACK_SERIAL = _arpack_serial()


class _Rounds:
    """The rendezvous of side-by-side Lanczos runs: each member's thread posts a vector and waits;
    when every member still running has posted, the coordinator computes all their products in
    one batched call (`batched({member: v}) -> {member: Hv}`) and hands them back."""

    def __init__(self, members: Sequence[int], batched: Callable[[dict[int, torch.Tensor]], dict[int, torch.Tensor]]):
        self.cond = threading.Condition()
        self.live = set(members)
        self.requests: dict[int, torch.Tensor] = {}
        self.results: dict[int, torch.Tensor] = {}
        self.batched = batched
        self.failed: BaseException | None = None

    def hvp(self, k: int) -> HVP:
        def call(v: torch.Tensor) -> torch.Tensor:
            with self.cond:
                self.requests[k] = v
                self.cond.notify_all()
                while k not in self.results:
                    if self.failed is not None:
                        raise RuntimeError("the batched HVP failed") from self.failed
                    self.cond.wait()
                return self.results.pop(k)

        return call

    def finished(self, k: int) -> None:
        with self.cond:
            self.live.discard(k)
            self.cond.notify_all()

    def serve(self) -> None:
        with self.cond:
            while True:
                while self.live and not self.live <= set(self.requests):
                    self.cond.wait()
                if not self.live:
                    return
                todo, self.requests = self.requests, {}
                try:
                    self.results.update(self.batched(todo))
                except BaseException as e:  # the members' threads stop; the caller re-raises
                    self.failed = e
                    self.cond.notify_all()
                    raise
                self.cond.notify_all()


def lanczos_extremes_group(
    batched: Callable[[dict[int, torch.Tensor]], dict[int, torch.Tensor]],
    n: int,
    seeds: Sequence[int],
    **kw: object,
) -> list[Result]:
    """lanczos_extremes for M symmetric operators of size n side by side (M members of a fused
    group): member k's Lanczos (ARPACK, its own start vector from seeds[k], its own stopping by
    its own Ritz estimates and residual checks) runs in a thread of its own; every round, one
    call `batched({k: v_k}) -> {k: H_k v_k}` gives all the products the running members asked
    for (one HVP of the stacked model: members are independent, so its Hessian is
    block-diagonal). Each result is what lanczos_extremes gives for that operator alone."""
    m = len(seeds)
    if _ARPACK_SERIAL:  # an older scipy: one ARPACK run at a time; the members one after another
        with _numpy_blas_single_threaded():
            return [lanczos_extremes(lambda v, k=k: batched({k: v})[k], n, seed=int(seeds[k]),  # type: ignore[misc]
                                     blas_limit=False, **kw) for k in range(m)]  # type: ignore[arg-type]
    rounds = _Rounds(range(m), batched)
    out: list[Result | None] = [None] * m
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            out[k] = lanczos_extremes(rounds.hvp(k), n, seed=int(seeds[k]), blas_limit=False, **kw)  # type: ignore[arg-type]
        except BaseException as e:  # noqa: BLE001 - re-raised by the caller
            errors.append(e)
        finally:
            rounds.finished(k)

    with _numpy_blas_single_threaded():
        threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(m)]
        for t in threads:
            t.start()
        try:
            rounds.serve()
        finally:
            for t in threads:
                t.join()
    if errors:
        raise errors[0]
    return [r for r in out if r is not None]
