"""Keys a spec a user wrote sets that do nothing with the rest of it (README: an idle key is an
error): a data field its source does not read, a model field its family does not, an arm field its
norm does not, a target of the other task, a lipschitz setting whose switch is off. Derived from
the registries' entries (sources, families, norms); imports nothing of the spec (the spec calls it)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel

from bncli.errors import SpecError
from bncli.spec_types import field_default

# Only what the spec *set* (model_fields_set) to a value other than the field's default is looked
# at: a spec dumped whole (a run's spec.yaml, a job sent to a worker) sets every key, at defaults
# where it did not choose. What a user wrote is checked (a spec file: spec.load_spec; with the
# command line's overrides; a batch cell: check_user_spec); specs built in Python (the API, tests)
# are not, so a notebook may still run a single arm or keep a model's unused widths.

# the synthetic source's fields that belong to one task (their help says which)
_TASK_FIELDS = {"n_classes": "classification", "class_sep": "classification",
                "n_outputs": "regression", "noise": "regression"}


def chosen(model: BaseModel, name: str) -> bool:
    """The spec gave `name` a value other than its default (and not null)."""
    if name not in model.model_fields_set:
        return False
    value = getattr(model, name)
    return value is not None and value != field_default(type(model), name)


def _users(names: Iterable[str]) -> str:
    names = list(names)
    return ", ".join(names) if names else "none"


def _data(spec: Any) -> Iterator[tuple[str, str]]:
    from bncli.data.registry import SOURCES, source_info

    d = spec.data
    info = source_info(d.source)
    for field in dict.fromkeys(f for s in SOURCES.values() for f in s.fields):
        if field not in info.fields and chosen(d, field):
            users = [n for n, s in SOURCES.items() if field in s.fields]
            yield f"data.{field}", f"not used with source: {d.source} (only {_users(users)})"
    regress = [n for n, s in SOURCES.items() if s.infers_task or "n_outputs" in s.fields]
    if d.task == "regression" and d.source not in regress and "task" in d.model_fields_set:
        yield "data.task", (f"source: {d.source} has class labels, its task is classification "
                            f"(regression: {_users(regress)})")
    if d.task in ("classification", "regression"):
        for field, task in _TASK_FIELDS.items():
            if field in info.fields and task != d.task and chosen(d, field):
                yield f"data.{field}", f"not used with task: {d.task} (only with task: {task})"
    if info.reads_root and chosen(d, "test_fraction"):
        yield "data.test_fraction", (f"not used with source: {d.source} (its files have their own "
                                     "test split)")


def _model(spec: Any) -> Iterator[tuple[str, str]]:
    from bncli.models.registry import FAMILIES, family_info

    m = spec.model
    info = family_info(m.kind)
    for field in dict.fromkeys(f for fam in FAMILIES.values() for f in fam.fields):
        if field not in info.fields and chosen(m, field):
            users = [n for n, fam in FAMILIES.items() if field in fam.fields]
            yield f"model.{field}", f"not used with kind: {m.kind} (only {_users(users)})"


def _arms(spec: Any) -> Iterator[tuple[str, str]]:
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
            if not reads(info) and chosen(arm, field):
                yield f"arms.{k}.{field}", f"not used with norm: {arm.norm} (only {only(reads)})"
        if not arm.noise and chosen(arm, "noise_params"):
            yield f"arms.{k}.noise_params", "not used without noise: true"
        if info.builder is None and not arm.noise and chosen(arm, "position"):  # nothing sits at the point
            yield f"arms.{k}.position", (f"not used with norm: {arm.norm} without noise (only "
                                         f"{only(lambda i: i.builder is not None)}, or noise: true)")


def _train(spec: Any) -> Iterator[tuple[str, str]]:
    t, task = spec.train, spec.data.task
    if task == "classification" and chosen(t, "target_loss"):
        yield "train.target_loss", "not used with task: classification (target_accuracy is its target)"
    if task == "regression" and chosen(t, "target_accuracy"):
        yield "train.target_accuracy", "not used with task: regression (target_loss is its target)"


def _lipschitz(spec: Any) -> Iterator[tuple[str, str]]:
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
        if not on and chosen(lip, field):
            yield f"analysis.lipschitz.{field}", f"not used without {switch}: true"


def idle_keys(spec: Any) -> list[tuple[str, str]]:
    """(field, why) for every key the spec set that does nothing with the rest of it."""
    out: list[tuple[str, str]] = []
    for part in (_data, _model, _arms, _train, _lipschitz):
        out.extend(part(spec))
    return out


def check_idle_keys(spec: Any, source: str, allow: Iterable[str] = ()) -> None:
    """A SpecError naming each idle key: `file: data.path: not used with source: digits (...)`.
    Keys in `allow` pass (a batch cell's keys that its spec file uses and an override made idle)."""
    allowed = set(allow)
    bad = [(field, why) for field, why in idle_keys(spec) if field not in allowed]
    if bad:
        text = "; ".join(f"{field}: {why}" for field, why in bad)
        raise SpecError(f"{source}: {text} (remove the key, or set what it belongs to)")
