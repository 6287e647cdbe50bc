"""The normalizations beyond BN (LN, GN, weight norm, ℓp) and claim C9: each forward against a
direct formula, identical initial weights across arms, every analysis finds every normalization
point, scale invariance per norm, and C9's verdict logic on hand-made records."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from bncli.analyses.c9 import (
    c9_claims,
    c9_tables,
    extra_probes,
    verdict_of,
)
from bncli.data import load_data
from bncli.errors import SpecError
from bncli.models import build_model
from bncli.norm_layers import LpNorm
from bncli.norms import arm_width_problem
from bncli.pipeline import run_analysis
from bncli.plan import make_job
from bncli.probes.scale_static import expected_invariance
from bncli.results import RunRecord
from bncli.runner import run_job
from bncli.runner.build import build_arm_model, initial_model
from bncli.spec import ARM_PRESETS, ArmSpec, ModelSpec, parse_spec

# from the registry: each norm's presets that change nothing but the norm (and lp's p), so a new
# norm with a preset is covered without editing this file
ALL_ARMS = [name for name, fields in ARM_PRESETS.items() if set(fields) <= {"norm", "p"}]
NEW_ARMS = [a for a in ALL_ARMS if a not in ("plain", "batchnorm")]
EPS = 1e-5


def _lp_ref(u: torch.Tensor, p: float, mu: torch.Tensor, s: torch.Tensor | None, eps: float) -> torch.Tensor:
    """SCIENCE.md's definition, row by row: c_i = x_i − μ, x̂_i = c_i / ((1/m) Σ_j ‖c_j‖_p / d^{1/p})."""
    c = u - mu
    if s is None:
        d = u.shape[1]
        norms = [float(torch.linalg.vector_norm(c[j], ord=p)) for j in range(u.shape[0])]
        s = torch.tensor(sum(norms) / len(norms) / (1.0 if math.isinf(p) else d ** (1.0 / p)), dtype=u.dtype)
    return c / (s + eps)


def _rows(x: torch.Tensor) -> torch.Tensor:
    return x if x.dim() == 2 else x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


@pytest.mark.parametrize("p", [1.0, 2.0, math.inf])
@pytest.mark.parametrize("shape", [(9, 5), (4, 5, 3, 2)])
def test_lp_forward_matches_the_formula_in_train_and_eval_mode(p, shape):
    torch.manual_seed(0)
    m = LpNorm(5, p, eps=EPS, momentum=0.3).double()
    with torch.no_grad():
        m.weight.copy_(torch.randn(5))
        m.bias.copy_(torch.randn(5))
    x = (torch.randn(*shape) * 3 + 1).double()
    u = _rows(x)
    y = _rows(m(x))
    ref = _lp_ref(u, p, u.mean(0), None, EPS) * m.weight + m.bias
    assert torch.allclose(y, ref, atol=1e-10)
    # running estimates: (1 - momentum) * initial + momentum * batch value
    c = u - u.mean(0)
    d = u.shape[1]
    s = sum(float(torch.linalg.vector_norm(r, ord=p)) for r in c) / c.shape[0] / (1 if math.isinf(p) else d ** (1 / p))
    assert torch.allclose(m.running_mean, 0.3 * u.mean(0))
    assert float(m.running_scale) == pytest.approx(0.7 + 0.3 * s)
    m.eval()
    x2 = torch.randn(*shape).double()
    ref_eval = _lp_ref(_rows(x2), p, m.running_mean, m.running_scale, EPS) * m.weight + m.bias
    assert torch.allclose(_rows(m(x2)), ref_eval, atol=1e-10)
    # one scalar per layer: no unit's variance is fixed, only the per-unit batch mean
    m.train()
    yt = _rows(m(x)).detach()
    assert torch.allclose(yt.mean(0), m.bias.detach(), atol=1e-10)


def test_lp_gradient_is_autograd_correct():
    m = LpNorm(4, 1.0).double()
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,))


def _arm(name: str, **kw) -> ArmSpec:
    return parse_spec({"arms": [name]}).arms[0].model_copy(update=kw)


