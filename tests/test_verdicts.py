"""The verdict engine: directions, margin, absolute floor, Welch gating, C1's divergence rule."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from bncli.analyses.train import c1_claims
from bncli.results import RunRecord
from bncli.spec import VerdictSpec, parse_spec
from bncli.verdicts import MetricInput, compare_metric, decide, make_claim, welch_p

CFG = VerdictSpec()


def m(better, arm, base, floor=0.0):
    return compare_metric(MetricInput("x", better, arm, base, floor), CFG)


@pytest.mark.parametrize(
    "better, arm, base, points",
    [
        ("lower", [0.5], [1.0], "claimed"),
        ("lower", [1.5], [1.0], "against"),
        ("higher", [1.5], [1.0], "claimed"),
        ("higher", [0.5], [1.0], "against"),
        ("lower", [0.95], [1.0], "neither"),  # -5%: inside the 10% margin
        ("lower", [0.89], [1.0], "claimed"),  # -11%
        ("higher", [-0.5], [-1.0], "claimed"),  # relative to |baseline|
    ],
)
def test_direction_and_margin(better, arm, base, points):
    assert m(better, arm, base).points == points


def test_relative_difference_is_reported():
    c = m("lower", [1.0, 3.0], [4.0, 4.0])
    assert c.arm_mean == 2.0 and c.baseline_mean == 4.0 and c.rel_diff == pytest.approx(-0.5)
    assert c.p_value is None  # fewer than 3 seeds: no test


def test_absolute_floor_neutralises_near_zero_baselines():
    assert m("lower", [0.0005], [0.0]).points == "against"  # +100% relative without a floor
    assert m("lower", [0.0005], [0.0], floor=0.005).points == "neither"


def test_welch_gates_with_three_seeds():
    arm, base = [1.0, 2.0, 3.0], [1.5, 2.5, 3.5]  # 20% lower on average, but noisy
    c = m("lower", arm, base)
    expected = stats.ttest_ind(arm, base, equal_var=False).pvalue
    assert c.p_value == pytest.approx(expected)
    assert c.p_value > 0.05 and c.points == "neither"
    tight = m("lower", [1.0, 1.01, 0.99], [2.0, 2.01, 1.99])
    assert tight.p_value < 0.05 and tight.points == "claimed"


def test_welch_constant_groups_and_nan():
    assert welch_p([1, 1, 1], [2, 2, 2]) == 0.0
    assert welch_p([1, 1, 1], [1, 1, 1]) == 1.0
    assert math.isnan(welch_p([1], [2, 3]))
    assert m("lower", [math.nan], [1.0]).points == "neither"


def test_decide_needs_every_metric():
    claimed, against, neither = m("lower", [0.1], [1]), m("lower", [2], [1]), m("lower", [1], [1])
    assert decide([claimed, claimed]) == "supported"
    assert decide([against, against]) == "refuted"
    assert decide([claimed, against]) == "inconclusive"
    assert decide([claimed, neither]) == "inconclusive"
    assert decide([]) == "inconclusive"
    claim = make_claim("C9", "s", 0.1, "bn", "plain", [MetricInput("x", "lower", [0.1], [1])], CFG)
    assert claim.verdict == "supported" and claim.lr == 0.1 and "Margin 10%" in claim.rule


def _record(arm, loss, acc, diverged=None, to_target=None):
    return RunRecord(arm=arm, lr=0.1, seed=0, steps=[0, 10], train_loss=[2.0, loss],
                     train_eval_loss=[2.0, loss], train_acc=[0.1, acc], test_loss=[2.0, loss],
                     test_acc=[0.1, acc], diverged_at=diverged, divergence_reason=None,
                     steps_done=10, steps_to_target=to_target, wall_s=0.0)


def test_c1_directions_and_divergence_override():
    spec = parse_spec({"train": {"lr": 0.1, "steps": 10, "target_accuracy": 0.5}})
    better = [_record("plain", 1.0, 0.6, to_target=10), _record("batchnorm", 0.2, 0.9, to_target=5)]
    (c,) = c1_claims(spec, better)
    assert c.verdict == "supported" and [x.points for x in c.metrics] == ["claimed"] * 3
    worse = [_record("plain", 0.2, 0.9, to_target=5), _record("batchnorm", 1.0, 0.6, to_target=10)]
    assert c1_claims(spec, worse)[0].verdict == "refuted"
    plain_div = [_record("plain", 1.0, 0.6, diverged=3), _record("batchnorm", 1.0, 0.6)]
    (c,) = c1_claims(spec, plain_div)
    assert c.verdict == "supported" and "diverged" in c.note
    bn_div = [_record("plain", 1.0, 0.6), _record("batchnorm", 1.0, 0.6, diverged=3)]
    assert c1_claims(spec, bn_div)[0].verdict == "refuted"
