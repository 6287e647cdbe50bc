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
        "chord between the initial and the final weights' losses on the line θ₀ + t(θ − θ₀), t in [0, 1].")


def barrier(ts: Sequence[float], losses: Sequence[float]) -> float:
    """The loss barrier on the line θ₀ + t(θ_end − θ₀) (Frankle et al. 2020): the largest rise of
    L(t) above the chord (1 − t)·L(0) + t·L(1), over the sampled t in [0, 1]; 0 when the loss never
    rises above the chord. The line holds t = 0 and 1 exactly; a result saved without them has its
    ends interpolated linearly from their neighbours. NaN when an end cannot be had, inf when the
    line blew up inside [0, 1]."""
    pts = sorted((float(t), float(v)) for t, v in zip(ts, losses, strict=True))

    def at(t: float) -> float:
        for (ta, la), (tb, lb) in zip(pts, pts[1:], strict=False):
            if t == ta or t == tb:
                return la if t == ta else lb
            if ta < t < tb:
                return la + (t - ta) / (tb - ta) * (lb - la)
        return math.nan

    inside = [(t, v) for t, v in pts if 0.0 < t < 1.0]
    l0, l1 = at(0.0), at(1.0)
    if math.isnan(l0) or math.isnan(l1) or any(math.isnan(v) for _, v in inside):
        return math.nan
    if not all(math.isfinite(v) for v in (l0, l1, *(v for _, v in inside))):
        return math.inf
    return max([0.0, *(v - ((1.0 - t) * l0 + t * l1) for t, v in inside)])


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