@pytest.mark.parametrize("conv", [False, True])
def test_layer_and_group_norm_match_the_formula(conv):
    torch.manual_seed(1)
    model = ModelSpec(kind="cnn" if conv else "mlp", hidden=[8], channels=[8], pool=False)
    shape = (1, 4, 4) if conv else (6,)
    x = torch.randn(5, *shape)
    for name, groups in (("layernorm", 1), ("groupnorm", 4)):
        net = build_model(model, _arm(name, groups=4), shape, 3)
        norm = net.block("layer1").norm
        with torch.no_grad():
            norm.weight.copy_(torch.randn(8))
            norm.bias.copy_(torch.randn(8))
        z = net.block("layer1").weight_module(x)
        out = norm(z)
        # per example over each group of units (LN: one group; conv: channels x H x W)
        zg = z.reshape(5, groups, -1)
        ref = ((zg - zg.mean(-1, keepdim=True)) / torch.sqrt(zg.var(-1, unbiased=False, keepdim=True) + EPS))
        ref = ref.reshape(z.shape)
        w = norm.weight.reshape(1, 8, *([1, 1] if conv else []))
        b = norm.bias.reshape(1, 8, *([1, 1] if conv else []))
        assert torch.allclose(out, ref * w + b, atol=1e-5), name


def test_weight_norm_is_torchs_reparametrization():
    net = build_model(ModelSpec(kind="mlp", hidden=[7, 5]), _arm("weightnorm"), (4,), 3)
    fc = net.block("layer1").fc
    g, v = fc.parametrizations.weight.original0, fc.parametrizations.weight.original1
    assert net.block("layer1").weight is v
    assert torch.allclose(fc.weight, g * v / v.norm(dim=1, keepdim=True))
    assert net.weight_param_names()["layer1"] == "layers.layer1.fc.parametrizations.weight.original1"
    assert not any(isinstance(m, torch.nn.LayerNorm) for m in net.modules())  # Block.norm stays Identity


def _spec(kind: str, arms=ALL_ARMS, **over):
    d = {
        "name": "t", "device": "cpu", "threads": 1, "seed": 3,
        "data": {"source": "digits", "shape": "image"} if kind == "cnn"
        else {"source": "synthetic", "n_samples": 120, "n_features": 6, "n_classes": 3},
        "model": {"kind": kind, "hidden": [8, 6], "channels": [4, 4], "activation": "relu"},
        "arms": arms,
        "train": {"lr": 0.1, "batch_size": 16, "steps": 2, "eval_every": 2},
        "analysis": {
            "ics": {"every": 1, "probe_size": 16, "tracked_units": 2},
            "lipschitz": {"every": 1, "eta_points": 2},
            "scale": {"every": 1, "probe_size": 16, "alphas": [0.1, 10.0]},
            "saturation": {"every": 1, "probe_size": 16},
        },
    }
    d.update(over)
    return parse_spec(d)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_every_arm_starts_from_the_same_weights(kind):
    spec = _spec(kind)
    data = load_data(spec.data)
    init = initial_model(spec, data, 3)
    ref = dict(init.named_parameters())
    for arm in spec.arms:
        net = build_arm_model(spec, arm, init, data, 3)
        for name, blk in net.layers.items():
            w = blk.weight_module.weight  # the effective W (weight norm: g·v/‖v‖)
            assert torch.allclose(w, ref[init.weight_param_names()[name]], rtol=1e-6, atol=1e-7), arm.name
            if blk.weight_module.bias is not None:
                assert torch.equal(blk.weight_module.bias, dict(init.named_parameters())[
                    init.weight_param_names()[name].replace("weight", "bias")])
            if arm.norm == "weight":  # v = W and g = ‖W‖ per output unit
                assert torch.equal(blk.weight, ref[init.weight_param_names()[name]])
        assert torch.equal(net.head.weight, init.head.weight)


