"""The verdict engine (SCIENCE.md, Verdicts): paired seeds, margin with intervals, noise floors,
Holm, evidence levels, named overrides, stability, budgets; one test per case the statistical
review found (issue 21, found 1-7), on constructed records."""

from __future__ import annotations

import json
import math

import pytest
from scipy import stats
from typer.testing import CliRunner

from bncli.analyses.landscape import c4_claims
from bncli.analyses.train import c1_claims
from bncli.results import Claim, RunRecord
from bncli.spec import VerdictSpec, parse_spec
from bncli.verdict_stats import binomial_floor, holm, sign_p, tost_p, ttest_p
from bncli.verdicts import MetricInput, compare_metric, decide, finalize, make_claim

CFG = VerdictSpec()


def m(better, arm, base, floor=0.0, test="superiority"):
    return compare_metric(MetricInput("x", better, arm, base, floor, test=test), CFG)


@pytest.mark.parametrize(
    "better, arm, base, points",
    [
        ("lower", [0.5], [1.0], "claimed"),
        ("lower", [1.5], [1.0], "against"),
        ("higher", [1.5], [1.0], "claimed"),
        ("higher", [0.5], [1.0], "against"),
        ("lower", [0.95], [1.0], "neither"),  # -5%: inside the 10% margin
        ("lower", [0.89], [1.0], "claimed"),  # -11%: the direction, from one seed
        ("higher", [-0.5], [-1.0], "claimed"),  # relative to |baseline|
    ],
)
def test_direction_and_margin_of_the_point_estimate(better, arm, base, points):
    assert m(better, arm, base).points == points


def test_effect_is_the_mean_of_per_seed_paired_differences():
    c = m("lower", [1.0, 3.0], [4.0, 2.0])
    assert c.arm_mean == 2.0 and c.baseline_mean == 3.0
    assert c.rel_diff == pytest.approx(((1 - 4) / 4 + (3 - 2) / 2) / 2)
    assert c.n_pairs == 2 and c.ci is None and c.p_value is None  # exploratory: direction only
    c3 = m("lower", [1.0, 3.0, 2.0], [4.0, 2.0, 2.5])
    assert c3.n_pairs == 3 and c3.ci[0] <= c3.rel_diff <= c3.ci[1] and c3.p_value is not None


# ---------------------------------------------------------------- found 1: one-seed verdicts


def test_found1_one_or_two_seeds_are_exploratory():
    one = make_claim("C1", "s", 0.1, "bn", "plain", [MetricInput("x", "lower", [0.89], [1.0])], CFG)
    assert one.verdict == "exploratory" and one.leaning == "supported" and one.evidence == "exploratory"
    two = make_claim("C1", "s", 0.1, "bn", "plain", [MetricInput("x", "lower", [0.5, 1.2], [1.0, 1.0])], CFG)
    assert two.verdict == "exploratory" and two.n_seeds == 2
    # three seeds that straddle the margin: the interval does not clear it -> inconclusive
    three = make_claim("C1", "s", 0.1, "bn", "plain",
                       [MetricInput("x", "lower", [0.5, 1.2, 0.9], [1.0, 1.0, 1.0])], CFG)
    assert three.verdict == "inconclusive" and three.evidence == "confirmatory"
    assert three.metrics[0].points == "neither" and three.metrics[0].ci[1] > -0.1


def test_confirmatory_needs_the_interval_clear_of_the_margin():
    tight = m("lower", [0.50, 0.52, 0.49, 0.51], [1.0, 1.01, 0.99, 1.0])
    assert tight.points == "claimed" and tight.ci[1] < -0.1 and tight.p_adj < 0.05
    near = m("lower", [0.87, 0.93, 0.89, 0.91], [1.0, 1.0, 1.0, 1.0])  # -10% on average
    assert near.points == "neither"  # interval straddles the margin


# ---------------------------------------------------------------- found 2: heavy tails


def _landscape_record(arm, seed, values, lr=0.1):
    series = [{"step": 10 * i, "loss_variation": v, "grad_pred_max": v, "grad_pred_mean": v, "beta": v,
               "grad_norm": 1.0} for i, v in enumerate(values)]
    return RunRecord(arm=arm, lr=lr, seed=seed, steps=[0, 50], train_loss=[1.0, 0.5],
                     train_eval_loss=[1.0, 0.5], train_acc=[None, None], test_loss=[1.0, 0.5],
                     test_acc=[None, None], diverged_at=None, divergence_reason=None, steps_done=50,
                     steps_to_target=None, wall_s=0.0, probes={"landscape": {"series": series}})


