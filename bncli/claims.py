"""The claim registry: every claim a command can judge (id, statement, the analysis that judges it,
its figure, caption and plot name). Analyses register their claims beside themselves
(bncli.analyses.register_analysis); render, report, plot files and batch expectations read them
from here, so a claim id is whatever is registered (C10 from a plugin included)."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bncli.registry import Registry

CLAIM_ID = re.compile(r"^[A-Z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ClaimInfo:
    """One claim and how it is shown."""

    id: str  # C1, ..., C10: what verdicts, reports and batch expectations name
    statement: str
    analysis: str  # the registry name of the analysis that judges it
    figure: str | None = None  # "module:function" (result) -> Figure; None: no figure of its own
    caption: str = ""  # the figure's caption (report, plots/captions.md)
    plot_name: str = ""  # plots/<plot_name>.<format>
    metrics: tuple[str, ...] = ()  # what its verdict compares, in words (README's table)


CLAIMS: Registry[ClaimInfo] = Registry("claim")


def register_claim(info: ClaimInfo, *, replace: bool = False) -> ClaimInfo:
    if not CLAIM_ID.match(info.id):
        raise ValueError(f"claim id {info.id!r}: a capital letter, then letters, digits or _ (e.g. C10)")
    return CLAIMS.register(info.id, info, replace=replace)


def sort_key(claim_id: str) -> tuple[str, int, str]:
    """C2 before C10: the letters, then the number."""
    m = re.match(r"^([A-Za-z_]*)(\d*)(.*)$", claim_id)
    assert m is not None
    return m.group(1), int(m.group(2) or 0), m.group(3)


def claim_ids() -> tuple[str, ...]:
    """Every registered claim id, in order (C1 ... C9, C10)."""
    return tuple(sorted(CLAIMS.names(), key=sort_key))


def figure_fn(claim_id: str) -> Callable[..., Any] | None:
    """The figure function of a claim (imported on first use), None when it has none."""
    info = CLAIMS.snapshot().get(claim_id)
    if info is None or not info.figure:
        return None
    module, _, name = info.figure.partition(":")
    return getattr(importlib.import_module(module), name)


def caption_of(claim_id: str) -> str:
    info = CLAIMS.snapshot().get(claim_id)
    return info.caption if info else ""


def plot_name(claim_id: str) -> str | None:
    info = CLAIMS.snapshot().get(claim_id)
    return (info.plot_name or None) if info else None
