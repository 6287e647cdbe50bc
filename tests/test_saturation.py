"""Tests for `bncli saturation` (C7, C8): statistics vs hand computations, no side effects, CLI."""

from __future__ import annotations

import copy
import json
import math
import statistics

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from bncli.analyses.saturation import ablation_pairs, init_gradients, saturation_claims
from bncli.cli import app
from bncli.data import batch_indices, load_data
from bncli.models import build_model
from bncli.probes.saturation import SaturationProbe, identity_recovery, preact_stats
from bncli.results import RunRecord
from bncli.runner.build import build_arm_model, initial_model
from bncli.spec import parse_spec
from bncli.train import train_run

runner = CliRunner()


# --------------------------------------------------------------------------- statistics


def _sig_d(x: float) -> float:
    s = 1 / (1 + math.exp(-x))
    return s * (1 - s)


def test_preact_stats_hand_case_mlp():
    rows = [[-3.0, 0.5, 0.0], [1.0, -1.0, -0.2], [5.0, -6.0, -0.1]]
    z = torch.tensor(rows)
    flat = [v for r in rows for v in r]
    relu = preact_stats(z, "relu", 0.05)
    assert relu["linear"].item() == pytest.approx(sum(abs(v) <= 2 for v in flat) / 9)  # 6/9
    assert relu["active"].item() == pytest.approx(3 / 9)  # 0.5, 1 and 5
    assert relu["dead"].item() == pytest.approx(1 / 3)  # only the last column never fires
    sig = preact_stats(z, "sigmoid", 0.05)
    expected = sum(_sig_d(v) < 0.05 * 0.25 for v in flat) / 9
    assert expected == pytest.approx(2 / 9)  # |x| = 5 and 6 only
    assert sig["saturated"].item() == pytest.approx(expected)
    tanh = preact_stats(z, "tanh", 0.05)
    exp_t = sum(1 - math.tanh(v) ** 2 < 0.05 for v in flat) / 9
    assert exp_t == pytest.approx(3 / 9)  # |x| > 2.18: -3, 5, -6
    assert tanh["saturated"].item() == pytest.approx(exp_t)
    assert preact_stats(z, "relu", 0.05, bound=0.4)["linear"].item() == pytest.approx(3 / 9)


def test_preact_stats_conv_counts_positions_as_examples():
    torch.manual_seed(0)
    z = torch.randn(2, 3, 2, 2)
    z[:, 1] = -z[:, 1].abs()  # channel 1 never fires anywhere
    dead = 0
    for c in range(3):
        if all(z[n, c, i, j] <= 0 for n in range(2) for i in range(2) for j in range(2)):
            dead += 1
    stats = preact_stats(z, "relu", 0.05)
    assert stats["dead"].item() == pytest.approx(dead / 3)
    assert stats["active"].item() == pytest.approx(float((z > 0).sum()) / z.numel())


def test_identity_recovery_loops_and_closed_form():
    torch.manual_seed(1)
    x = torch.randn(7, 4) * 3 + 1
    gamma, beta = torch.rand(4) + 0.5, torch.randn(4)
    eps = 1e-5
    mu = [statistics.fmean(x[:, j].tolist()) for j in range(4)]
    sd = [math.sqrt(statistics.pvariance(x[:, j].tolist()) + eps) for j in range(4)]
    num = math.sqrt(
        sum((gamma[j].item() - sd[j]) ** 2 + (beta[j].item() - mu[j]) ** 2 for j in range(4))
    )
    den = math.sqrt(sum(s * s + m * m for s, m in zip(sd, mu, strict=True)))
    got = identity_recovery(x, gamma, beta, eps)
    assert got["id_dist"].item() == pytest.approx(num / den, rel=1e-5)
    assert got["beta_pos"].item() == pytest.approx(sum(b > 0 for b in beta.tolist()) / 4)
    assert got["beta_mean"].item() == pytest.approx(statistics.fmean(beta.tolist()), abs=1e-6)
    # closed form: at (γ, β) = (σ, μ) BN is the identity and the distance is 0
    at = identity_recovery(x, torch.tensor(sd), torch.tensor(mu), eps)
    assert at["id_dist"].item() == pytest.approx(0.0, abs=1e-5)