def test_found2_one_blow_up_no_longer_decides_c4():
    spec = parse_spec({"arms": ["plain", "l2norm"], "train": {"lr": 0.1, "steps": 50}})
    plain = [144, 2.52e9, 2.15, 2.11, 0.635]  # the DLN at lr 0.1: mean 5e8, median 2.15
    l2 = [3.1, 2.36, 2.4, 2.2, 1.9]  # median 2.36
    (c,) = c4_claims(spec, [_landscape_record("plain", 0, plain), _landscape_record("l2norm", 0, l2)])
    lv = c.metrics[0]
    assert lv.baseline_mean == pytest.approx(2.15) and lv.arm_mean == pytest.approx(2.36)
    assert lv.aggregate == "median" and lv.points != "claimed"
    assert c.leaning != "supported" and c.decided_by == "metrics"


# ---------------------------------------------------------------- found 3: near-zero baselines


def test_found3_zero_vs_one_error_in_360_is_inside_the_binomial_floor():
    floor = binomial_floor(0.0, 1 / 360, 360)
    assert floor > 1 / 360
    c = m("lower", [0.0], [1 / 360], floor)
    assert c.points == "neither"  # was −100 %, "claimed"
    assert m("lower", [0.0], [1 / 360]).points == "claimed"  # without the floor it would be
    assert m("lower", [0.02], [0.1], binomial_floor(0.02, 0.1, 360)).points == "claimed"  # 7 vs 36 errors


def test_absolute_floor_neutralises_near_zero_baselines():
    assert m("lower", [0.0005], [0.0]).points == "against"
    assert m("lower", [0.0005], [0.0], floor=0.005).points == "neither"


# ---------------------------------------------------------------- found 4: regimes and budgets


def _c1_record(arm, lr, seed, losses, accs, diverged=None):
    steps = [0, 10, 20, 30, 40, 50]
    return RunRecord(arm=arm, lr=lr, seed=seed, steps=steps, train_loss=losses, train_eval_loss=losses,
                     train_acc=accs, test_loss=losses, test_acc=accs, diverged_at=diverged,
                     divergence_reason=None, steps_done=50, steps_to_target=None, wall_s=0.0)


def test_found4_verdict_per_lr_in_one_row_and_per_budget():
    from bncli.analyses import get_analysis
    from bncli.analyses.base import DataInfo
    from bncli.regimes import judge_claims, regime_rows, truncate

    spec = parse_spec({"seeds": 3, "train": {"lr": [0.01, 0.1], "steps": 50, "eval_every": 10,
                                            "target_accuracy": None}})
    recs = []
    for s, j in enumerate((0.0, 0.01, -0.01)):
        hi, lo = 0.8 + j, 0.5 + j
        # lr 0.01: BN ahead all along; lr 0.1: plain ahead early, BN ahead only at the end
        recs += [_c1_record("plain", 0.01, s, [2.0 * (1 + j)] * 6, [lo] * 6),
                 _c1_record("batchnorm", 0.01, s, [1.0 - j] * 6, [hi] * 6),
                 _c1_record("plain", 0.1, s, [1.0 * (1 + j)] * 5 + [2.0 * (1 + j)], [lo] * 6),
                 _c1_record("batchnorm", 0.1, s, [2.0 - j] * 5 + [1.0 - j], [lo] * 5 + [hi])]
    cut = truncate(recs[2], 20)
    assert cut.steps == [0, 10, 20] and cut.train_loss == [1.0] * 3 and cut.steps_done == 20
    info = DataInfo("classification", 100, 360, (8,), 3, "cpu")
    a = get_analysis("train")
    claims = judge_claims(spec, a, recs, info, a.summarize(spec, recs, info).claims)
    by_lr = {c.lr: c for c in claims}
    assert by_lr[0.01].verdict == "supported" and by_lr[0.1].verdict == "supported"
    assert by_lr[0.01].budgets == {"40%": "supported", "70%": "supported", "100%": "supported"}
    assert by_lr[0.1].budgets["40%"] == "inconclusive"  # the flip with the budget is visible
    assert by_lr[0.1].metrics[0].name == "final train loss"
    lrs, rows = regime_rows(claims)
    assert lrs == [0.01, 0.1] and len(rows) == 1 and set(rows[0]["by_lr"]) == {0.01, 0.1}


