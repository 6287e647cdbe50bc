"""A result's repr (a notebook's or a REPL's `result`): at most REPR_LINES lines whatever its size,
one row per claim as the terminal shows it, and where the rest is. Imports no module that imports
bncli.results (CommandResult.__repr__ calls it): a result is told from a batch by its runs."""

from __future__ import annotations

from typing import Any

from bncli.claim_text import num
from bncli.claim_types import Claim
from bncli.render.claim_row import claim_row
from bncli.render.palette import verdict_symbol

REPR_LINES = 20  # a result's repr: at most this many lines, whatever its size


def _repr_table(heads: list[str], rows: list[list[str]], room: int) -> list[str]:
    """Plain text columns (two spaces apart), at most `room` data rows, then '… N more'."""
    shown = rows[:room] if len(rows) <= room else rows[: room - 1]
    widths = [max([len(h), *(len(r[i]) for r in shown)]) for i, h in enumerate(heads)]
    out = ["  ".join(h.ljust(w) for h, w in zip(heads, widths)).rstrip()]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in shown]
    if len(shown) < len(rows):
        out.append(f"… {len(rows) - len(shown)} more (claims_frame() has every row)")
    return out


def _claim_cells(c: Claim) -> list[str]:
    r = claim_row(c)
    return [c.claim, num(c.lr), f"{c.arm} vs {c.baseline}", f"{verdict_symbol(c.verdict)} {r.label}",
            r.effect_text, r.beyond_text, num(r.p_adj, 2) if r.p_adj is not None else "-"]


_CLAIM_HEADS = ["claim", "lr", "arm vs baseline", "verdict", "effect [95% CI]", "beyond", "p adj"]
_HINT = "effect: the deciding metric's; .claims_frame(), .metrics_frame(), .to_pandas(), .to_json()"


def result_repr(obj: Any) -> str:
    """A result in at most REPR_LINES lines: what ran, one row per claim (as the terminal shows
    them) and where the rest is."""
    if hasattr(obj, "runs"):  # a CommandResult (a batch has comparisons)
        name = str(obj.spec.get("name", "result"))
        arms = ", ".join(dict.fromkeys(r.arm for r in obj.runs))
        head = (f"bncli {obj.command} · {name}: {len(obj.runs)} run(s) ({arms}), {obj.task}"
                + (", interrupted: finished runs only" if obj.interrupted else ""))
        rows = [_claim_cells(c) for c in obj.claims]
        heads = _CLAIM_HEADS
        empty = "no verdict"
    else:
        doc = obj.doc
        counts = doc.get("counts", {}) if isinstance(doc, dict) else {}
        head = (f"bncli batch {doc.get('batch_file', '')}: {len(obj.comparisons)} comparison(s), "
                f"exit code {doc.get('exit_code', '?')}")
        if counts.get("expectations"):
            head += f", expectations {counts.get('expectations_passed', 0)}/{counts['expectations']} met"
        rows = [[f"{c.name} · {c.command}", *_claim_cells(x)] for c in obj.comparisons for x in c.claims]
        heads = ["comparison", *_CLAIM_HEADS]
        empty = "no claims"
    lines = [head]
    lines += _repr_table(heads, rows, REPR_LINES - 3) if rows else [empty]
    lines.append(_HINT)
    return "\n".join(lines)
