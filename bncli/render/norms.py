"""Rendering shared by every subcommand for arms other than BN: the wording, and C9's extra lines
(the LN/GN comparison reported beside C9, and why C5 or C9 has no verdict for an arm)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from bncli.render.common import fmt, verdict_text
from bncli.results import CommandResult
from bncli.spec import Spec


def only_bn(spec: Spec) -> bool:
    """Every normalized arm is a BN arm (then texts say BN, as they always did)."""
    return all(a.norm_info.reference for a in spec.arms if a.normalized)


def norm_word(spec: Spec) -> str:
    """'BN' when every normalized arm is BN, else 'normalization'."""
    return "BN" if only_bn(spec) else "normalization"


def c9_reported_table(rows: list[dict[str, Any]]) -> Table:
    """LN/GN arms compared the C9 way: the three parts and what the verdict would be (not judged)."""
    from bncli.render.compact import table

    t = table("LayerNorm / GroupNorm compared the C9 way (SCIENCE.md C9: reported, not judged)")
    for col in ("lr", "arm", "(a) trains ~BN, > plain", "(b) shifts > BN", "(c) smoother than plain",
                "as C9 would say", "numbers: arm | reference"):
        t.add_column(col, overflow="fold", justify="right" if col == "lr" else "left")
    for i, r in enumerate(rows):
        nums = "\n".join(f"{m['name']}: {fmt(m['arm_mean'])} | {fmt(m['baseline_mean'])} -> {m['points']}"
                         for m in r["metrics"])
        t.add_row(fmt(r["lr"]), r["arm"], r["a"], r["b"], r["c"], verdict_text(r["would_be"]), nums,
                  end_section=i < len(rows) - 1)
    return t


def c9_lines(result: CommandResult) -> list[Any]:
    """What measure-ics and lipschitz add for other normalizations: the LN/GN table, and the notes
    saying where C5 does not apply and why there is no C9 verdict. Nothing for BN-only specs."""
    out: list[Any] = []
    tables = result.tables
    if tables.get("c9_reported"):
        out.append(c9_reported_table(tables["c9_reported"]))
    for key in ("c5_note", "c9_note"):
        if tables.get(key):
            out.append(tables[key])
    return out