def test_groups_must_divide_every_width():
    gn = {"name": "gn", "norm": "group", "groups": 4}
    # the spec refuses it (validate catches it, before any training), naming the arm's field
    with pytest.raises(SpecError, match=r"arms.0.groups: 4 does not divide the layer's 6 units \(layer2\)"):
        parse_spec({"model": {"kind": "mlp", "hidden": [8, 6]}, "arms": [gn]})
    with pytest.raises(SpecError, match=r"arms.1.groups: .*one unit per group"):
        parse_spec({"model": {"kind": "mlp", "hidden": [6]}, "arms": ["plain", {**gn, "groups": 6}]})
    # and a model built directly says which arm
    ok = parse_spec({"model": {"kind": "mlp", "hidden": [8, 6]}, "arms": ["plain"]})
    with pytest.raises(SpecError, match=r"arms \(gn\).groups: 4 does not divide"):
        build_model(ok.model, _arm("groupnorm", groups=4).model_copy(update={"name": "gn"}), (5,), 3)
    # the same check for a whole spec, before any training (layer named)
    assert arm_width_problem(gn_arm := _arm("groupnorm", groups=4), [8, 6], False) == (
        "4 does not divide the layer's 6 units (layer2)")
    assert arm_width_problem(gn_arm, [16, 32], True) is None
    assert arm_width_problem(_arm("layernorm"), [5], False) is None


def test_presets_and_p_values():
    spec = parse_spec({"arms": NEW_ARMS + [{"name": "lp", "norm": "lp", "p": ".inf"}]})
    assert [a.norm for a in spec.arms] == ["layer", "group", "weight", "lp", "lp", "lp", "lp"]
    assert [a.p for a in spec.arms[3:]] == [1, 2, "inf", "inf"]
    assert math.isinf(spec.arms[5].p_value)
    with pytest.raises(SpecError, match="p"):
        parse_spec({"arms": [{"name": "x", "norm": "lp", "p": 3}]})
    assert not spec.arm("weightnorm").has_affine and spec.arm("layernorm").has_affine


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_every_analysis_finds_every_normalization_point(kind):
    spec = _spec(kind)
    layers = ["layer1", "layer2"]
    for command, probe, key in (("measure-ics", "ics_dist", "per_layer"), ("measure-ics", "ics_grad", "per_layer"),
                                ("scale-check", "scale", "series"), ("saturation", "saturation", "per_layer")):
        res = run_analysis(spec, command)
        assert {r.arm for r in res.runs} == set(ALL_ARMS)
        for r in res.runs:
            assert sorted(r.probes[probe][key]) == layers, (command, r.arm)
    res = run_analysis(spec, "lipschitz")
    for r in res.runs:
        assert len(r.probes["landscape"]["series"]) == 2
        if r.arm == "batchnorm":
            assert sorted(r.probes["bn_jacobian"]["series"][0]["layers"]) == layers
    assert "not applicable to layernorm (LN), groupnorm (GN), weightnorm (WN)" in res.tables["c5_note"]
    assert [c.arm for c in res.claims if c.claim == "C5"] == ["batchnorm"]


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("name", ALL_ARMS)
def test_scale_invariance_per_norm(name, bias):
    """Output unchanged when the weight feeding the norm is scaled (weight norm: v), exactly where
    expected_invariance says so; LN/GN with a bias and plain nets move."""
    torch.manual_seed(0)
    arm = _arm(name, eps=1e-12)
    net = build_model(ModelSpec(kind="mlp", hidden=[8, 6], bias=bias), arm, (5,), 3).double()
    if bias:
        with torch.no_grad():
            for blk in net.layers.values():
                blk.fc.bias.normal_()
    net.train()
    x = torch.randn(20, 5, dtype=torch.float64)
    out = net(x).detach()
    blk = net.block("layer1")
    expected, why = expected_invariance(blk, bias)
    with torch.no_grad():
        blk.weight.mul_(3.7)
    moved = float((net(x).detach() - out).abs().max() / out.abs().max())
    if expected:
        assert moved < 1e-9, (name, why, moved)
    else:
        assert moved > 1e-3, (name, why, moved)
    assert expected == (name != "plain" and (not bias or name not in ("layernorm", "groupnorm")))


# --------------------------------------------------------------------------- C9


def _rec(arm, seed, loss, w1, lv, diverged=None):
    """A hand-made run: final loss `loss`, C2 shift w1 (and d_pct = w1), C4 metrics = lv."""
    site = {"w1": [w1, w1], "d_pct": [w1, w1], "d_mean": [0.0], "d_var": [0.0], "mean": [0.0], "var": [1.0],
            "percentiles": {}}
    step = {"loss_variation": lv, "grad_pred_max": lv, "grad_pred_mean": lv, "beta": lv, "grad_norm": 1.0}
    return RunRecord(arm=arm, lr=0.1, seed=seed, steps=[0, 10], train_loss=[1.0, loss],
                     train_eval_loss=[1.0, loss], train_acc=[None, None], test_loss=[1.0, loss],
                     test_acc=[None, None], diverged_at=diverged, divergence_reason=None, steps_done=10,
                     steps_to_target=None, wall_s=0.0,
                     probes={"ics_dist": {"layers": ["layer1"], "per_layer": {"layer1": {"preact": site}}},
                             "landscape": {"series": [step, dict(step, step=1)]}})


