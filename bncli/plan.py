"""The run plan, values only: a RunJob is one (resolved spec, analysis, arm, lr, seed, probes)
value with a stable content key; plan(spec, analysis) lists a command's jobs in report order.

Jobs are trained by bncli.runner (groups of jobs -> records); executors only move them. Initial
weights and batch order are functions of (spec, seed) only, so any executor (a loop, a process
pool, Ray) gives bitwise the same record for the same job and thread count.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from bncli.spec import Spec, VerdictSpec

# bump when a change makes stored job results (batch --resume) incompatible
JOB_FORMAT = 2


def canonical(doc: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, no NaN (what keys are hashed from)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)


@lru_cache(maxsize=256)
def _spec_from_json(spec_json: str) -> Spec:
    return Spec.model_validate(json.loads(spec_json))


@dataclass(frozen=True)
class RunJob:
    """One training run: small, picklable and hashable. `spec_json` is the run's own spec (this
    arm, this lr, this seed, only the settings sections its probes read), canonical JSON;
    `probes` names the probes it runs, in order (bncli.probes.registry)."""

    analysis: str
    arm: str
    lr: float
    seed: int
    spec_json: str
    probes: tuple[str, ...] = ()
    numerics: str = "single"  # single, or fused: trained in a batched group (bncli.runner.fused)

    @property
    def spec(self) -> Spec:
        return _spec_from_json(self.spec_json)

    @property
    def label(self) -> str:
        return f"{self.arm} lr={self.lr:g} seed={self.seed}"

    @property
    def key(self) -> str:
        """A content key: equal for jobs that would produce the same record (threads and the
        spec's name don't count; a data file counts by its bytes)."""
        return _job_key(self.analysis, self.spec_json, self.probes, self.numerics)


@lru_cache(maxsize=64)
def _data_spec(data_json: str) -> Any:
    """A job's data section alone (what its key's data digest needs), validated once per data."""
    from bncli.spec import DataSpec

    return DataSpec.model_validate(json.loads(data_json))


@lru_cache(maxsize=4096)
def _job_key(analysis: str, spec_json: str, probes: tuple[str, ...], numerics: str = "single") -> str:
    from bncli.data.registry import key_material

    doc = json.loads(spec_json)
    doc.pop("threads", None)
    material = {"format": JOB_FORMAT, "analysis": analysis, "probes": list(probes), "spec": doc,
                "data_digest": key_material(_data_spec(canonical(doc.get("data", {}))))}
    if numerics != "single":  # single keys stay what they were: their records are bitwise the same
        material["numerics"] = numerics
    return hashlib.sha256(canonical(material).encode()).hexdigest()[:24]


def fused_form(spec: Spec, arm: Any) -> str | None:
    """How bncli.runner.fused would train this arm's runs as one batched model: the family's form
    ("stacked", "vmap") when the arm's norm supports it (their registry entries), else None."""
    from bncli.models.registry import family_info
    from bncli.norms import norm_info

    form = family_info(spec.model.kind).fuses
    return form if form is not None and form in norm_info(arm.norm).fuses else None


def _on_gpu(device: str) -> bool:
    """Whether a spec's device string means a CUDA device (auto: one is available here)."""
    if device == "auto":
        import torch

        return torch.cuda.is_available()
    return device.startswith("cuda")


def fusable(spec: Spec, arm: Any, probes: Sequence[str]) -> bool:
    """Whether a job can train in a fused group: the model family (where its entry says it fuses:
    a conv family on a GPU only), the arm's normalization (its entry's `fuses`; no noise), the
    optimizer and every probe it runs (the registry's `fusable`) must be supported."""
    from bncli.models.registry import family_info
    from bncli.probes.registry import probe_kind

    where = family_info(spec.model.kind).fuses_on
    return (fused_form(spec, arm) is not None and not arm.noise
            and spec.train.optimizer in ("sgd", "adam")
            and ("cpu" in where or ("cuda" in where and _on_gpu(spec.device)))
            and all(probe_kind(p).fusable for p in probes))


def job_spec(spec: Spec, sections: list[str], arm_name: str, lr: float, seed: int) -> str:
    """The canonical JSON of one run's spec: everything that can change its record, nothing else
    (of the analysis settings, only the `sections` its probes read)."""
    d = spec.model_dump(mode="json")
    d["name"] = "run"
    d.pop("fuse", None)  # how to compute is RunJob.numerics (in the key), not part of the run
    if d.get("precision") == "float32":  # the default: float32 keys stay what they were
        d.pop("precision")
    d["seed"] = seed
    d["seeds"] = 1
    d["arms"] = [a for a in d["arms"] if a["name"] == arm_name]
    d["train"]["lr"] = [lr]
    d["verdict"] = VerdictSpec().model_dump(mode="json")
    d["analysis"] = {s: d["analysis"][s] for s in sections}
    lip = d["analysis"].get("lipschitz")
    if lip is not None:  # opt-in views while off: the key of a run without them is what it was
        from bncli.spec_analysis import LIPSCHITZ_OPT_IN

        if lip.get("surface") is None and not lip.get("hessian_trace") and not lip.get("hessian_density"):
            for k in LIPSCHITZ_OPT_IN:
                lip.pop(k, None)
    return canonical(d)


def make_job(spec: Spec, analysis: str, arm_name: str, lr: float, seed: int, fuse: bool = False) -> RunJob:
    """One job of `analysis` on an arm of `spec`, with the probes the analysis plans for it;
    `fuse`: numerics fused where the arm, model, optimizer and probes allow it."""
    from bncli.analyses import get_analysis
    from bncli.probes.registry import sections_of

    a = get_analysis(analysis)
    arm = next(x for x in spec.arms if x.name == arm_name)
    probes = tuple(a.plan_probes(spec, arm))
    sections = ([a.section] if a.section else []) + [s for s in sections_of(probes) if s != a.section]
    numerics = "single"
    if fuse:
        numerics = "fused" if fusable(spec, arm, probes) else "single"
    return RunJob(a.name, arm_name, lr, seed, job_spec(spec, sections, arm_name, lr, seed), probes,
                  numerics)


def plan(spec: Spec, analysis: str) -> list[RunJob]:
    """Every seed x learning rate x arm of the spec for one analysis, in the order they report.
    With `fuse: auto` and at least two runs per arm, each arm's runs are planned fused where they
    can be (bncli.runner.fused.fusable); the runner trains them as one group."""
    fuse = spec.fuse == "auto" and len(spec.seed_list) * len(spec.train.lr) > 1
    return [make_job(spec, analysis, arm.name, lr, seed, fuse)
            for seed in spec.seed_list for lr in spec.train.lr for arm in spec.arms]
