"""Plain, frozen result records (floats and lists, never tensors); to/from JSON with a schema version."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field, fields
from typing import Any

from bncli.claim_types import Claim, MetricComparison, _num, clean  # noqa: F401  (re-exported)
from bncli.errors import SchemaError

# 2: arms say `norm:` (batch, none, ...) instead of `kind:`; everything else as in 1
# 3: claims are paired-seed verdicts: metrics carry the effect's interval, paired and Holm-adjusted
#    p, noise floor and aggregation; claims carry leaning, evidence, decided_by, seeds, stability,
#    budgets (verdicts at shorter budgets) and C9's parts. Version 2 documents still load.
# 4: the verdict engine of SCIENCE.md (log-ratio effects, one-sided t-tests against the margin,
#    intersection-union within a claim, Holm across claims): metrics carry effect, p_claimed,
#    p_against, beyond, scale; claims carry p_claimed, p_against, p, p_adj, family, beyond,
#    nonfinite (no stability). Versions 2 and 3 still load (`verdict_rule` says which rule).
SCHEMA_VERSION = 4
READABLE_VERSIONS = (2, 3, 4)
VERDICT_RULES = {2: "relative difference, bootstrap, Holm over metrics (schema 2)",
                 3: "relative difference, bootstrap, Holm over metrics (schema 3)",
                 4: "log-ratio t-tests vs the margin, intersection-union, Holm over claims (schema 4)"}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std of the finite values (NaN when none; std 0 for one value)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return math.nan, math.nan
    if len(vals) == 1:
        return vals[0], 0.0
    return statistics.fmean(vals), statistics.stdev(vals)


@dataclass(frozen=True)
class RunRecord:
    """One arm x learning rate x seed: curves at eval points, outcome, and probe results."""

    arm: str
    lr: float
    seed: int
    steps: list[int]
    train_loss: list[float]
    train_eval_loss: list[float]
    train_acc: list[float | None]
    test_loss: list[float]
    test_acc: list[float | None]
    diverged_at: int | None
    divergence_reason: str | None
    steps_done: int
    steps_to_target: int | None
    wall_s: float
    interrupted: bool = False
    probes: dict[str, Any] = field(default_factory=dict)
    # the learning rate at each of `steps` (its last update's) when train.schedule or warmup
    # varies it; empty (and left out of the JSON) for a constant lr
    lr_curve: list[float] = field(default_factory=list)
    numerics: str = "single"  # how it was computed: single (one model) or fused (bncli.runner.fused)
    precision: str = "float32"  # the dtype it was computed in (spec `precision`)

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None

    @property
    def final_train_loss(self) -> float:
        return self.train_loss[-1] if self.train_loss and not self.diverged else math.nan

    @property
    def final_test_loss(self) -> float:
        return self.test_loss[-1] if self.test_loss and not self.diverged else math.nan

    @property
    def final_test_acc(self) -> float:
        v = self.test_acc[-1] if self.test_acc else None
        return math.nan if v is None or self.diverged else v

    @property
    def best_test_acc(self) -> float:
        vals = [v for v in self.test_acc if v is not None]
        return max(vals) if vals and not self.diverged else math.nan

    @property
    def best_test_loss(self) -> float:
        vals = [v for v in self.test_loss if v is not None and math.isfinite(v)]
        return min(vals) if vals and not self.diverged else math.nan

    def to_json(self) -> dict[str, Any]:
        doc = clean(self)
        if not doc.get("lr_curve"):
            doc.pop("lr_curve", None)
        return doc

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> RunRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class ArmSummary:
    """Mean and std over seeds of one arm at one learning rate."""

    arm: str
    lr: float
    n_seeds: int
    n_diverged: int
    diverged_at: list[int | None]
    final_train_loss: tuple[float, float]
    final_test_loss: tuple[float, float]
    final_test_acc: tuple[float, float]
    best_test_acc: tuple[float, float]
    best_test_loss: tuple[float, float]
    steps_to_target: tuple[float, float]
    n_reached_target: int

    def to_json(self) -> dict[str, Any]:
        return clean(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ArmSummary:
        def pair(v: Any) -> tuple[float, float]:
            return (_num(v[0]), _num(v[1]))

        return cls(
            arm=d["arm"], lr=d["lr"], n_seeds=d["n_seeds"], n_diverged=d["n_diverged"],
            diverged_at=list(d["diverged_at"]),
            final_train_loss=pair(d["final_train_loss"]), final_test_loss=pair(d["final_test_loss"]),
            final_test_acc=pair(d["final_test_acc"]), best_test_acc=pair(d["best_test_acc"]),
            best_test_loss=pair(d["best_test_loss"]), steps_to_target=pair(d["steps_to_target"]),
            n_reached_target=d["n_reached_target"],
        )


def summarize(records: list[RunRecord]) -> list[ArmSummary]:
    """Group records by (lr, arm) in first-seen order and aggregate over seeds."""
    groups: dict[tuple[float, str], list[RunRecord]] = {}
    for r in records:
        groups.setdefault((r.lr, r.arm), []).append(r)
    out = []
    for (lr, arm), rs in sorted(groups.items(), key=lambda kv: kv[0][0]):
        reached = [r.steps_to_target for r in rs if r.steps_to_target is not None]
        out.append(
            ArmSummary(
                arm=arm,
                lr=lr,
                n_seeds=len(rs),
                n_diverged=sum(r.diverged for r in rs),
                diverged_at=[r.diverged_at for r in rs],
                final_train_loss=mean_std([r.final_train_loss for r in rs]),
                final_test_loss=mean_std([r.final_test_loss for r in rs]),
                final_test_acc=mean_std([r.final_test_acc for r in rs]),
                best_test_acc=mean_std([r.best_test_acc for r in rs]),
                best_test_loss=mean_std([r.best_test_loss for r in rs]),
                steps_to_target=mean_std([float(s) for s in reached]),
                n_reached_target=len(reached),
            )
        )
    return out


@dataclass(frozen=True)
class CommandResult:
    """Everything one subcommand produced: the JSON document and what the renderers draw.

    `tables` holds the analysis's own tables (plain data, e.g. `landscape` and `jacobian` for
    lipschitz); in the JSON document they sit at the top level beside the common keys.
    """

    command: str
    spec: dict[str, Any]
    runs: list[RunRecord]
    summary: list[ArmSummary]
    claims: list[Claim]
    interrupted: bool = False
    task: str = "classification"
    device: str = "cpu"
    tables: dict[str, Any] = field(default_factory=dict)
    bncli_version: str | None = None  # set when loaded from a document; None: this bncli
    command_line: str | None = None  # how it was made (provenance), when a command made it
    schema_version: int = SCHEMA_VERSION  # a loaded document keeps its own (its verdicts' rule)

    def __repr__(self) -> str:
        """At most 20 lines (bncli.render.repr_text.result_repr), not every number of every run."""
        from bncli.render.repr_text import result_repr

        return result_repr(self)

    @property
    def verdict_rule(self) -> str:
        """Which verdict rule made this document's verdicts."""
        return VERDICT_RULES.get(self.schema_version, f"schema {self.schema_version}")

    def to_json(self) -> dict[str, Any]:
        from bncli import __version__

        return clean(
            {
                "schema_version": self.schema_version,
                "command": self.command,
                "bncli_version": self.bncli_version or __version__,
                "interrupted": self.interrupted,
                "spec": self.spec,
                "summary": [s.to_json() for s in self.summary],
                "claims": [c.to_json() for c in self.claims],
                "runs": [r.to_json() for r in self.runs],
                "task": self.task,
                "device": self.device,
                **({"command_line": self.command_line} if self.command_line else {}),
                **self.tables,
            }
        )

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> CommandResult:
        """Load a saved document (summary.json) back; to_json() of the result gives `doc` again.
        A document of another schema version is a SchemaError."""
        version = doc.get("schema_version") if isinstance(doc, dict) else None
        if version not in READABLE_VERSIONS:
            raise SchemaError(
                f"schema_version {version!r}: this bncli reads schema_version "
                f"{' or '.join(map(str, READABLE_VERSIONS))} "
                f"(made by bncli {doc.get('bncli_version', '?') if isinstance(doc, dict) else '?'})"
            )
        known = {"schema_version", "command", "bncli_version", "interrupted", "spec", "summary",
                 "claims", "runs", "task", "device", "command_line"}
        return cls(
            command=doc["command"],
            spec=doc["spec"],
            runs=[RunRecord.from_json(r) for r in doc["runs"]],
            summary=[ArmSummary.from_json(s) for s in doc["summary"]],
            claims=[Claim.from_json(c) for c in doc["claims"]],
            interrupted=bool(doc["interrupted"]),
            task=doc.get("task", "classification"),
            device=doc.get("device", "cpu"),
            tables={k: v for k, v in doc.items() if k not in known},
            bncli_version=doc.get("bncli_version"),
            command_line=doc.get("command_line"),
            schema_version=int(version),
        )