def _runs(values: dict[str, tuple[float, float, float]]) -> list[RunRecord]:
    # seed noise that differs between arms (paired relative differences then vary by seed)
    jitter = (0.0, 0.01, -0.01)
    return [_rec(arm, s, loss * (1 + j * (k + 1)), w1 * (1 + j * (k + 1)), lv * (1 + j * (k + 1)))
            for k, (arm, (loss, w1, lv)) in enumerate(values.items()) for s, j in enumerate(jitter)]


C9_SPEC = parse_spec({"seeds": 3, "train": {"lr": 0.1}, "arms": ["plain", "batchnorm", "l1norm", "layernorm"]})


@pytest.mark.parametrize("lp, verdict, parts", [
    ((0.21, 0.5, 1.0), "supported", "(a) holds"),            # ≈ BN, better than plain; shifts more; smoother
    ((0.6, 0.5, 1.0), "refuted", "(a) fails"),               # trains worse than BN and plain, smoother
    ((0.21, 0.5, 20.0), "refuted", "(c) fails"),             # rougher than plain
    ((0.21, 0.05, 1.0), "inconclusive", "(b) fails"),        # shifts less than BN
    ((0.21, 0.5, 9.0), "inconclusive", "(c) undecided"),     # within the margin of plain
])
def test_c9_verdict_logic(lp, verdict, parts):
    runs = _runs({"plain": (0.5, 0.3, 10.0), "batchnorm": (0.2, 0.1, 2.0), "l1norm": lp})
    # layernorm: the same numbers as l1norm (reported the same way, not judged)
    runs += [dataclasses.replace(r, arm="layernorm") for r in runs if r.arm == "l1norm"]
    claims = c9_claims(C9_SPEC, runs)
    assert [(c.claim, c.arm, c.baseline) for c in claims] == [("C9", "l1norm", "plain & batchnorm")]
    assert claims[0].verdict == verdict and parts in claims[0].note
    names = [m.name for m in claims[0].metrics]
    assert names[0] == "(a) final train loss vs batchnorm" and any(n.startswith("(b) W1") for n in names)
    assert any(n.startswith("(c) effective β") for n in names)
    reported = c9_tables(C9_SPEC, runs)["c9_reported"]  # LN: the same comparison, not judged
    assert [(r["arm"], r["would_be"]) for r in reported] == [("layernorm", verdict)]


def test_c9_comparable_to_bn_means_within_the_margin_not_just_insignificant():
    """A gap to BN that the non-inferiority test cannot bound within the margin (noisy seeds) is not
    'comparable': (a) undecided."""
    runs = _runs({"plain": (0.5, 0.3, 10.0), "batchnorm": (0.2, 0.1, 2.0), "l1norm": (0.21, 0.5, 1.0)})
    noisy = [RunRecord(**{**r.__dict__, "train_loss": [1.0, (0.1, 0.9, 0.4)[r.seed]],
                          "test_loss": [1.0, (0.1, 0.9, 0.4)[r.seed]]}) if r.arm == "l1norm" else r
             for r in runs]
    (claim,) = c9_claims(C9_SPEC, noisy)
    assert "no worse than batchnorm beyond the margin, non-inferiority: undecided" in claim.note
    assert claim.verdict == "inconclusive"


def test_c9_needs_plain_and_batchnorm_and_both_probes():
    runs = _runs({"plain": (0.5, 0.3, 10.0), "batchnorm": (0.2, 0.1, 2.0), "l1norm": (0.21, 0.5, 1.0)})
    no_bn = parse_spec({"arms": ["plain", "l1norm"]})
    assert c9_claims(no_bn, [r for r in runs if r.arm != "batchnorm"]) == []
    stripped = [RunRecord(**{**r.__dict__, "probes": {"ics_dist": r.probes["ics_dist"]}}) for r in runs]
    assert c9_claims(C9_SPEC, stripped) == []
    assert "lack" in c9_tables(C9_SPEC, stripped)["c9_note"]


