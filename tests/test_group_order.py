"""Parallel executors take groups longest first (LPT) and split big fused groups while workers
would idle; every job still runs exactly once, and its record does not depend on the order."""

from __future__ import annotations

from bncli.plan import plan
from bncli.runner import default_runner, group_jobs
from bncli.runner.base import group_cost, job_cost, schedule_groups
from bncli.spec import Spec


def _spec(**over) -> Spec:
    doc = {"seeds": 4, "threads": 1, "device": "cpu",
           "data": {"source": "synthetic", "n_samples": 300, "n_features": 10, "n_classes": 3},
           "model": {"hidden": [12, 12], "activation": "relu"},
           "train": {"lr": [0.1, 0.3], "steps": 20, "eval_every": 10, "batch_size": 20},
           "arms": ["plain", "batchnorm"], **over}
    return Spec.model_validate(doc)


def test_costs_grow_with_steps_width_and_probes():
    short = plan(_spec(), "train")[0]
    longer = plan(_spec(train={"lr": [0.1], "steps": 200, "batch_size": 20}), "train")[0]
    wide = plan(_spec(model={"hidden": [400, 400], "activation": "relu"}), "train")[0]
    probed = plan(_spec(), "landscape")[0]
    assert sum(job_cost(longer)) > sum(job_cost(short))
    assert job_cost(wide)[1] > job_cost(short)[1]
    assert job_cost(probed)[1] > job_cost(short)[1]


def test_longest_first_and_every_job_once():
    jobs = plan(_spec(), "train") + plan(_spec(train={"lr": [0.1], "steps": 400, "batch_size": 20}),
                                         "landscape")
    groups = group_jobs(jobs, default_runner(None))
    ordered = schedule_groups(groups, 2)
    costs = [group_cost(g) for g in ordered]
    assert costs == sorted(costs, reverse=True)
    assert sorted(j.key for g in ordered for j in g) == sorted(j.key for j in jobs)
    assert ordered[0][0].analysis == "landscape"  # 400 steps with probes before 20 without
    # one worker: the plan's order, untouched
    assert [[j.key for j in g] for g in schedule_groups(groups, 1)] == [[j.key for j in g] for g in groups]


def test_fewer_groups_than_workers_split_fused_groups_not_single_ones():
    one_arm = _spec(arms=["batchnorm"])
    fused = group_jobs(plan(one_arm, "train"), default_runner(None))
    assert [len(g) for g in fused] == [8]
    split = schedule_groups(fused, 4)
    assert sorted(len(g) for g in split) == [2, 2, 2, 2]
    assert all(j.numerics == "fused" for g in split for j in g)
    single = group_jobs(plan(one_arm.model_copy(update={"fuse": "off"}), "train"), default_runner(None))
    assert len(schedule_groups(single[:1], 4)) == 1  # a single job is never split


def test_a_split_group_trains_the_same_members():
    """A member's fused record does not depend on which group it trained in (float32, exactly
    the same batched kernels per member up to the group size: compared to rounding)."""
    from bncli.runner.fused import FusedRunner

    one_arm = _spec(arms=["plain"], seeds=2, train={"lr": [0.1, 0.3], "steps": 20, "eval_every": 10,
                                                    "batch_size": 20})
    runner = FusedRunner()
    (group,) = group_jobs(plan(one_arm, "train"), runner)
    whole = {(r.lr, r.seed): r for r in runner.run(group)}
    halves = schedule_groups([group], 2)
    assert len(halves) == 2
    for half in halves:
        for r in runner.run(half):
            ref = whole[(r.lr, r.seed)]
            for a, b in zip(r.test_loss, ref.test_loss, strict=True):
                assert abs(a - b) <= 1e-5 * max(1.0, abs(b))


def test_a_fused_group_too_big_for_memory_trains_in_chunks(monkeypatch):
    """max_members from the free memory: a group of 8 with room for 3 trains as 3 + 3 + 2, and
    every member's record is the one it gets in the whole group (to float32 rounding)."""
    from bncli.runner import fused as fused_mod
    from bncli.runner.cache import cpu_data

    spec = _spec(arms=["batchnorm"])
    runner = fused_mod.FusedRunner()
    (group,) = group_jobs(plan(spec, "train"), runner)
    data = cpu_data(spec)
    whole = {(r.lr, r.seed): r for r in runner.run(group, data)}
    per = fused_mod.member_bytes(group[0].spec, data)
    assert fused_mod.max_members(group[0].spec, data, available=4 * per * 3) == 3
    assert fused_mod.max_members(group[0].spec, data, available=1) == 1
    sizes = []
    real = fused_mod.train_fused
    monkeypatch.setattr(fused_mod, "max_members", lambda s, d: 3)
    monkeypatch.setattr(fused_mod, "train_fused", lambda jobs, d, p: sizes.append(len(jobs)) or real(jobs, d, p))
    chunked = runner.run(group, data)
    assert sizes == [3, 3, 2]
    assert [(r.lr, r.seed) for r in chunked] == [(j.lr, j.seed) for j in group]
    for r in chunked:
        ref = whole[(r.lr, r.seed)]
        for a, b in zip(r.test_loss, ref.test_loss, strict=True):
            assert abs(a - b) <= 1e-5 * max(1.0, abs(b))
