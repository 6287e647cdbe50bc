"""Checks of a whole spec that the field validators cannot make: keys a spec file sets that do
nothing with the rest of it (README: an idle key is an error), and whether an analysis would
compare anything with the spec's arms. Both run before any data is read or any run trains."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from bncli.errors import SpecError

if TYPE_CHECKING:
    from bncli.spec import Spec

# --------------------------------------------------------------------------- idle keys
# Only what the spec *set* (model_fields_set) to a value other than the field's default is looked
# at: a spec dumped whole (a run's spec.yaml, a job sent to a worker) sets every key, at defaults
# where it did not choose. What a user wrote is checked (a spec file: spec.load_spec; with the
# command line's overrides; a batch cell: check_user_spec); specs built in Python (the API, tests)
# are not, so a notebook may still run a single arm or keep a model's unused widths.

# the synthetic source's fields that belong to one task (their help says which)
_TASK_FIELDS = {"n_classes": "classification", "class_sep": "classification",
                "n_outputs": "regression", "noise": "regression"}


def _set(model: BaseModel, name: str) -> bool:
    """The spec gave `name` a value other than its default (and not null)."""
    from bncli.spec import _default  # cached: a 10,000-cell batch checks every cell

    if name not in model.model_fields_set:
        return False
    value = getattr(model, name)
    return value is not None and value != _default(type(model), name)


def _users(names: Iterable[str]) -> str:
    names = list(names)
    return ", ".join(names) if names else "none"


def _data(spec: Spec) -> Iterator[tuple[str, str]]:
    from bncli.data.registry import SOURCES, source_info

    d = spec.data
    info = source_info(d.source)
    for field in dict.fromkeys(f for s in SOURCES.values() for f in s.fields):
        if field not in info.fields and _set(d, field):
            users = [n for n, s in SOURCES.items() if field in s.fields]
            yield f"data.{field}", f"not used with source: {d.source} (only {_users(users)})"
    regress = [n for n, s in SOURCES.items() if s.infers_task or "n_outputs" in s.fields]
    if d.task == "regression" and d.source not in regress and "task" in d.model_fields_set:
        yield "data.task", (f"source: {d.source} has class labels, its task is classification "
                            f"(regression: {_users(regress)})")
    if d.task in ("classification", "regression"):
        for field, task in _TASK_FIELDS.items():
            if field in info.fields and task != d.task and _set(d, field):
                yield f"data.{field}", f"not used with task: {d.task} (only with task: {task})"
    if info.reads_root and _set(d, "test_fraction"):
        yield "data.test_fraction", (f"not used with source: {d.source} (its files have their own "
                                     "test split)")


def _model(spec: Spec) -> Iterator[tuple[str, str]]:
    from bncli.models.registry import FAMILIES, family_info

    m = spec.model
    info = family_info(m.kind)
    for field in dict.fromkeys(f for fam in FAMILIES.values() for f in fam.fields):
        if field not in info.fields and _set(m, field):
            users = [n for n, fam in FAMILIES.items() if field in fam.fields]
            yield f"model.{field}", f"not used with kind: {m.kind} (only {_users(users)})"


def _arms(spec: Spec) -> Iterator[tuple[str, str]]:
    from bncli.norms import NORMS

    def only(pred: Any) -> str:
        return _users(n for n, info in NORMS.items() if pred(info))

    # each arm field and the norms that read it, from their registry entries
    readers = {
        "momentum": lambda i: i.running_stats,
        "eps": lambda i: i.normalizes and i.has_eps,
        "affine": lambda i: i.affine,
        "groups": lambda i: i.width_field == "groups",
        "p": lambda i: "p" in i.variant_fields,
    }
    for k, arm in enumerate(spec.arms):
        info = arm.norm_info
        for field, reads in readers.items():
            if not reads(info) and _set(arm, field):
                yield f"arms.{k}.{field}", f"not used with norm: {arm.norm} (only {only(reads)})"
        if not arm.noise and _set(arm, "noise_params"):
            yield f"arms.{k}.noise_params", "not used without noise: true"
        if info.builder is None and not arm.noise and _set(arm, "position"):  # nothing sits at the point
            yield f"arms.{k}.position", (f"not used with norm: {arm.norm} without noise (only "
                                         f"{only(lambda i: i.builder is not None)}, or noise: true)")


def _train(spec: Spec) -> Iterator[tuple[str, str]]:
    t, task = spec.train, spec.data.task
    if task == "classification" and _set(t, "target_loss"):
        yield "train.target_loss", "not used with task: classification (target_accuracy is its target)"
    if task == "regression" and _set(t, "target_accuracy"):
        yield "train.target_accuracy", "not used with task: regression (target_loss is its target)"


def _lipschitz(spec: Spec) -> Iterator[tuple[str, str]]:
    lip = spec.analysis.lipschitz
    switches = {  # field -> (what switches it on, is it on)
        "hessian_iters": ("hessian", lip.hessian),
        "hessian_tol": ("hessian", lip.hessian),
        "hessian_trace_tol": ("hessian_trace", lip.hessian_trace),
        "hessian_trace_max": ("hessian_trace", lip.hessian_trace),
        "hessian_top_k": ("hessian_trace or hessian_density", lip.hessian_trace or lip.hessian_density),
        "density_runs": ("hessian_density", lip.hessian_density),
        "density_steps": ("hessian_density", lip.hessian_density),
        "jacobian_units": ("jacobian", lip.jacobian),
        "jacobian_rows": ("jacobian", lip.jacobian),
        "jacobian_tol": ("jacobian", lip.jacobian),
    }
    for field, (switch, on) in switches.items():
        if not on and _set(lip, field):
            yield f"analysis.lipschitz.{field}", f"not used without {switch}: true"


def idle_keys(spec: Spec) -> list[tuple[str, str]]:
    """(field, why) for every key the spec set that does nothing with the rest of it."""
    out: list[tuple[str, str]] = []
    for part in (_data, _model, _arms, _train, _lipschitz):
        out.extend(part(spec))
    return out


def check_idle_keys(spec: Spec, source: str) -> None:
    """A SpecError naming each idle key: `file: data.path: not used with source: digits (...)`."""
    bad = idle_keys(spec)
    if bad:
        text = "; ".join(f"{field}: {why}" for field, why in bad)
        raise SpecError(f"{source}: {text} (remove the key, or set what it belongs to)")


# --------------------------------------------------------------------------- comparisons
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

    picked = [a.command for a in ANALYSES.values() if a.section and _set(spec.analysis, a.section)]
    return picked or ["train"]


def check_comparisons(spec: Spec, commands: Sequence[str], source: str | None = None) -> None:
    """A SpecError (exit 2) when one of `commands` would compare nothing with the spec's arms;
    `source` (the file) starts the message."""
    for command in dict.fromkeys(commands):
        problem = comparison_problem(spec, command)
        if problem is not None:
            raise SpecError(f"{source}: {problem}" if source else problem)


def check_user_spec(spec: Spec, source: str, commands: Sequence[str] = ()) -> None:
    """What a spec a user wrote must pass beyond its fields: no key that does nothing, and arms
    that give each of `commands` something to compare (a subcommand's load, a batch cell)."""
    check_idle_keys(spec, source)
    check_comparisons(spec, commands, source)
