"""The probe registry: a probe's name (what a RunJob lists and a record's `probes` is keyed by)
-> the spec section it reads and its factory `(spec, arm, lr, seed, data) -> probe`.

Analyses name the probes a job runs at plan time (`Analysis.plan_probes`); the runner builds them
from here. A new probe is its module in `probes/` and one `register_probe` line here (or in a plugin)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bncli.registry import Registry


@dataclass(frozen=True)
class ProbeKind:
    name: str
    section: str  # its settings: spec.analysis.<section> (the job spec keeps that section)
    factory: str  # "module:function" with (spec, arm, lr, seed, data) -> a probe
    fusable: bool = False  # can measure the members of a fused group (bncli.runner.fused)


PROBES: Registry[ProbeKind] = Registry("probe")


def register_probe(kind: ProbeKind, *, replace: bool = False) -> ProbeKind:
    """Add a probe (bncli's own below; a plugin's the same way): jobs may name it from now on."""
    return PROBES.register(kind.name, kind, replace=replace)


for _kind in (
    ProbeKind("ics_dist", "ics", "bncli.probes.ics:make_distribution_probe", fusable=True),
    ProbeKind("ics_grad", "ics", "bncli.probes.ics:make_gradient_probe", fusable=True),
    ProbeKind("landscape", "lipschitz", "bncli.probes.landscape:make_probe", fusable=True),
    ProbeKind("landscape_views", "lipschitz", "bncli.probes.landscape_views:make_probe"),
    ProbeKind("bn_jacobian", "lipschitz", "bncli.probes.jacobian:make_probe", fusable=True),
    ProbeKind("scale", "scale", "bncli.probes.scale:make_probe", fusable=True),
    ProbeKind("saturation", "saturation", "bncli.probes.saturation:make_probe", fusable=True),
):
    register_probe(_kind)


def probe_kind(name: str) -> ProbeKind:
    return PROBES.get(name)


def _factory(name: str) -> Callable[..., Any]:
    module, fn = probe_kind(name).factory.split(":")
    return getattr(importlib.import_module(module), fn)


def make_probes(names: Sequence[str], spec: Any, arm: Any, lr: float, seed: int, data: Any) -> list[Any]:
    """The probes a job names, in its order."""
    return [_factory(n)(spec, arm, lr, seed, data) for n in names]


def sections_of(names: Sequence[str]) -> list[str]:
    """The spec sections the named probes read, in first-use order."""
    out: list[str] = []
    for n in names:
        s = probe_kind(n).section
        if s not in out:
            out.append(s)
    return out
