"""What one analysis is: its command, claims, spec section, options, probes and summarize()."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from bncli.results import Claim, RunRecord

F32 = 4  # bytes per float32 (memory estimates)


class Sizes(NamedTuple):
    """What a memory estimate of an analysis's probes needs (bncli.budget fills it)."""

    params: int  # parameters and norm buffers of one model
    act: int  # activations per example
    positions: int  # positions per unit (1, or H x W)
    batch: int  # training batch
    n_train: int


MemoryParts = list[tuple[str, int, str]]  # (what, bytes, the spec field that drives it)


class DataInfo(NamedTuple):
    """What summaries and headers need to know about the data (plain values, no tensors)."""

    task: str  # "classification" | "regression"
    n_train: int
    n_test: int
    input_shape: tuple[int, ...]
    n_out: int
    device: str


@dataclass(frozen=True)
class Option:
    """A command-line option of an analysis and the spec field it overrides."""

    param: str  # the Python parameter name (Typer derives the flag from `decls`)
    decls: tuple[str, ...]  # e.g. ("--every",) or ("--hessian/--no-hessian",)
    annotation: Any  # the value type, e.g. int | None
    spec_path: str | None  # dotted spec field it overrides; None: not a spec field
    help: str | Callable[[], str]  # a callable: computed when the command is built (after plugins)
    to_spec: Callable[[Any], Any] | None = None  # convert the option's value for the spec
    metavar: str | None = None


def every_option(section: str, what: str = "Measure") -> Option:
    """--every N: the one declaration of every analysis's measurement schedule."""
    return Option("every", ("--every",), int | None, f"analysis.{section}.every",
                  f"{what} every N steps and at the last one (overrides analysis.{section}.every).")


def probe_size_option(section: str) -> Option:
    """--probe-size N: the one declaration of the fixed probe batch's size."""
    return Option("probe_size", ("--probe-size",), int | None, f"analysis.{section}.probe_size",
                  f"Examples in the fixed probe batch (overrides analysis.{section}.probe_size).")


# the subcommands' help footer (commands.analysis appends it; an analysis may say more)
EXIT_CODES = "Exit codes: 0 done, 1 run failed, 2 bad spec or usage, 130 interrupted."


@dataclass(frozen=True)
class Summary:
    """What summarize() returns: the claims, and the analysis's own tables as plain data."""

    claims: list[Claim]
    tables: dict[str, Any] = field(default_factory=dict)


ProbeFactory = Callable[..., Sequence[Any]]  # (spec, arm, lr, seed, data) -> probes (tests, benchmarks)
ProbePlan = Callable[[Any, Any], tuple[str, ...]]  # (spec, arm) -> the probes a job runs, by name
Summarizer = Callable[[Any, Sequence[RunRecord], DataInfo], Summary]  # (spec, records, data)


@dataclass(frozen=True)
class Analysis:
    """One registered analysis. `plan_probes(spec, arm)` names, at plan time, the probes each of
    its jobs runs (bncli.probes.registry builds them in the runner); `render` names the module
    with render(spec, result) -> renderables and write_files(spec, result, out_dir) -> paths."""

    name: str
    command: str
    claims: tuple[str, ...]
    section: str | None  # its `analysis.<section>` in the spec (None: train only)
    options: tuple[Option, ...]
    plan_probes: ProbePlan
    summarize: Summarizer
    render: str
    help: str
    # names a batch expectation can test ({metric: NAME, arm: ...}), beside the summary metrics
    # (final_train_loss, best_test_acc, ...): keys of this analysis's per (lr, arm) table rows
    metrics: tuple[str, ...] = ()
    # its probes' memory: (its section's settings, Sizes) -> parts; bncli.budget takes the largest
    memory: Callable[[Any, Sizes], MemoryParts] | None = None
    # (spec field, settings -> the update that puts it back to an ordinary size): what the memory
    # error may name
    shrink: tuple[tuple[str, Callable[[Any], dict[str, Any]]], ...] = ()
    budgeted: bool = False  # its claims are also judged at shorter budgets (bncli.regimes)
    exit_codes: str = EXIT_CODES  # the --help footer


def no_probes(spec: Any, arm: Any) -> tuple[str, ...]:
    """The plan of an analysis without probes (train: the curves only)."""
    return ()
