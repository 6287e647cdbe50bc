"""Whether an analysis subcommand would compare anything with a spec's arms (a spec whose arms give
it nothing to compare trains to the end and says "no verdict": an error before training), and the
checks of a spec a user wrote (a subcommand's spec file with its options, a batch cell)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bncli.errors import SpecError
from bncli.spec_idle import check_idle_keys, chosen

if TYPE_CHECKING:
    from bncli.spec import Spec

# What each claim compares, from the same functions its analysis's summarize() uses: a spec whose
# arms give an analysis nothing to compare trains to the end and says "no verdict", so it is an
# error before training. A claim not listed (a plugin's) is assumed to compare something.


def _judged(spec: Spec) -> dict[str, list[str]]:
    """claim id -> the comparisons it would judge with the spec's arms (at each lr)."""
    from bncli.analyses.c9 import c9_applies, c9_arms
    from bncli.analyses.saturation import ablation_pairs
    from bncli.verdicts import comparison_pairs

    pairs = [f"{a} vs {b}" for a, b in comparison_pairs(spec)]
    jacobian = [a.name for a in spec.arms if a.norm_info.jacobian_closed_form] \
        if spec.analysis.lipschitz.jacobian else []
    c9 = [a.name for a in c9_arms(spec)] if c9_applies(spec) else []
    return {"C1": pairs, "C2": pairs, "C3": pairs, "C4": pairs, "C6": pairs, "C7": pairs,
            "C5": jacobian, "C8": [f"{a} vs {b}" for a, b in ablation_pairs(spec)], "C9": c9}


def _why_no_pair(spec: Spec) -> str:
    """Why every normalized arm lacks a plain arm to be compared with, in words, with the fix."""
    names = ", ".join(a.name for a in spec.arms)
    base = [a for a in spec.arms if a.is_baseline]
    normed = [a for a in spec.arms if a.normalized]
    if len(spec.arms) < 2:
        what = f"it has one arm ({names})"
    elif not base:
        what = f"none of its arms ({names}) is plain (no normalization, no noise)"
    elif not normed:
        what = f"none of its arms ({names}) normalizes"
    else:
        what = f"its arms ({names}) pair no normalized arm with a plain one"
    fix = "add plain" if not base else "add a normalized arm such as batchnorm"
    return f"{what}: {fix}, e.g. arms: [plain, batchnorm]"


def comparison_problem(spec: Spec, command: str) -> str | None:
    """Why subcommand `command` would compare nothing with the spec's arms, or None."""
    from bncli.analyses import BY_COMMAND

    analysis = BY_COMMAND.get(command)
    if analysis is None:
        return None
    judged = _judged(spec)
    claims = list(analysis.claims)
    if any(c not in judged or judged[c] for c in claims):
        return None
    extra = []
    if "C5" in claims:
        extra.append("C5 needs a BN arm and analysis.lipschitz.jacobian: true")
    if "C8" in claims:
        extra.append("C8 needs an affine arm and the same norm with affine: false")
    more = f" ({'; '.join(extra)})" if extra else ""
    return (f"arms: `{command}` compares each normalized arm with a plain arm ({', '.join(claims)}), and "
            f"this spec has no such pair: {_why_no_pair(spec)}{more}")


def commands_to_check(spec: Spec) -> list[str]:
    """What `bncli validate` checks without --command: the subcommands whose `analysis.<section>`
    the spec sets (to other than its defaults: a run's dumped spec.yaml holds every section), else
    `train` (the comparison every spec is written for)."""
    from bncli.analyses import ANALYSES

    picked = [a.command for a in ANALYSES.values() if a.section and chosen(spec.analysis, a.section)]
    return picked or ["train"]


def check_comparisons(spec: Spec, commands: Sequence[str], source: str | None = None) -> None:
    """A SpecError (exit 2) when one of `commands` would compare nothing with the spec's arms;
    `source` (the file) starts the message."""
    for command in dict.fromkeys(commands):
        problem = comparison_problem(spec, command)
        if problem is not None:
            raise SpecError(f"{source}: {problem}" if source else problem)


def check_user_spec(spec: Spec, source: str, commands: Sequence[str] = (),
                    allow_idle: Sequence[str] = ()) -> None:
    """What a spec a user wrote must pass beyond its fields: no key that does nothing (but those in
    `allow_idle`), and arms that give each of `commands` something to compare (a subcommand's
    load, a batch cell)."""
    check_idle_keys(spec, source, allow_idle)
    check_comparisons(spec, commands, source)
