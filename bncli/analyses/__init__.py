"""The analysis registry: one line per analysis. A new analysis is its own module here (and in
probes/), one render module, and one line below. C9 is a claim judged from two analyses' probes:
it wraps ics and landscape here (bncli.analyses.c9.with_c9), so neither imports it."""

from __future__ import annotations

from bncli.analyses import c9, ics, landscape, saturation, scale, train
from bncli.analyses.base import Analysis, DataInfo, Option, Summary

ANALYSES: dict[str, Analysis] = {
    a.name: a
    for a in (
        train.ANALYSIS,
        c9.with_c9(ics.ANALYSIS),  # C9 plugs into measure-ics and lipschitz (its probes, claims)
        c9.with_c9(landscape.ANALYSIS),
        scale.ANALYSIS,
        saturation.ANALYSIS,
    )
}
BY_COMMAND: dict[str, Analysis] = {a.command: a for a in ANALYSES.values()}


def get_analysis(name: str) -> Analysis:
    """By registry name (train, ics, landscape, scale, saturation) or subcommand (measure-ics, ...)."""
    if name in ANALYSES:
        return ANALYSES[name]
    if name in BY_COMMAND:
        return BY_COMMAND[name]
    known = ", ".join(BY_COMMAND)
    raise KeyError(f"unknown analysis {name!r}; known: {known}")


__all__ = ["ANALYSES", "BY_COMMAND", "Analysis", "DataInfo", "Option", "Summary", "get_analysis"]