# --------------------------------------------------------------------------- the probe


def _setup(tiny_spec_dict_factory, arms, activation="sigmoid", steps=11):
    spec = parse_spec(
        tiny_spec_dict_factory(
            arms=arms,
            model={"activation": activation, "hidden": [6, 5]},
            train={"steps": steps, "batch_size": 16, "eval_every": 5},
            analysis={"saturation": {"every": 5, "probe_size": 20}},
        )
    )
    data = load_data(spec.data)
    init = initial_model(spec, data, spec.seed)
    return spec, data, init


def test_probe_step0_matches_manual_forward_and_autograd(tiny_spec_dict_factory):
    spec, data, init = _setup(tiny_spec_dict_factory, ["batchnorm"])
    arm = spec.arms[0]
    model = build_arm_model(spec, arm, init, data, spec.seed)
    ref = copy.deepcopy(model)
    x_probe = data.x_train[:20]
    probe = SaturationProbe(5, x_probe, "sigmoid", 0.05, 2.0)
    train_run(model, data, arm, spec.train, 0.1, spec.seed, [probe])
    res = probe.result()
    assert res["steps"] == [0, 5, 10]
    # slow reference: explicit batch statistics, layer by layer, on the initial weights
    h = x_probe
    for name in ref.point_names:
        blk = ref.block(name)
        z = h @ blk.fc.weight.T + blk.fc.bias
        mu, var = z.mean(0), z.var(0, unbiased=False)
        sigma = torch.sqrt(var + blk.norm.eps)
        zn = (z - mu) / sigma * blk.norm.weight + blk.norm.bias
        vals = zn.flatten().tolist()
        got = res["per_layer"][name]
        assert got["linear"][0] == pytest.approx(sum(abs(v) <= 2 for v in vals) / len(vals))
        assert got["saturated"][0] == pytest.approx(
            sum(_sig_d(v) < 0.0125 for v in vals) / len(vals)
        )
        dist = math.sqrt(((1 - sigma) ** 2).sum().item() + (mu**2).sum().item()) / math.sqrt(
            (sigma**2).sum().item() + (mu**2).sum().item()
        )
        assert got["id_dist"][0] == pytest.approx(dist, rel=1e-4)
        h = torch.sigmoid(zn)
    # gradient norms at step 0: plain autograd on a deep copy and the loop's first batch
    idx = next(batch_indices(data.n_train, spec.train.batch_size, spec.seed, data.x_train.device))
    ref.train()
    loss = F.cross_entropy(ref(data.x_train[idx]), data.y_train[idx])
    ws = [ref.block(n).fc.weight for n in ref.point_names]
    grads = torch.autograd.grad(loss, ws)
    norms = [g.norm().item() for g in grads]
    for n, want in zip(ref.point_names, norms, strict=True):
        assert res["per_layer"][n]["grad_norm"][0] == pytest.approx(want, rel=1e-5)
    assert res["grad_ratio"][0] == pytest.approx(norms[0] / norms[-1], rel=1e-5)


@pytest.mark.parametrize(
    "arm_name", ["plain", "batchnorm", "noisy_batchnorm", "batchnorm_noaffine"]
)
def test_measuring_changes_nothing_and_removes_hooks(tiny_spec_dict_factory, arm_name):
    spec, data, init = _setup(tiny_spec_dict_factory, [arm_name], activation="relu", steps=12)
    arm = spec.arms[0]
    a = build_arm_model(spec, arm, init, data, spec.seed)
    b = build_arm_model(spec, arm, init, data, spec.seed)
    probe = SaturationProbe(3, data.x_train[:20], "relu", 0.05, 2.0)
    rng = torch.get_rng_state()
    train_run(a, data, arm, spec.train, 0.1, spec.seed, [probe])
    assert torch.equal(torch.get_rng_state(), rng)
    train_run(b, data, arm, spec.train, 0.1, spec.seed, [])
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert len(probe.result()["steps"]) == 5  # steps 0, 3, 6, 9 and the last (11)
    for m in a.modules():
        assert not m._forward_hooks and not m._forward_pre_hooks, type(m).__name__


