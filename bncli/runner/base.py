"""The runner interface: a Runner trains groups of jobs and returns one record per job.

`group_key(job)` says which jobs may be trained together (equal keys form a group, in plan
order); `run(jobs, data, progress)` trains one group. Executors only move groups (a loop here,
worker processes, Ray tasks); every one of them yields one result per job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from bncli.plan import RunJob
from bncli.results import RunRecord

Progress = Callable[[int], None]  # steps done since the last call


class Runner(Protocol):
    name: str

    def group_key(self, job: RunJob) -> str: ...

    def run(self, jobs: Sequence[RunJob], data: Any = None, progress: Progress | None = None) -> list[RunRecord]:
        """Train a group; one record per job, in the group's order. `data`: the group's data on
        its device (None: from this process's cache). Raises for the whole group."""
        ...


def group_jobs(jobs: Sequence[RunJob], runner: Runner) -> list[list[RunJob]]:
    """Jobs with equal group keys in groups, each group in plan order, groups by first member."""
    groups: dict[str, list[RunJob]] = {}
    for job in jobs:
        groups.setdefault(runner.group_key(job), []).append(job)
    return list(groups.values())


def group_label(jobs: Sequence[RunJob]) -> str:
    """A progress label for a group: its one job's, or the shared part and a count."""
    if len(jobs) == 1:
        return jobs[0].label
    arms = sorted({j.arm for j in jobs})
    return f"{', '.join(arms)} × {len(jobs)} runs (fused)"


# the rough cost of a job in seconds, to start the longest groups first on parallel workers (LPT
# order: the plan's end is then not one long group running alone while the other workers idle).
# Only the order matters, and only roughly. Per step: a fixed cost per layer (kernel dispatch: what
# small nets spend their time on; a fused group pays it about once) plus the arithmetic (the
# family's own multiply-adds per example); a probe adds passes on its due steps (the BN-Jacobian
# check forms units x rows x m matrices per layer). A fused group's probes with a group form
# (bncli.probes.group) pay their passes' fixed cost once for the group, as training does.
ARITH_FLOPS = 3e10  # the arithmetic rate the cost model assumes (flop/s)
JACOBIAN_ENTRY_S = {"single": 15e-9, "fused": 5e-9}  # C5: seconds per Jacobian entry checked


def _sizes(spec: Any) -> tuple[int, int, int]:
    """(layers, multiply-adds per example, positions per unit) from the model's family and the
    run's data (loaded once per process: executors ship it to workers anyway); a rough guess
    when the data cannot be loaded here."""
    from bncli.models.registry import get_family

    family = get_family(spec.model.kind)
    try:
        from bncli.runner.cache import cpu_data

        data = cpu_data(spec)
        shape, n_out = tuple(data.input_shape), int(data.n_out)
    except Exception:  # noqa: BLE001 - ordering only: the run itself reports a data error
        shape, n_out = (64,), 10
    try:
        depth = len(family.widths(spec.model)) + 1
        macs = int(family.macs_per_example(spec.model, shape, n_out))
        positions = int(family.size(spec.model, shape, n_out)[2])
    except Exception:  # noqa: BLE001 - a user's module before it is built
        depth, macs, positions = 3, 64 * 100, 1
    return max(2, depth), max(1, macs), max(1, positions)


def job_cost(job: RunJob) -> tuple[float, float]:
    """(the per-step fixed cost a fused group shares, this member's own cost), in rough seconds."""
    from bncli.probes.registry import probe_kind

    spec = job.spec
    train = spec.train
    depth, macs, positions = _sizes(spec)
    fixed = depth * (1e-4 if spec.arms[0].norm == "none" else 2e-4)
    arith = 6 * train.batch_size * macs / ARITH_FLOPS
    shared, own = train.steps * fixed, train.steps * arith
    fused = job.numerics == "fused"
    for name in job.probes:
        kind = probe_kind(name)
        section = getattr(spec.analysis, kind.section)
        due = train.steps / max(1, int(getattr(section, "every", 50) or 50)) + 1
        if name == "bn_jacobian":
            m = train.batch_size * positions
            own += due * depth * section.jacobian_units * min(section.jacobian_rows, m) * m \
                * JACOBIAN_ENTRY_S["fused" if fused else "single"]
            continue
        if name == "landscape":
            passes = 2 * section.eta_points + (4 * section.hessian_iters if section.hessian else 0)
            grouped = fused and not section.hessian
        else:
            passes = depth if name == "ics_grad" else 3
            grouped = fused and name == "ics_grad"
        own += due * passes * arith
        if grouped:  # one stacked pass for the whole group: the fixed part once
            shared += due * passes * fixed
        else:
            own += due * passes * fixed
    return shared, own


def _cost(group: Sequence[RunJob]) -> float:
    costs = [job_cost(j) for j in group]
    if len(group) == 1:
        return sum(costs[0])
    return max(c[0] for c in costs) * (1 + 0.15 * len(group)) + sum(c[1] for c in costs)


def group_cost(group: Sequence[RunJob]) -> float:
    """A group's rough cost in seconds (its members' own work plus the fixed per-step cost they
    share), for ordering only."""
    return _cost(group)


def schedule_groups(groups: Sequence[Sequence[RunJob]], workers: int) -> list[list[RunJob]]:
    """The order (and split) in which parallel workers take groups: longest first, and when there
    are fewer groups than workers the largest groups split in halves (a fused group's members
    train the same whichever group they are in) so that no worker idles from the start."""
    out = [list(g) for g in groups]
    if workers <= 1:
        return out
    while len(out) < workers:
        big = max(range(len(out)), key=lambda i: (len(out[i]), group_cost(out[i])))
        g = out[big]
        if len(g) < 2 or any(j.numerics != "fused" for j in g):
            break
        out[big:big + 1] = [g[: len(g) // 2], g[len(g) // 2:]]
    order = sorted(range(len(out)), key=lambda i: -group_cost(out[i]))
    return [out[i] for i in order]
