"""The analysis registry: one `register_analysis` line per analysis. A new analysis is its own
module here (and in probes/), one render module, and one line below; a plugin calls the same
function. C9 is a claim judged from two analyses' probes: it wraps ics and landscape here
(bncli.analyses.c9.with_c9), so neither imports it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bncli.analyses import c9, ics, landscape, saturation, scale, train
from bncli.analyses.base import Analysis, DataInfo, Option, Summary
from bncli.claims import CLAIMS, ClaimInfo, register_claim
from bncli.registry import Registry

ANALYSES: Registry[Analysis] = Registry("analysis")
BY_COMMAND: dict[str, Analysis] = {}  # subcommand -> analysis, kept in step with ANALYSES


def _by_command() -> None:
    BY_COMMAND.clear()
    BY_COMMAND.update({a.command: a for a in ANALYSES.values()})


ANALYSES.on_change(_by_command)


def register_analysis(analysis: Analysis, claims: Iterable[ClaimInfo] = (), *, section_model: Any = None,
                      section_help: str = "", replace: bool = False) -> Analysis:
    """Register an analysis (bncli's own below; a plugin's the same way): its claims (ids, figures,
    captions), and its spec section `analysis.<section>` when it brings the section's pydantic
    model. The CLI builds its subcommand from this entry (plugins are loaded before the CLI is)."""
    if section_model is not None and analysis.section:
        from bncli.spec_analysis import register_section

        register_section(analysis.section, section_model, section_help or analysis.command,
                         replace=replace)
    for claim in claims:
        if claim.id not in CLAIMS or replace:
            register_claim(claim, replace=replace)
    if any(a.command == analysis.command and a.name != analysis.name for a in ANALYSES.values()):
        raise ValueError(f"subcommand {analysis.command!r} is already an analysis's")
    return ANALYSES.register(analysis.name, analysis, replace=replace)


register_analysis(train.ANALYSIS, train.CLAIMS)
# C9 plugs into measure-ics and lipschitz (its probes, claims)
register_analysis(c9.with_c9(ics.ANALYSIS), (*ics.CLAIMS, *c9.CLAIMS))
register_analysis(c9.with_c9(landscape.ANALYSIS), landscape.CLAIMS)
register_analysis(scale.ANALYSIS, scale.CLAIMS)
register_analysis(saturation.ANALYSIS, saturation.CLAIMS)


def get_analysis(name: str) -> Analysis:
    """By registry name (train, ics, landscape, scale, saturation) or subcommand (measure-ics, ...)."""
    if name in ANALYSES:
        return ANALYSES.get(name)
    if name in BY_COMMAND:
        return BY_COMMAND[name]
    known = ", ".join(BY_COMMAND)
    raise KeyError(f"unknown analysis {name!r}; known: {known}")


__all__ = ["ANALYSES", "BY_COMMAND", "CLAIMS", "Analysis", "ClaimInfo", "DataInfo", "Option", "Summary",
           "get_analysis", "register_analysis"]