def test_c9_rule_table():
    h, f, u = "holds", "fails", "undecided"
    assert verdict_of(h, h, h) == "supported"
    assert verdict_of(f, h, h) == verdict_of(f, f, h) == verdict_of(h, h, f) == verdict_of(u, u, f) == "refuted"
    assert verdict_of(h, f, h) == verdict_of(u, h, h) == verdict_of(f, h, u) == "inconclusive"


def test_c9_extra_probes_ride_along_only_where_c9_applies():
    spec = _spec("mlp", arms=["plain", "batchnorm", "l2norm", "weightnorm", "noisy_batchnorm"])
    assert extra_probes(spec, "l2norm", "ics") == ("landscape",)
    assert extra_probes(spec, "plain", "lipschitz") == ("ics_dist",)
    assert extra_probes(spec, "weightnorm", "lipschitz") == ()
    assert extra_probes(spec, "l2norm", "scale") == ()
    bn_only = _spec("mlp", arms=["plain", "batchnorm"])
    assert extra_probes(bn_only, "batchnorm", "ics") == ()
    # the plan names the probes on the job, keeps their settings, and the job runs them
    job = make_job(spec, "ics", "l2norm", 0.1, 3)
    assert job.probes == ("ics_dist", "ics_grad", "landscape")
    assert set(json.loads(job.spec_json)["analysis"]) == {"ics", "lipschitz"}
    rec = run_job(job)
    assert list(rec.probes) == ["ics_dist", "ics_grad", "landscape"]
    # weight norm is not compared by C9: no extra probe, no extra section
    wn = make_job(spec, "ics", "weightnorm", 0.1, 3)
    assert wn.probes == ("ics_dist", "ics_grad") and set(json.loads(wn.spec_json)["analysis"]) == {"ics"}
    # the probes are part of the job's key
    assert dataclasses.replace(job, probes=job.probes[:2]).key != job.key


def test_the_plan_gives_c9_arms_their_companion_section():
    from bncli.plan import plan

    spec = _spec("mlp", arms=["plain", "batchnorm", "l1norm", "weightnorm"])
    carried = {j.arm: sorted(json.loads(j.spec_json)["analysis"]) for j in plan(spec, "landscape")}
    assert carried == {"plain": ["ics", "lipschitz"], "batchnorm": ["ics", "lipschitz"],
                       "l1norm": ["ics", "lipschitz"], "weightnorm": ["lipschitz"]}
    bn_only = _spec("mlp", arms=["plain", "batchnorm"])
    assert all(sorted(json.loads(j.spec_json)["analysis"]) == ["ics"] for j in plan(bn_only, "ics"))


@pytest.mark.parametrize("p", [1.0, 2.0, math.inf])
def test_lp_unit_scope_divides_each_unit_by_its_own_lp_magnitude(p):
    """lp_scope: unit (Santurkar §3.3 read per unit, Hoffer et al.'s L1 BN): s_k over the batch."""
    torch.manual_seed(0)
    x = torch.randn(16, 5, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.0, 0.5, 10.0], dtype=torch.float64)
    m = LpNorm(5, p, eps=0.0, scope="unit").double().train()
    c = x - x.mean(0)
    s = c.abs().amax(0) if math.isinf(p) else c.abs().pow(p).mean(0).pow(1 / p)
    torch.testing.assert_close(m(x), c / s)
    assert m.running_scale.shape == (5,)
    if p == 2.0:  # ℓ2 per unit is BN (biased batch variance)
        bn = torch.nn.BatchNorm1d(5, eps=1e-12, affine=False).double().train()
        torch.testing.assert_close(m(x), bn(x))


def test_lp_scope_presets_and_refused_elsewhere():
    spec = parse_spec({"arms": ["plain", "l1norm_unit", "l2norm_unit", "linfnorm_unit", "l1norm"]})
    assert [a.lp_scope for a in spec.arms[1:]] == ["unit", "unit", "unit", "layer"]
    with pytest.raises(SpecError):
        parse_spec({"arms": [{"name": "bn", "norm": "batch", "lp_scope": "unit"}]})