# ---------------------------------------------------------------- found 5: named overrides


def _record(arm, loss, acc, diverged=None, to_target=None, seed=0):
    return RunRecord(arm=arm, lr=0.1, seed=seed, steps=[0, 10], train_loss=[2.0, loss],
                     train_eval_loss=[2.0, loss], train_acc=[0.1, acc], test_loss=[2.0, loss],
                     test_acc=[0.1, acc], diverged_at=diverged, divergence_reason=None,
                     steps_done=10, steps_to_target=to_target, wall_s=0.0)


def test_found5_divergence_override_is_named():
    spec = parse_spec({"seeds": 3, "train": {"lr": 0.1, "steps": 10, "eval_every": 5, "target_accuracy": 0.5}})
    jit = (0.0, 0.01, -0.01)
    better = [r for s, j in enumerate(jit) for r in (
        _record("plain", 1.0 + j, 0.6 + j, to_target=10 + s, seed=s),
        _record("batchnorm", 0.2 - j / 5, 0.9, to_target=5, seed=s))]
    (c,) = c1_claims(spec, better)
    assert c.verdict == "supported" and c.decided_by == "metrics" and c.n_seeds == 3
    plain_div = [r for s in range(3) for r in (_record("plain", 1.0, 0.6, diverged=3, seed=s),
                                               _record("batchnorm", 3.0, 0.6, seed=s))]
    (c,) = c1_claims(spec, plain_div)
    assert c.verdict == "supported" and c.decided_by == "divergence" and "decided by divergence" in c.note
    one = c1_claims(spec, [_record("plain", 1.0, 0.6, diverged=3), _record("batchnorm", 1.0, 0.6)])[0]
    assert one.verdict == "exploratory" and one.leaning == "supported" and one.decided_by == "divergence"


def test_found5_one_non_finite_point_does_not_decide_c4():
    spec = parse_spec({"seeds": 3, "arms": ["plain", "batchnorm"], "train": {"lr": 0.1, "steps": 50}})
    recs = []
    for s in range(3):
        plain = [10.0, 11.0, 9.0, 10.5, 9.5]
        if s == 1:
            plain[2] = math.inf  # one η′ grid blew up at one step of one seed
        recs += [_landscape_record("plain", s, plain), _landscape_record("batchnorm", s, [1.0, 1.1, 0.9, 1.0, 1.05])]
    (c,) = c4_claims(spec, recs)
    assert c.decided_by == "metrics" and c.verdict == "supported"
    assert all(mc.n_pairs == 3 for mc in c.metrics)
    # the arm's landscape blown at most measurements of every seed, the baseline's never: that decides
    bad = [_landscape_record(r.arm, r.seed, [math.inf] * 3 + [1.0, 1.0]) if r.arm == "batchnorm" else r
           for r in recs if not (r.arm == "plain" and r.seed == 1)] + [_landscape_record("plain", 1, [10.0] * 5)]
    (c,) = c4_claims(spec, bad)
    assert c.decided_by == "non-finite" and c.verdict == "refuted"


# ---------------------------------------------------------------- found 6: equivalence by TOST


def test_found6_no_worse_than_bn_is_a_tost_not_a_point_estimate():
    # point estimate within the margin, seeds all over the place: not shown to be equivalent
    noisy = m("lower", [0.10, 0.30, 0.16], [0.2, 0.2, 0.2], test="equivalence")
    assert abs(noisy.rel_diff) < 0.1 and noisy.p_tost > 0.05 and noisy.points == "neither"
    tight = m("lower", [0.201, 0.203, 0.199, 0.202], [0.2, 0.2, 0.2, 0.2], test="equivalence")
    assert tight.p_tost < 0.05 and tight.points == "claimed"
    worse = m("lower", [0.4, 0.41, 0.39], [0.2, 0.2, 0.2], test="equivalence")
    assert worse.points == "against"
    assert tost_p([0.0, 0.01, -0.01], 0.1) == pytest.approx(max(
        stats.ttest_1samp([0.0, 0.01, -0.01], -0.1, alternative="greater").pvalue,
        stats.ttest_1samp([0.0, 0.01, -0.01], 0.1, alternative="less").pvalue))


