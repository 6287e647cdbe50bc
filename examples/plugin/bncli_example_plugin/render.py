"""What `bncli measure-gns` prints, and C10's figure (drawn from a saved result: no training)."""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table

from bncli.render import compact
from bncli.render import figstyle as fs
from bncli.stats import finite_mean


def render(spec: Any, result: Any, detail: bool = False) -> list[Any]:
    table = Table(title="gradient noise scale B_simple (median over steps, mean over seeds)")
    for col in ("lr", "arm", "seeds", "B_simple"):
        table.add_column(col)
    for row in result.tables.get("gns", []):
        b = row["b_simple"]
        table.add_row(f"{row['lr']:g}", row["arm"], str(row["n_seeds"]), "-" if not math.isfinite(b) else f"{b:.4g}")
    return [table, compact.claims_output(result, "C10: does normalization raise the gradient noise scale?", detail)]


def c10_figure(result: Any, colors: dict[str, str] | None = None, notes: list[str] | None = None) -> Any:
    """B_simple against the step, one line per arm and lr (mean over seeds)."""
    plt = fs.pyplot()
    fig, ax = plt.subplots(figsize=(4.0, 2.8))
    drawn = False
    for arm in fs.result_arms(result):
        for lr in fs.result_lrs(result):
            runs = [r for r in result.runs if r.arm == arm and r.lr == lr and "gns" in r.probes]
            if not runs:
                continue
            steps = runs[0].probes["gns"]["steps"]
            ys = [finite_mean([finite(r.probes["gns"]["b_simple"], i) for r in runs]) for i in range(len(steps))]
            ax.plot(steps, ys, label=f"{arm} lr {lr:g}", color=(colors or {}).get(arm))
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("step")
    ax.set_ylabel("B_simple")
    ax.legend(fontsize=7)
    fig.suptitle("C10: gradient noise scale")
    return fig


def finite(values: list[Any], i: int) -> float:
    v = values[i] if i < len(values) else None
    return float(v) if v is not None and math.isfinite(v) else math.nan
