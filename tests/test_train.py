"""The one training loop: determinism, same batches across arms, divergence, probes, interrupt."""

from __future__ import annotations

import math

import torch

from bncli.pipeline import run_analysis, run_experiment
from bncli.probes.base import ProbeBase
from bncli.spec import parse_spec


def run_analysis_train(spec):
    return run_analysis(spec, "train")


def test_same_spec_same_numbers(tiny_spec_dict_factory):
    spec = parse_spec(tiny_spec_dict_factory())
    a = run_experiment(spec).records
    b = run_experiment(spec).records
    assert [r.test_loss for r in a] == [r.test_loss for r in b]
    assert [r.train_loss for r in a] == [r.train_loss for r in b]


class BatchRecorder(ProbeBase):
    name = "batches"

    def __init__(self):
        super().__init__(every=1)
        self.xs = []
        self.after = 0

    def before_update(self, ctx):
        self.xs.append(ctx.x.clone())

    def after_update(self, ctx):
        self.after += 1

    def result(self):
        return {"n": len(self.xs)}


def test_every_arm_sees_the_same_batches(tiny_spec_dict_factory):
    spec = parse_spec(tiny_spec_dict_factory(arms=["plain", "batchnorm", "noisy_batchnorm"]))
    seen = {}

    def factory(spec_, arm, lr, seed, data):
        seen[arm.name] = BatchRecorder()
        return [seen[arm.name]]

    exp = run_experiment(spec, factory)
    ref = seen["plain"].xs
    assert len(ref) == spec.train.steps and seen["plain"].after == spec.train.steps
    for arm in ("batchnorm", "noisy_batchnorm"):
        assert all(torch.equal(x, y) for x, y in zip(ref, seen[arm].xs))
    assert exp.records[0].probes["batches"] == {"n": spec.train.steps}


def test_divergence_is_reported_not_raised(tiny_spec_dict_factory):
    spec = parse_spec(tiny_spec_dict_factory(train={"lr": [1e6], "steps": 40}))
    result = run_analysis_train(spec)
    plain = next(r for r in result.runs if r.arm == "plain")
    assert plain.diverged and plain.diverged_at is not None and plain.diverged_at < 40
    assert plain.divergence_reason
    assert math.isnan(plain.final_train_loss)
    # the run still produced a summary and a JSON-safe document
    doc = result.to_json()
    by_arm = {s["arm"]: s for s in doc["summary"]}
    assert by_arm["plain"]["n_diverged"] == 1 and by_arm["plain"]["diverged_at"] == [plain.diverged_at]
    assert by_arm["plain"]["final_train_loss"] == [None, None]  # NaN becomes null: strict JSON


def test_bn_arm_running_stats_and_modes(tiny_spec_dict_factory):
    spec = parse_spec(tiny_spec_dict_factory())
    states = {}

    class Grab(ProbeBase):
        name = "grab"

        def on_end(self, run):
            states[run.arm.name] = (run.model.training, {k: v.clone() for k, v in run.model.named_buffers()})

    run_experiment(spec, lambda s, a, lr, seed, d: [Grab(1000)])
    training, buffers = states["batchnorm"]
    assert training  # the loop leaves the model in training mode after eval passes
    assert any(k.endswith("running_mean") and v.abs().sum() > 0 for k, v in buffers.items())


def test_steps_to_target_and_history_points(tiny_spec_dict_factory):
    spec = parse_spec(tiny_spec_dict_factory(train={"steps": 30, "eval_every": 10}))
    r = run_analysis_train(spec).runs[0]
    assert r.steps == [0, 10, 20, 30]
    # pick a target between the first and the best accuracy, so it must be reached mid-run
    first, best = r.test_acc[0], max(r.test_acc)
    assert best > first
    target = (first + best) / 2
    spec2 = parse_spec(tiny_spec_dict_factory(train={"steps": 30, "eval_every": 10, "target_accuracy": target}))
    r2 = run_analysis_train(spec2).runs[0]
    i = r2.steps.index(r2.steps_to_target)
    assert r2.test_acc[i] >= target and all(a < target for a in r2.test_acc[:i])
    spec3 = parse_spec(tiny_spec_dict_factory(train={"steps": 30, "eval_every": 10, "target_accuracy": 1.0}))
    if max(run_analysis_train(spec3).runs[0].test_acc) < 1.0:
        assert run_analysis_train(spec3).runs[0].steps_to_target is None


def test_seeds_and_lr_grid(tiny_spec_dict_factory):
    spec = parse_spec(tiny_spec_dict_factory(seeds=3, train={"lr": [0.05, 0.2], "steps": 10, "eval_every": 5}))
    result = run_analysis_train(spec)
    assert len(result.runs) == 3 * 2 * 2
    assert len(result.summary) == 4 and all(s.n_seeds == 3 for s in result.summary)
    # a different seed gives a different initialization, hence different curves
    plains = [r for r in result.runs if r.arm == "plain" and r.lr == 0.05]
    assert plains[0].test_loss != plains[1].test_loss
    assert {c.lr for c in result.claims} == {0.05, 0.2}
    for c in result.claims:
        assert c.claim == "C1" and c.verdict in {"supported", "refuted", "inconclusive", "exploratory"}
        assert all(m.p_value is not None for m in c.metrics)


def test_interrupt_keeps_finished_runs(tiny_spec_dict_factory):
    spec = parse_spec(tiny_spec_dict_factory())
    calls = {"n": 0}

    class Boom(ProbeBase):
        name = "boom"

        def before_update(self, ctx):
            calls["n"] += 1
            if ctx.run.arm.name == "batchnorm" and ctx.step == 5:
                raise KeyboardInterrupt

    exp = run_experiment(spec, lambda s, a, lr, seed, d: [Boom(1)])
    assert exp.interrupted
    assert [r.arm for r in exp.records] == ["plain", "batchnorm"]
    assert not exp.records[0].interrupted and exp.records[1].interrupted


def test_results_round_trip_through_json(tiny_spec_dict_factory):
    import json

    from bncli.results import RunRecord

    result = run_analysis_train(parse_spec(tiny_spec_dict_factory(train={"steps": 10, "eval_every": 5})))
    doc = json.loads(json.dumps(result.to_json(), allow_nan=False))
    again = [RunRecord.from_json(r) for r in doc["runs"]]
    assert [r.test_loss for r in again] == [r.test_loss for r in result.runs]
    assert [r.arm for r in again] == [r.arm for r in result.runs]
