"""A batch's tables: the claims of each comparison, then every expectation with ✓/✗."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bncli.batch.run import BatchRun
from bncli.render.common import claims_table


def render_batch(run: BatchRun) -> list[Any]:
    out: list[Any] = []
    for e in run.entries:
        title = f"{e.cell.name} · {e.command}"
        if e.failures:
            out.append(Text(f"{title}: {len(e.failures)} job(s) failed: "
                            + "; ".join(f"{lbl}: {why}" for lbl, why in e.failures[:3]), style="red"))
        if e.result is not None and e.result.claims:
            out.append(claims_table(e.result.claims, title=escape(title)))
        elif not e.failures:
            out.append(Text(f"{title}: no verdict (a claim needs complete, paired runs of a normalized "
                            "arm and the plain arm)", style="yellow"))
    outcomes = run.outcomes
    if outcomes:
        n_skip = sum(o.skipped for o in outcomes)
        skip = f", {n_skip} known deviation(s) skipped" if n_skip else ""
        t = Table(title_justify="left",
                  title=f"Expectations: {sum(o.passed for o in outcomes)}/{len(outcomes)} met{skip}",
                  show_lines=False)
        t.add_column("")
        t.add_column("comparison")
        t.add_column("expectation")
        t.add_column("numbers", overflow="fold")
        for o in outcomes:
            mark = (Text("~", style="yellow") if o.skipped else
                    Text("✓", style="bold green") if o.passed else Text("✗", style="bold red"))
            t.add_row(mark, Text(f"{o.cell} · {o.command}"), Text(o.expectation.describe()), Text(o.detail))
        out.append(t)
    reused = f", {run.n_reused} reused" if run.n_reused else ""
    out.append(Text(f"{run.n_jobs} job(s){reused}, {run.n_failed_jobs} failed, {run.wall_s:.1f} s", style="dim"))
    return out
