"""The verdict engine (SCIENCE.md, Verdicts): log-ratio effects, one-sided paired t-tests against the
margin with the matching t-interval, intersection-union within a claim, Holm across claims,
non-finite seeds against their arm, C9's non-inferiority; checked against a slow re-implementation
(numpy + scipy.stats.ttest_1samp), the seven cases of issue 28 as regressions, the smallest cells of
the calibration table, and bad input to bncli.judge."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

import bncli
from bncli.analyses.landscape import c4_claims
from bncli.analyses.train import c1_claims
from bncli.results import Claim, CommandResult, RunRecord
from bncli.spec import VerdictSpec, parse_spec
from bncli.verdict_stats import binomial_floor, holm, spread_floor
from bncli.verdicts import MetricInput, finalize, make_claim

CFG = VerdictSpec()
DELTA = math.log(1.1)


def metric(arm, base, better="lower", name="x", **kw):
    return {"name": name, "better": better, "arm": list(arm), "baseline": list(base), **kw}


def one(arm, base, better="lower", **kw):
    (c,) = bncli.judge([[metric(arm, base, better, **kw)]])
    return c


# ---------------------------------------------------------------- the slow, obvious reference


def reference(claims, margin=0.1, alpha=0.05):
    """The rule written out with scipy's own t-test, one metric at a time (finite values, f = 0 or
    a spread above the floor)."""
    d = math.log1p(margin)
    ps = []
    for ms in claims:
        pc, pa = [], []
        for m in ms:
            a, b, f = np.asarray(m["arm"], float), np.asarray(m["baseline"], float), m.get("floor", 0.0)
            x = np.log((a + f) / (b + f))
            less_lo = stats.ttest_1samp(x, -d, alternative="less").pvalue
            greater_hi = stats.ttest_1samp(x, d, alternative="greater").pvalue
            claimed, against = (less_lo, greater_hi) if m["better"] == "lower" else (
                stats.ttest_1samp(x, d, alternative="greater").pvalue,
                stats.ttest_1samp(x, -d, alternative="less").pvalue)
            pc.append(claimed)
            pa.append(against)
        ps.append((max(pc), max(pa)))
    p = [min(1.0, 2 * min(c, a)) for c, a in ps]
    # Holm, written as a loop
    order = sorted(range(len(p)), key=lambda i: p[i])
    adj, run = [0.0] * len(p), 0.0
    for k, i in enumerate(order):
        run = max(run, min(1.0, (len(p) - k) * p[i]))
        adj[i] = run
    verdicts = []
    for (c, a), pa in zip(ps, adj, strict=True):
        verdicts.append("inconclusive" if pa >= alpha else "supported" if c <= a else "refuted")
    return ps, adj, verdicts


def test_engine_equals_the_slow_reference_on_random_claims():
    rng = np.random.default_rng(7)
    for _trial in range(30):
        n = int(rng.integers(3, 9))
        claims = []
        for _ in range(int(rng.integers(1, 5))):
            ms = []
            for j in range(int(rng.integers(1, 4))):
                b = np.exp(rng.normal(0, 1, n))
                a = b * np.exp(rng.normal(rng.normal(0, 0.5), 0.3, n))
                ms.append(metric(a, b, "lower" if rng.random() < 0.5 else "higher", name=f"m{j}"))
            claims.append(ms)
        ps, adj, verdicts = reference(claims)
        got = bncli.judge(claims)
        for c, (pc, pa), pad, v in zip(got, ps, adj, verdicts, strict=True):
            assert c.p_claimed == pytest.approx(pc, rel=1e-9, abs=1e-15)
            assert c.p_against == pytest.approx(pa, rel=1e-9, abs=1e-15)
            assert c.p_adj == pytest.approx(pad, rel=1e-9, abs=1e-15)
            assert c.verdict == v and c.family == len(claims)


def test_effect_interval_and_centres_are_the_log_scale_ones():
    a, b = [1.0, 2.0, 4.0, 3.0], [2.0, 3.0, 9.0, 4.0]
    c = one(a, b)
    x = np.log(np.asarray(a) / np.asarray(b))
    m = c.metrics[0]
    assert m.effect == pytest.approx(math.expm1(x.mean()), rel=1e-12)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert m.ci == pytest.approx([math.expm1(lo), math.expm1(hi)], rel=1e-10)
    # the centres shown are geometric means: their ratio is the effect
    assert m.arm_mean == pytest.approx(stats.gmean(a)) and m.baseline_mean == pytest.approx(stats.gmean(b))
    assert m.arm_mean / m.baseline_mean - 1 == pytest.approx(m.effect, rel=1e-12)


def test_difference_scale_keeps_units_and_an_absolute_margin():
    a, b = [0.3, 0.5, 0.4, 0.6], [-0.2, 0.1, -0.1, 0.0]
    c = one(a, b, "higher", scale="difference", margin=0.1)
    x = np.asarray(a) - np.asarray(b)
    m = c.metrics[0]
    assert m.effect == pytest.approx(x.mean())
    assert c.p_claimed == pytest.approx(stats.ttest_1samp(x, 0.1, alternative="greater").pvalue, rel=1e-10)
    assert c.verdict == "supported"


def test_holm_step_down():
    adj = holm([0.01, 0.04, 0.03, None])
    assert adj[:3] == pytest.approx([0.03, 0.06, 0.06]) and adj[3] is None


def test_spread_floor_is_the_resolution_step():
    assert spread_floor([1.0], [1.0], 0.0, "ratio") == 0.0
    assert spread_floor([0.0], [1.0], 0.3, "difference") == pytest.approx(0.3 / math.sqrt(6))
    f = 0.01
    assert spread_floor([0.0], [0.3], f, "ratio") == pytest.approx(
        math.sqrt(f * f / 12 * (1 / f ** 2 + 1 / 0.31 ** 2)))


# ---------------------------------------------------------------- issue 28: the seven cases


def test_case1_a_large_consistent_effect_is_decided_at_3_and_5_seeds():
    # x12.5 on every seed, the gradient-ICS way (higher is claimed)
    base = [0.010, 0.014, 0.008, 0.012, 0.011]
    arm = [b * r for b, r in zip(base, (12.5, 9.0, 20.0, 11.0, 14.0), strict=True)]
    assert one(arm[:3], base[:3], "higher").verdict == "supported"
    assert one(arm, base, "higher").verdict == "supported"
    # ... and the downward mirror weighs the same on the log scale
    assert one(base, arm, "lower").p_claimed == pytest.approx(one(arm, base, "higher").p_claimed)


def test_case1_holm_runs_across_claims_not_metrics():
    # three metrics in one claim, each x3 on every seed: intersection-union needs no correction
    rng = np.random.default_rng(1)
    base = [list(np.exp(rng.normal(0, 0.3, 3))) for _ in range(3)]
    arm = [[v * 3 * math.exp(e) for v, e in zip(b, rng.normal(0, 0.1, 3), strict=True)] for b in base]
    (c,) = bncli.judge([[metric(a, b, "higher", name=f"m{i}") for i, (a, b) in enumerate(zip(arm, base, strict=True))]])
    assert c.family == 1 and c.verdict == "supported"
    assert c.p_claimed == max(m.p_claimed for m in c.metrics)


def _at_margin_rate(n, reps, rng, sd=0.05 * math.sqrt(2)):
    hits = 0
    for _ in range(reps):
        b = np.exp(rng.normal(0, 0.2, n))
        a = b / 1.1 * np.exp(rng.normal(0, sd, n))  # exactly at the margin (lower claimed)
        hits += one(a, b).verdict == "supported"
    return hits / reps


def test_case2_an_effect_at_the_margin_is_supported_at_most_2_5_percent():
    rng = np.random.default_rng(2)
    reps = 600
    for n in (3, 5):
        rate = _at_margin_rate(n, reps, rng)
        # 2.5 % by construction; 3.5 binomial standard errors above it fails
        assert rate <= 0.025 + 3.5 * math.sqrt(0.025 * 0.975 / reps), (n, rate)


def test_case3_c9_non_inferiority_has_power_and_a_better_arm_passes():
    rng = np.random.default_rng(3)
    reps, hits = 300, 0
    for _ in range(reps):  # an lp arm exactly as good as BN, per-seed ratio CV 10 %, 5 seeds
        bn = np.exp(rng.normal(0, 0.3, 5))
        lp = bn * np.exp(rng.normal(0, 0.1, 5))
        c = bncli.judge([[metric(lp, bn, test="non-inferiority")]])[0]
        hits += c.verdict == "supported"
    assert hits / reps >= 0.30
    better = one([0.5, 0.55, 0.45, 0.5, 0.52], [1.0, 1.02, 0.98, 1.0, 1.01], test="non-inferiority")
    assert better.verdict == "supported"  # clearly better is no worse (the one-sided test)
    worse = one([2.0, 2.1, 1.9, 2.0, 2.05], [1.0, 1.02, 0.98, 1.0, 1.01], test="non-inferiority")
    assert worse.verdict == "refuted"  # the mirror test: worse beyond the margin


def test_case4_identical_per_seed_differences_are_tested_like_any_others():
    dead = one([0.0, 0.0, 0.0], [0.3, 0.3, 0.3], floor=0.005)  # -100 % dead units on every seed
    assert dead.verdict == "supported" and dead.metrics[0].identical
    same = one([100.0] * 3, [200.0] * 3, floor=25.0)
    varied = one([100.0] * 3, [200.0, 200.0, 300.0], floor=25.0)
    assert same.p_claimed <= varied.p_claimed and same.verdict == "supported"


def test_case5_beyond_replaces_stability():
    c = one([0.5, 0.52, 0.49], [1.0, 1.01, 0.99])
    assert c.verdict == "supported" and c.beyond == [3, 3] and c.stability is None
    assert "stability" not in c.to_json()
    mixed = one([0.5, 1.2, 0.8, 0.95], [1.0] * 4)
    assert mixed.beyond == [2, 4]


def test_case6_non_finite_seeds_count_against_their_arm():
    base = [1.0, 1.1, 0.9, 1.05, 0.95]
    ok = one([0.3, 0.33, 0.28, 0.31, 0.3], base)
    assert ok.verdict == "supported"
    bad = one([0.3, None, 0.28, None, 0.3], base)
    assert bad.verdict != "supported" and bad.p_claimed == 1.0
    assert bad.metrics[0].nonfinite_arm == 2 and bad.metrics[0].n_seeds == 5
    # a baseline that did not finish cannot make the claim fail
    assert one([3.0, 3.1, 2.9, 3.2, 3.0], [1.0, None, 1.0, 1.0, 1.0]).p_against == 1.0


def test_case7_effect_and_centres_agree_in_sign():
    # the mean of per-seed ratios once said +243 % beside an arm mean below the baseline mean
    arm = [0.0005, 0.0010, 0.0515]
    base = [0.0050, 0.0050, 0.0500]
    m = one(arm, base).metrics[0]
    assert (m.effect < 0) == (m.arm_mean < m.baseline_mean)


def test_exploratory_below_three_seeds_says_the_direction():
    c = one([0.5, 0.52], [1.0, 1.01])
    assert c.verdict == "exploratory" and c.leaning == "supported" and c.p_adj is None


def test_bad_input_is_a_value_error_naming_the_metric():
    with pytest.raises(ValueError, match="'loss'.*paired"):
        bncli.judge([[metric([1, 2, 3], [1, 2], name="loss")]])
    with pytest.raises(ValueError, match="'gap'.*not positive"):
        bncli.judge([[metric([1, -2, 3], [1, 2, 3], name="gap")]])
    with pytest.raises(ValueError, match="'acc'.*NaN"):
        bncli.judge([[metric([1, math.nan, 3], [1, 2, 3], name="acc")]])
    with pytest.raises(ValueError, match="'acc'.*better"):
        bncli.judge([[metric([1, 2, 3], [1, 2, 3], better="smaller", name="acc")]])
    with pytest.raises(ValueError, match="'d'.*margin"):
        bncli.judge([[metric([1, 2, 3], [1, 2, 3], name="d", scale="difference")]])
    with pytest.raises(ValueError, match="unknown key"):
        bncli.judge([[metric([1, 2, 3], [1, 2, 3], name="d", flor=0.1)]])


# ---------------------------------------------------------------- within bncli's analyses


def _record(arm, loss, acc, diverged=None, to_target=None, seed=0):
    return RunRecord(arm=arm, lr=0.1, seed=seed, steps=[0, 10], train_loss=[2.0, loss],
                     train_eval_loss=[2.0, loss], train_acc=[0.1, acc], test_loss=[2.0, loss],
                     test_acc=[0.1, acc], diverged_at=diverged, divergence_reason=None,
                     steps_done=10, steps_to_target=to_target, wall_s=0.0)


def test_divergence_override_is_named_and_partial_divergence_counts_against():
    spec = parse_spec({"seeds": 3, "train": {"lr": 0.1, "steps": 10, "eval_every": 5, "target_accuracy": 0.5}})
    jit = (0.0, 0.01, -0.01)
    better = [r for s, j in enumerate(jit) for r in (
        _record("plain", 1.0 + j, 0.6 + j, to_target=10 + s, seed=s),
        _record("batchnorm", 0.2 - j / 5, 0.9, to_target=5, seed=s))]
    (c,) = finalize(c1_claims(spec, better), CFG)
    assert c.verdict == "supported" and c.decided_by == "metrics" and c.n_seeds == 3
    plain_div = [r for s in range(3) for r in (_record("plain", 1.0, 0.6, diverged=3, seed=s),
                                               _record("batchnorm", 3.0, 0.6, seed=s))]
    (c,) = c1_claims(spec, plain_div)
    assert c.verdict == "supported" and c.decided_by == "divergence" and "decided by divergence" in c.note
    one_bn_div = [r if not (r.arm == "batchnorm" and r.seed == 1) else
                  _record("batchnorm", 0.2, 0.9, diverged=4, seed=1) for r in better]
    (c,) = finalize(c1_claims(spec, one_bn_div), CFG)
    assert c.verdict != "supported" and c.nonfinite == {"batchnorm": 1}
    assert "counted against" in c.note


def _landscape_record(arm, seed, values):
    steps = list(range(0, 10 * len(values), 10))
    series = [{"step": s, "loss_variation": v, "grad_pred_max": v, "grad_pred_mean": v, "beta": v,
               "grad_norm": 1.0, "eta": [0.5, 1.0], "n_nonfinite": int(not math.isfinite(v))}
              for s, v in zip(steps, values, strict=True)]
    return RunRecord(arm=arm, lr=0.1, seed=seed, steps=steps, train_loss=[1.0] * len(steps),
                     train_eval_loss=[1.0] * len(steps), train_acc=[None] * len(steps),
                     test_loss=[1.0] * len(steps), test_acc=[None] * len(steps), diverged_at=None,
                     divergence_reason=None, steps_done=50, steps_to_target=None, wall_s=0.0,
                     probes={"landscape": {"series": series}})


def test_one_non_finite_point_does_not_decide_c4_but_a_blown_arm_does():
    spec = parse_spec({"seeds": 3, "arms": ["plain", "batchnorm"], "train": {"lr": 0.1, "steps": 50}})
    recs = []
    for s in range(3):
        plain = [10.0 + s, 11.0, 9.0, 10.5, 9.5]
        if s == 1:
            plain[2] = math.inf  # one η′ grid blew up at one step of one seed
        recs += [_landscape_record("plain", s, plain),
                 _landscape_record("batchnorm", s, [1.0, 1.1 + s / 10, 0.9, 1.0, 1.05])]
    (c,) = finalize(c4_claims(spec, recs), CFG)
    assert c.decided_by == "metrics" and c.verdict == "supported"
    assert all(mc.n_pairs == 3 for mc in c.metrics)
    bad = [_landscape_record(r.arm, r.seed, [math.inf] * 3 + [1.0, 1.0]) if r.arm == "batchnorm" else r
           for r in recs if not (r.arm == "plain" and r.seed == 1)] + [_landscape_record("plain", 1, [10.0] * 5)]
    (c,) = c4_claims(spec, bad)
    assert c.decided_by == "non-finite" and c.verdict == "refuted"


def test_zero_vs_one_error_in_360_is_inside_the_binomial_floor():
    f = binomial_floor(0.0, 1 / 360, 360)
    c = make_claim("C1", "s", 0.1, "bn", "plain",
                   [MetricInput("err", "lower", [0.0, 0.0, 0.0], [1 / 360, 0.0, 1 / 360], f)], CFG)
    assert finalize([c], CFG)[0].verdict == "inconclusive"


def test_finalize_holm_family_is_the_command_claims():
    good = make_claim("C1", "s", 0.1, "bn", "plain",
                      [MetricInput("x", "lower", [0.5, 0.52, 0.49], [1.0, 1.01, 0.99])], CFG)
    few = make_claim("C1", "s", 0.5, "bn", "plain", [MetricInput("x", "lower", [0.5], [1.0])], CFG)
    a, b = finalize([good, good, few], CFG)[:2]
    assert a.family == 2 and a.p_adj == pytest.approx(min(1.0, 2 * good.p))
    assert finalize([few], CFG)[0].family == 0


def test_found4_verdict_per_lr_in_one_row_and_per_budget():
    from bncli.analyses import get_analysis
    from bncli.analyses.base import DataInfo
    from bncli.regimes import judge_claims, regime_rows

    spec = parse_spec({"seeds": 3, "train": {"lr": [0.01, 0.1], "steps": 50, "eval_every": 10,
                                            "target_accuracy": None}})

    def rec(arm, lr, seed, losses, accs):
        steps = list(range(0, 60, 10))
        return RunRecord(arm=arm, lr=lr, seed=seed, steps=steps, train_loss=losses, train_eval_loss=losses,
                         train_acc=accs, test_loss=losses, test_acc=accs, diverged_at=None,
                         divergence_reason=None, steps_done=50, steps_to_target=None, wall_s=0.0)

    recs = []
    for s, j in enumerate((0.0, 0.01, -0.01)):
        hi, lo = 0.8 + j, 0.5 + j
        recs += [rec("plain", 0.01, s, [2.0 * (1 + j)] * 6, [lo] * 6),
                 rec("batchnorm", 0.01, s, [1.0 - j] * 6, [hi] * 6),
                 rec("plain", 0.1, s, [1.0 * (1 + j)] * 5 + [2.0 * (1 + j)], [lo] * 6),
                 rec("batchnorm", 0.1, s, [2.0 - j] * 5 + [1.0 - j], [lo] * 5 + [hi])]
    info = DataInfo("classification", 100, 360, (8,), 3, "cpu")
    a = get_analysis("train")
    claims = judge_claims(spec, a, recs, info, a.summarize(spec, recs, info).claims)
    by_lr = {c.lr: c for c in claims}
    assert by_lr[0.01].verdict == "supported" and by_lr[0.1].verdict == "supported"
    assert by_lr[0.01].budgets == {"40%": "supported", "70%": "supported", "100%": "supported"}
    assert by_lr[0.1].budgets["40%"] != "supported"  # the flip with the budget is visible
    lrs, rows = regime_rows(claims)
    assert lrs == [0.01, 0.1] and len(rows) == 1 and set(rows[0]["by_lr"]) == {0.01, 0.1}


# ---------------------------------------------------------------- documents


def test_claims_round_trip_through_json():
    c = finalize([make_claim("C1", "s", 0.1, "bn", "plain",
                             [MetricInput("x", "lower", [0.5, 0.52, 0.49], [1.0, 1.01, 0.99])], CFG)], CFG)[0]
    back = Claim.from_json(json.loads(json.dumps(c.to_json())))
    assert back == c


SCHEMA3_CLAIM = {
    "claim": "C1", "statement": "s", "verdict": "supported", "lr": 0.1, "arm": "batchnorm",
    "baseline": "plain", "rule": "old", "note": "", "leaning": "supported", "evidence": "confirmatory",
    "decided_by": "metrics", "n_seeds": 3, "seeds": [0, 1, 2], "stability": 0.97, "budgets": {},
    "claim_kind": "all", "parts": {}, "part_overrides": {},
    "metrics": [{"name": "final train loss", "better": "lower", "arm_mean": 0.5, "baseline_mean": 1.0,
                 "arm_values": [0.5, 0.5, 0.5], "baseline_values": [1.0, 1.0, 1.0], "rel_diff": -0.5,
                 "p_value": 0.01, "points": "claimed", "n_pairs": 3, "n_dropped": 0, "ci": [-0.52, -0.48],
                 "p_adj": 0.02, "p_t": 0.01, "p_wilcoxon": 0.25, "p_tost": None, "floor": 1e-6,
                 "mean_diff": -0.5, "aggregate": "final", "test": "superiority", "part": ""}],
}


def test_schema_3_documents_load_and_say_their_rule():
    doc = {"schema_version": 3, "command": "train", "bncli_version": "0.1.0", "interrupted": False,
           "spec": {}, "summary": [], "claims": [SCHEMA3_CLAIM], "runs": [], "task": "classification",
           "device": "cpu"}
    r = CommandResult.from_json(doc)
    (c,) = r.claims
    assert c.stability == 0.97 and c.metrics[0].effect == -0.5 and c.metrics[0].p_value == 0.01
    assert "schema 3" in r.verdict_rule and "schema 4" in CommandResult(
        "train", {}, [], [], []).verdict_rule
    assert r.to_json()["schema_version"] == 3


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
    assert doc["schema_version"] == 4


def test_compare_of_an_old_and_a_new_result_says_which_rule_made_each():
    from bncli.compare import compare_claims
    from bncli.render.compare import render_compare

    old = CommandResult.from_json({"schema_version": 3, "command": "train", "bncli_version": "0.1.0",
                                   "interrupted": False, "spec": {}, "summary": [],
                                   "claims": [SCHEMA3_CLAIM], "runs": [], "task": "classification",
                                   "device": "cpu"})
    new_claim = finalize([make_claim("C1", "s", 0.1, "batchnorm", "plain",
                                     [MetricInput("final train loss", "lower", [0.5, 0.52, 0.49],
                                                  [1.0, 1.01, 0.99], 1e-6)], CFG)], CFG)[0]
    new = CommandResult("train", {}, [], [], [new_claim])
    cmp = compare_claims(old, new, "old", "new")
    assert not cmp.same_rule and "schema 3" in cmp.rule_a and "schema 4" in cmp.rule_b
    assert cmp.to_json()["rule_a"] == cmp.rule_a
    assert "verdict rules differ" in str(render_compare(cmp)[0].title)


def test_a_seed_whose_landscape_blew_up_counts_against_its_arm_not_the_claim():
    """8 seeds, one plain seed with a single finite measurement (the rest blew up): it counts
    against plain; the other 7 pairs decide (issue 28, batch_claims at 8 seeds)."""
    spec = parse_spec({"seeds": 8, "arms": ["plain", "batchnorm"], "train": {"lr": 0.1, "steps": 50}})
    recs = []
    for s in range(8):
        plain = [10.0 + s, 11.0, 9.0, 10.5, 9.5] if s != 5 else [math.inf] * 4 + [10.0]
        recs += [_landscape_record("plain", s, plain),
                 _landscape_record("batchnorm", s, [1.0, 1.1 + s / 10, 0.9, 1.0, 1.05])]
    (c,) = finalize(c4_claims(spec, recs), CFG)
    assert c.decided_by == "metrics" and c.verdict == "supported"
    assert c.nonfinite == {"plain": 1} and c.p_against == 1.0
