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
# small nets spend their time on; a fused group pays it about once) plus the arithmetic; a probe
# adds passes on its due steps (the BN-Jacobian check forms units x rows x m matrices per layer).
def job_cost(job: RunJob) -> tuple[float, float]:
    """(the per-step fixed cost a fused group shares, this member's own cost), in rough seconds."""
    from bncli.probes.registry import probe_kind

    spec = job.spec
    model, train = spec.model, spec.train
    if model.kind == "mlp":
        depth = len(model.hidden) + 1
        params, positions = sum(a * b for a, b in zip([64, *model.hidden], [*model.hidden, 10])), 1
    else:  # conv nets: 3x3 kernels over maps of (say) 16 positions on average
        depth = (model.depth or 11) if model.kind in ("vgg", "resnet") else len(model.channels) + 1
        widths = [model.width] * (depth - 1) if model.kind in ("vgg", "resnet") and model.width else model.channels
        params, positions = 9 * sum(a * b for a, b in zip([3, *widths], widths)), 16
    fixed = depth * (1e-4 if spec.arms[0].norm == "none" else 2e-4)
    arith = 6 * train.batch_size * params * positions / 3e10
    step = fixed + arith
    due_cost = 0.0
    for name in job.probes:
        section = getattr(spec.analysis, probe_kind(name).section)
        due = train.steps / max(1, int(getattr(section, "every", 50) or 50)) + 1
        if name == "landscape":
            passes = 2 * section.eta_points + (4 * section.hessian_iters if section.hessian else 0)
            due_cost += due * passes * step
        elif name == "bn_jacobian":
            m = train.batch_size * positions
            due_cost += due * depth * section.jacobian_units * min(section.jacobian_rows, m) * m * 15e-9
        else:
            due_cost += due * (depth if name == "ics_grad" else 3) * step
    return train.steps * fixed, train.steps * arith + due_cost


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