def test_noaffine_arm_has_no_gamma_beta(tiny_spec_dict_factory):
    spec, data, init = _setup(tiny_spec_dict_factory, ["batchnorm", "batchnorm_noaffine"], "relu")
    model = build_model(spec.model, spec.arm("batchnorm_noaffine"), data.input_shape, data.n_out)
    assert all(
        model.block(n).norm.weight is None and model.block(n).norm.bias is None
        for n in model.point_names
    )
    assert not [k for k in dict(model.named_parameters()) if ".norm." in k]
    probe = SaturationProbe(5, data.x_train[:20], "relu", 0.05, 2.0)
    arm = spec.arm("batchnorm_noaffine")
    train_run(
        build_arm_model(spec, arm, init, data, spec.seed),
        data,
        arm,
        spec.train,
        0.1,
        spec.seed,
        [probe],
    )
    res = probe.result()
    assert res["has_bn"] and not res["affine"]
    assert all("beta_mean" not in d and "id_dist" not in d for d in res["per_layer"].values())


# --------------------------------------------------------------------------- summaries and claims


def _record(
    arm: str, sat: float, linear: float, ratio: float, loss: float, acc: float
) -> RunRecord:
    per_layer = {
        n: {"saturated": [sat] * 3, "linear": [linear] * 3, "grad_norm": [1.0, 2.0, 3.0]}
        for n in ("layer1", "layer2")
    }
    probe = {
        "steps": [0, 5, 10],
        "layers": ["layer1", "layer2"],
        "per_layer": per_layer,
        "grad_ratio": [ratio] * 3,
    }
    return RunRecord(
        arm=arm,
        lr=0.1,
        seed=0,
        steps=[0, 10],
        train_loss=[2.0, loss],
        train_eval_loss=[2.0, loss],
        train_acc=[0.1, acc],
        test_loss=[2.0, loss],
        test_acc=[0.1, acc],
        diverged_at=None,
        divergence_reason=None,
        steps_done=10,
        steps_to_target=None,
        wall_s=0.0,
        probes={"saturation": probe},
    )


@pytest.mark.parametrize("bn_better", [True, False])
def test_c7_verdict_direction(tiny_spec_dict_factory, bn_better):
    spec = parse_spec(tiny_spec_dict_factory(model={"activation": "sigmoid"}))
    good, bad = (
        _record("batchnorm", 0.01, 0.95, 1.0, 0.1, 0.9),
        _record("plain", 0.5, 0.4, 0.01, 1.0, 0.5),
    )
    if not bn_better:
        good, bad = (
            _record("batchnorm", 0.5, 0.4, 0.01, 1.0, 0.5),
            _record("plain", 0.01, 0.95, 1.0, 0.1, 0.9),
        )
    claims = saturation_claims(spec, [good, bad], classification=True)
    assert [c.claim for c in claims] == ["C7"]
    assert claims[0].leaning == ("supported" if bn_better else "refuted")  # one seed: exploratory
    assert claims[0].verdict == "exploratory"
    assert claims[0].lr == 0.1 and len(claims[0].metrics) == 3


def test_init_gradient_growth_is_geometric_mean():
    r = _record("plain", 0.0, 1.0, 8.0, 1.0, 0.5)
    r.probes["saturation"]["layers"] = ["layer1", "layer2", "layer3", "layer4"]
    r.probes["saturation"]["per_layer"].update(
        {"layer3": {"grad_norm": [1.0]}, "layer4": {"grad_norm": [1.0]}}
    )
    (row,) = init_gradients([r])
    assert row["growth_per_layer"] == pytest.approx(2.0)  # 8 ** (1/3)


# --------------------------------------------------------------------------- CLI