# ---------------------------------------------------------------- found 7: paired tests


def test_found7_paired_test_uses_the_design():
    base = [1.0, 5.0, 10.0]  # seeds differ a lot; the arm is 20% lower on every one of them
    arm = [0.8, 4.0, 8.1]
    assert stats.ttest_ind(arm, base, equal_var=False).pvalue > 0.5  # Welch sees nothing
    c = m("lower", arm, base)
    assert c.p_value < 0.05 and c.points == "claimed"


def test_found7_constant_groups_do_not_give_p_zero():
    p = ttest_p([-0.5, -0.5, -0.5])
    assert p == pytest.approx(sign_p([-1, -1, -1])) == pytest.approx(0.25)
    c = m("lower", [1.0, 1.0, 1.0], [2.0, 2.0, 2.0])
    assert c.p_value == pytest.approx(0.25) and c.points == "neither"
    assert m("lower", [1.0] * 6, [2.0] * 6).p_value == pytest.approx(2 / 64)


def test_found7_non_finite_seeds_are_counted_and_one_survivor_is_exploratory():
    c = make_claim("C1", "s", 0.1, "bn", "plain",
                   [MetricInput("x", "lower", [0.5, math.nan, math.inf], [1.0, 1.0, 1.0])], CFG)
    assert c.metrics[0].n_pairs == 1 and c.metrics[0].n_dropped == 2
    assert c.verdict == "exploratory"


# ---------------------------------------------------------------- Holm, decide, stability


def test_holm_step_down():
    assert holm([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None], nan_ok=True)
    assert holm([0.5]) == [0.5]


def test_finalize_adjusts_over_the_family():
    tight = [MetricInput("x", "lower", [0.5, 0.52, 0.49, 0.51], [1.0, 1.01, 0.99, 1.0])]
    claims = [make_claim("C1", "s", lr, "bn", "plain", tight, CFG) for lr in (0.1, 0.2, 0.3)]
    done = finalize(claims, CFG)
    raw = [c.metrics[0].p_value for c in claims]
    assert [c.metrics[0].p_adj for c in done] == pytest.approx(holm(raw))
    assert all(c.metrics[0].p_adj >= c.metrics[0].p_value for c in done)


def test_decide_needs_every_metric_and_stability_is_shown():
    claimed, against, neither = m("lower", [0.1], [1]), m("lower", [2], [1]), m("lower", [1], [1])
    assert decide([claimed, claimed]) == "supported"
    assert decide([against, against]) == "refuted"
    assert decide([claimed, against]) == decide([claimed, neither]) == decide([]) == "inconclusive"
    c = make_claim("C1", "s", 0.1, "bn", "plain",
                   [MetricInput("x", "lower", [0.5, 0.52, 0.49, 0.51], [1.0, 1.01, 0.99, 1.0])], CFG)
    assert c.verdict == "supported" and c.stability == 1.0 and "Margin 10%" in c.rule
    shaky = make_claim("C1", "s", 0.1, "bn", "plain",
                       [MetricInput("x", "lower", [0.5, 1.1, 0.8, 0.95], [1.0] * 4)], CFG)
    assert 0 < shaky.stability < 1


def test_claims_round_trip_through_json():
    c = make_claim("C1", "s", 0.1, "bn", "plain",
                   [MetricInput("x", "lower", [0.5, 0.52, 0.49], [1.0, 1.01, 0.99])], CFG)
    back = Claim.from_json(json.loads(json.dumps(c.to_json())))
    assert back == c


# ---------------------------------------------------------------- CLI: one seed says exploratory


def test_cli_one_seed_run_says_exploratory(write_spec, tiny_spec_dict_factory):
    from bncli.cli import app

    p = write_spec(tiny_spec_dict_factory())
    res = CliRunner().invoke(app, ["train", str(p), "--quiet"])
    assert res.exit_code == 0, res.output
    rows = [line for line in res.stdout.splitlines() if line.startswith("C1 ")]
    assert rows and "exploratory" in rows[0]
    doc = json.loads(CliRunner().invoke(app, ["train", str(p), "--quiet", "--json"]).stdout)
    (c,) = doc["claims"]
    assert c["verdict"] == "exploratory" and c["evidence"] == "exploratory" and c["n_seeds"] == 1
    assert c["leaning"] in ("supported", "refuted", "inconclusive") and c["decided_by"]
