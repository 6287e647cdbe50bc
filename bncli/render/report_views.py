"""The report's table of the landscape views' numbers (issue 33; evidence beside C4, never
judged): per learning rate and arm, the Hessian trace and top eigenvalues at the last measured
step, the end surface's loss range and rise (a sharpness figure), and, when the runs measured the
line from the initial to the final weights, its barrier. Read from a saved result only."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bncli.claim_text import num
from bncli.results import CommandResult

PROBE = "landscape_views"
NOTE = ("Evidence beside C4, shown, not judged (C4's verdict keeps its own metrics). Means over the seeds "
        "that measured each view. tr H: Hessian trace (Hutchinson) at the last measured step, ± its standard "
        "error; λ₁…λₖ: the largest Hessian eigenvalues there (Lanczos); surface: the filter-normalized loss "
        "surface at the end (Li et al. 2018), its loss at the centre L(θ), its range (max − min within the "
        "span) and rise (max − L(θ), a sharpness figure); barrier: the largest rise of the loss above the "
        "chord between the initial and the final weights' losses on the line θ₀ + t(θ − θ₀) (the sampled t "
        "nearest 0 and 1).")


def barrier(ts: Sequence[float], losses: Sequence[float]) -> float:
    """The largest rise of the loss above the chord between the line's sampled ends in [0, 1]
    (t = 0 and 1 when the grid holds them, else the sampled t nearest inside): max of
    L(t) − chord(t). NaN with fewer than two samples in [0, 1], inf when the line blew up there."""
    eps = 1e-9  # the saved t are 0.5 + grid coordinates: exact only up to rounding
    pts = sorted((float(t), float(v)) for t, v in zip(ts, losses, strict=False) if -eps <= float(t) <= 1.0 + eps)
    if len(pts) < 2:
        return math.nan
    (t0, l0), (t1, l1) = pts[0], pts[-1]
    if not all(math.isfinite(v) for _, v in pts):
        return math.inf
    return max(v - (l0 + (t - t0) / (t1 - t0) * (l1 - l0)) for t, v in pts)


def _mean(values: Sequence[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return sum(vals) / len(vals) if vals else math.nan


def view_rows(result: CommandResult) -> tuple[list[str], list[list[str]]] | None:
    """(head, rows) of the views' numbers per learning rate x arm; None when the result holds no view.
    Columns only for what was measured; the numbers are the ones `bncli lipschitz` printed (its
    `views` table), the barrier computed here from the saved line."""
    table = result.tables.get("views")
    rows_in = [r for r in table if isinstance(r, dict)] if isinstance(table, list) else []
    barriers: dict[tuple[float, str], list[float]] = {}
    for r in result.runs:
        line = (r.probes.get(PROBE) or {}).get("interpolation") if isinstance(r.probes.get(PROBE), dict) else None
        if isinstance(line, dict) and line.get("t") and line.get("loss"):
            barriers.setdefault((r.lr, r.arm), []).append(barrier(line["t"], line["loss"]))
    if not rows_in and not barriers:
        return None
    if not rows_in:  # an older document: the line alone
        rows_in = [{"lr": lr, "arm": arm, "n_seeds": len(b)} for (lr, arm), b in barriers.items()]
    keys = {k for r in rows_in for k in r}
    k_max = max([int(k[6:-4]) for k in keys if k.startswith("lambda") and k.endswith("_end")
                 and k[6:-4].isdigit()] + [0])
    cols: list[tuple[str, str]] = [("lr", "η"), ("arm", "arm"), ("n_seeds", "seeds")]
    if "trace_end" in keys:
        cols += [("trace_end", "tr H"), ("trace_se_end", "± s.e.")]
    cols += [(f"lambda{i}_end", f"λ{i}") for i in range(1, min(k_max, 3) + 1)]
    if "surface_range" in keys:
        cols += [("surface_centre", "L(θ)"), ("surface_range", "surface range"), ("surface_rise", "rise (sharpness)")]
    has_barrier = bool(barriers)
    head = [label for _, label in cols] + (["barrier θ₀→θ"] if has_barrier else [])
    out = []
    for r in rows_in:
        cells = []
        for k, _ in cols:
            v = r.get(k)
            if k == "arm":
                cells.append(str(v))
            elif k == "n_seeds":
                cells.append(str(v) if v is not None else "-")
            else:
                cells.append(num(v if isinstance(v, (int, float)) else None, 4))
        if "trace_end" in keys and r.get("trace_converged_end", 1.0) < 1.0:
            cells[4] += " (> tol)"  # the trace's s.e. above its tolerance at the iteration cap
        if has_barrier:
            cells.append(num(_mean(barriers.get((r.get("lr"), r.get("arm")), [])), 4))
        out.append(cells)
    return head, out


def numeric_columns(head: Sequence[str]) -> tuple[int, ...]:
    """The columns shown right-aligned (all but the arm)."""
    return tuple(i for i, h in enumerate(head) if h != "arm")