def test_cli_json_claims_and_out(write_spec, tiny_spec_dict_factory, tmp_path):
    p = write_spec(tiny_spec_dict_factory(model={"hidden": [8, 6]}, train={"steps": 20}))
    out = tmp_path / "sat"
    result = runner.invoke(
        app,
        [
            "saturation",
            str(p),
            "--arms",
            "plain,batchnorm,batchnorm_noaffine",
            "--every",
            "10",
            "--json",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["command"] == "saturation"
    assert "training mode" in doc["mode"]
    kinds = sorted((c["claim"], c["arm"], c["baseline"]) for c in doc["claims"])
    assert kinds == [
        ("C7", "batchnorm", "plain"),
        ("C7", "batchnorm_noaffine", "plain"),
        ("C8", "batchnorm", "batchnorm_noaffine"),
    ]
    for c in doc["claims"]:
        assert c["lr"] == 0.1 and c["verdict"] in ("supported", "refuted", "inconclusive", "exploratory")
        assert c["metrics"] and all("arm_mean" in m for m in c["metrics"])
    run = next(r for r in doc["runs"] if r["arm"] == "batchnorm")
    assert run["probes"]["saturation"]["steps"] == [0, 10, 19]
    assert {"active", "dead", "beta_mean", "id_dist"} <= set(
        run["probes"]["saturation"]["per_layer"]["layer1"]
    )
    pngs = sorted(q.name for q in (out / "plots").glob("*.png"))
    assert pngs == ["gamma_beta.png", "saturation.png"]


def test_cli_tables(write_spec, tiny_spec_dict_factory):
    p = write_spec(tiny_spec_dict_factory(train={"steps": 12}))
    result = runner.invoke(app, ["saturation", str(p), "--every", "6", "--quiet", "--detail"])
    assert result.exit_code == 0, result.output
    for text in (
        "C7: pre-activations per layer, lr = 0.1",
        "% dead units",
        "gradients by depth",
        "C8: γ and β per BN layer",
        "no C8 verdict",
    ):
        assert text in result.stdout


@pytest.mark.parametrize(
    "args,field",
    [
        (["--threshold", "1.5"], "analysis.saturation.threshold"),
        (["--every", "0"], "analysis.saturation.every"),
    ],
)
def test_cli_bad_options(write_spec, tiny_spec_dict_factory, args, field):
    p = write_spec(tiny_spec_dict_factory())
    result = runner.invoke(app, ["saturation", str(p), *args])
    assert result.exit_code == 2
    assert field in result.output and len(result.output.strip().splitlines()) == 1


def test_help_states_rule():
    result = runner.invoke(app, ["saturation", "--help"])
    assert result.exit_code == 0
    assert "Verdict rule" in result.stdout and "--threshold" in result.stdout


def test_ablation_pairs_match_kind_and_position(tiny_spec_dict_factory):
    spec = parse_spec(tiny_spec_dict_factory(
        arms=["plain", "batchnorm", "batchnorm_post", "batchnorm_noaffine",
              {"name": "post_noaffine", "kind": "batchnorm", "position": "post", "affine": False}]))
    assert ablation_pairs(spec) == [("batchnorm", "batchnorm_noaffine"),
                                    ("batchnorm_post", "post_noaffine")]


def test_diverged_baseline_is_noted(tiny_spec_dict_factory):
    import dataclasses

    spec = parse_spec(tiny_spec_dict_factory(model={"activation": "relu"}))
    plain = dataclasses.replace(_record("plain", 0.0, 1.0, 0.1, 1.0, 0.5), diverged_at=3)
    (claim,) = saturation_claims(spec, [_record("batchnorm", 0.0, 1.0, 1.0, 0.1, 0.9), plain], True)
    assert "plain at step 3" in claim.note


# --------------------------------------------------------------------------- review fixes


def _c7(spec, bn: RunRecord, plain: RunRecord) -> dict:
    (claim,) = saturation_claims(spec, [bn, plain], classification=True)
    return {m.name: m for m in claim.metrics}


def test_tiny_fraction_differences_are_neither(tiny_spec_dict_factory):
    # 0.054% against 0% saturated is +100% relative: within the resolution f it points neither way
    spec = parse_spec(tiny_spec_dict_factory(model={"activation": "sigmoid"}))
    got = _c7(spec, _record("batchnorm", 0.00054, 0.9, 1.0, 0.1, 0.9),
              _record("plain", 0.0, 0.9, 1.0, 1.0, 0.5))
    sat = got["saturated fraction of pre-activations"]
    # the effect is (a + f)/(b + f) − 1, and within the spread the resolution allows: neither
    assert sat.effect == pytest.approx(0.00054 / sat.floor) and sat.points == "neither"
    # a real difference still counts
    got = _c7(spec, _record("batchnorm", 0.001, 0.9, 1.0, 0.1, 0.9),
              _record("plain", 0.2, 0.9, 1.0, 1.0, 0.5))
    assert got["saturated fraction of pre-activations"].points == "claimed"


def test_c7_judges_the_fraction_outside_the_bound(tiny_spec_dict_factory):
    # inside: 99.5% vs 95% (+4.7%, within the 10% margin); outside: 0.5% vs 5% (-90%)
    spec = parse_spec(tiny_spec_dict_factory(model={"activation": "sigmoid"}))
    got = _c7(spec, _record("batchnorm", 0.0, 0.995, 1.0, 0.1, 0.9),
              _record("plain", 0.0, 0.95, 1.0, 1.0, 0.5))
    out = got["fraction of pre-activations with |x| > bound"]
    assert out.better == "lower" and out.points == "claimed"
    assert out.arm_mean == pytest.approx(0.005) and out.baseline_mean == pytest.approx(0.05)


def test_c8_judges_the_fraction_outside_the_bound(tiny_spec_dict_factory):
    spec = parse_spec(tiny_spec_dict_factory(model={"activation": "tanh"},
                                             arms=["batchnorm", "batchnorm_noaffine"]))
    recs = [_record("batchnorm", 0.0, 0.9, 1.0, 0.1, 0.9),
            _record("batchnorm_noaffine", 0.0, 0.99, 1.0, 0.1, 0.9)]
    (c8,) = saturation_claims(spec, recs, classification=True)
    m = c8.metrics[-1]
    assert "|x| > bound" in m.name and m.better == "higher" and m.points == "claimed"
    assert m.arm_mean == pytest.approx(0.1) and m.baseline_mean == pytest.approx(0.01)


def test_phase_rows_use_each_seeds_own_end(tiny_spec_dict_factory):
    import dataclasses

    from bncli.analyses.saturation import phase_rows

    spec = parse_spec(tiny_spec_dict_factory(model={"activation": "sigmoid"}, seeds=2))
    long = _record("plain", 0.0, 0.9, 1.0, 1.0, 0.5)
    p = long.probes["saturation"]
    p["steps"] = [0, 10, 20, 30, 40]
    for d in p["per_layer"].values():
        d.update(saturated=[0.0, 0.1, 0.2, 0.3, 0.4], linear=[0.9] * 5, grad_norm=[1.0] * 5)
    p["grad_ratio"] = [1.0, 2.0, 3.0, 4.0, 5.0]
    short = dataclasses.replace(_record("plain", 0.0, 0.9, 1.0, 1.0, 0.5), seed=1, diverged_at=11)
    q = short.probes["saturation"]
    q["steps"] = [0, 10]
    for d in q["per_layer"].values():
        d.update(saturated=[0.0, 0.9], linear=[0.9] * 2, grad_norm=[1.0] * 2)
    q["grad_ratio"] = [1.0, 7.0]
    rows = {(r["layer"], r["metric"]): r for r in phase_rows(spec, [long, short])}
    sat = rows[("layer1", "saturated")]
    assert sat["phases"] == ["start", "middle", "end"]
    # end: 0.4 (step 40) from the long seed, 0.9 (step 10) from the one that diverged
    assert sat["values"] == pytest.approx([0.0, (0.2 + 0.9) / 2, (0.4 + 0.9) / 2])
    assert sat["labels"] == ["start (0)", "middle (10–20)", "end (10–40)"]
    assert rows[("first/last", "grad_ratio")]["values"][-1] == pytest.approx(6.0)
