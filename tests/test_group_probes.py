"""Group probes (bncli.probes.group): a fused group's due members measured at once on the stacked
model give each member's per-member record — to 1e-10 in float64 (its own form on its own Net) —
for BN (affine or not), plain and ℓp arms, with diverged members masked; the batched pieces equal
the per-unit functions; and measuring changes nothing (weights, buffers, RNG)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from test_fused import _compare, _data, _worst, float64

from bncli.plan import plan
from bncli.probes import jacobian
from bncli.probes.ics import DistributionProbe
from bncli.probes.ics_grad import GradientIcsProbe
from bncli.probes.jacobian import BnJacobianProbe
from bncli.probes.landscape import LandscapeProbe
from bncli.runner.base import group_jobs
from bncli.runner.fused import FusedRunner, train_fused
from bncli.runtime import precision
from bncli.spec import Spec

ARMS = ["plain", "batchnorm", {"name": "bn_noaffine", "norm": "batch", "affine": False},
        "l1norm", "linfnorm_unit"]


def _spec(analysis: str, arms: list, **train) -> Spec:
    settings = {"lipschitz": {"every": 4, "jacobian_units": 3, "jacobian_rows": 7},
                "ics": {"every": 4}}
    doc = {"seeds": 2, "threads": 1, "device": "cpu",
           "data": {"source": "synthetic", "n_samples": 200, "n_features": 6, "n_classes": 3},
           "model": {"hidden": [8, 8, 8], "activation": "tanh"},
           "train": {"lr": [0.3, 1.0], "steps": 9, "eval_every": 3, "batch_size": 16,
                     "eval_train_examples": 100, **train},
           "arms": arms, "analysis": {analysis: settings[analysis]}}
    return Spec.model_validate(doc)


def _group_vs_member(spec: Spec, analysis: str, monkeypatch):
    spec = float64(spec)
    data = _data(spec)
    with precision(spec.precision):
        return _group_vs_member_in(spec, data, analysis, monkeypatch)


def _group_vs_member_in(spec: Spec, data, analysis: str, monkeypatch):
    groups = group_jobs(plan(spec, analysis), FusedRunner())
    grouped, member = {}, {}
    for g in groups:
        with monkeypatch.context() as mp:  # the group forms must not fall back to the members' Nets
            for probe_cls in PER_MEMBER:
                mp.setattr(probe_cls, "before_update", _refuse)
                mp.setattr(probe_cls, "after_update", _refuse, raising=False)
            for r in train_fused(g, data, group_probes=True):
                grouped[(r.arm, r.lr, r.seed)] = r
        for r in train_fused(g, data, group_probes=False):  # _compare's "single" side
            member[(r.arm, r.lr, r.seed)] = replace(r, numerics="single")
    return grouped, member


def _refuse(*args, **kwargs):
    raise AssertionError("a per-member form ran in a group")


PER_MEMBER = [BnJacobianProbe, LandscapeProbe, GradientIcsProbe, DistributionProbe]


@pytest.mark.parametrize("analysis", ["lipschitz", "ics"])
def test_group_forms_equal_the_per_member_forms_in_float64(analysis, monkeypatch):
    grouped, member = _group_vs_member(_spec(analysis, ARMS), analysis, monkeypatch)
    worst, where = _compare(grouped, member)
    assert worst < 1e-10, where
    if analysis == "lipschitz":
        bn = grouped[("batchnorm", 0.3, 0)].probes["bn_jacobian"]["series"]
        assert len(bn) == 3 and set(bn[0]["layers"]) == {"layer1", "layer2", "layer3"}
    else:
        assert grouped[("batchnorm", 0.3, 0)].probes["ics_grad"]["steps"] == [0, 4, 8]


def test_a_diverged_member_is_masked_not_measured(monkeypatch):
    spec = _spec("lipschitz", ["batchnorm"], lr=[0.3, 1e6])
    grouped, member = _group_vs_member(spec, "lipschitz", monkeypatch)
    assert any(r.diverged_at is not None for r in member.values())
    worst, where = _compare(grouped, member)
    assert worst < 1e-10, where


@pytest.mark.parametrize("c,m,units,rows", [(1, 30, 8, 7), (5, 40, 8, 9), (9, 24, 8, 64), (12, 50, 8, 7),
                                             (4, 300, 8, 100)])  # the last: a unit's rows in several chunks
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("chunk", [1, 10_000])
def test_batched_jacobian_errors_equal_jacobian_errors(dtype, c, m, units, rows, chunk, monkeypatch):
    """A layer's units (c of them, m values each) with its draw of units and rows, through the
    batched pieces in chunks (of at least 2 units: BN's kernel rounds a single channel
    otherwise; a unit's rows over several chunks where m is large): jacobian_errors's numbers
    exactly."""
    monkeypatch.setattr(jacobian, "CHUNK", chunk)
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(c, m, generator=g, dtype=torch.float64) * 3 + 1).to(dtype)
    want = jacobian.jacobian_errors(x, 1e-5, units, rows, torch.Generator().manual_seed(7))
    picked, drawn = jacobian._sample(c, m, units, rows, torch.Generator().manual_seed(7))
    drawn = torch.arange(m) if drawn is None else drawn
    e32, e64, scale = jacobian.unit_jacobian_errors(x[picked], 1e-5, drawn.expand(len(picked), -1))
    safe = torch.where(scale > 0, scale, 1.0)
    assert float(torch.where(scale > 0, e32 / safe, e32).max()) == want["jacobian_err_f32"]
    assert float(torch.where(scale > 0, e64 / safe, e64).max()) == want["jacobian_err_f64"]


def test_backward_checks_group_equals_backward_checks():
    g = torch.Generator().manual_seed(5)
    x, gx, gy = (torch.randn(3, 4, 30, generator=g, dtype=torch.float64) for _ in range(3))
    gamma = torch.rand(3, 4, generator=g, dtype=torch.float64) + 0.5
    got = jacobian.backward_checks_group(x, gx, gy, gamma, 1e-5)
    for k in range(3):
        want = jacobian.backward_checks(x[k], gx[k], gy[k], gamma[k], 1e-5)
        assert _worst(got[k], want)[0] < 1e-12


@pytest.mark.parametrize("analysis", ["lipschitz", "ics"])
def test_group_measuring_changes_nothing(analysis):
    """A fused group with the probes (group forms; the Hessian's too) ends where the same group
    without probes ends (bitwise: weights, so every loss), and the global RNG is where it was."""
    spec = _spec(analysis, ["batchnorm", "l1norm"])
    if analysis == "lipschitz":
        spec = Spec.model_validate({**spec.model_dump(mode="json"),
                                    "analysis": {"lipschitz": {"every": 4, "hessian": True, "hessian_iters": 10}}})
    data = _data(spec)
    for arm_jobs, train_jobs in zip(group_jobs(plan(spec, analysis), FusedRunner()),
                                    group_jobs(plan(spec, "train"), FusedRunner()), strict=True):
        torch.manual_seed(11)
        probed = train_fused(arm_jobs, data)
        after = torch.get_rng_state()
        torch.manual_seed(11)
        plain = train_fused(train_jobs, data)
        assert torch.equal(after, torch.get_rng_state())
        for a, b in zip(probed, plain, strict=True):
            assert (a.train_loss, a.test_loss, a.train_eval_loss) == (b.train_loss, b.test_loss, b.train_eval_loss)


def test_the_cost_model_reads_the_family_and_the_group_forms():
    """job_cost takes the family's own multiply-adds (the input's width counts: the old model
    assumed 64 inputs for every MLP) and a fused group's grouped probes share their fixed cost."""
    from bncli.runner.base import job_cost

    narrow, wide = (_spec("lipschitz", ["plain"]).model_copy(deep=True) for _ in range(2))
    wide = Spec.model_validate({**wide.model_dump(mode="json"),
                                "data": {**wide.data.model_dump(mode="json"), "n_features": 600}})
    assert job_cost(plan(wide, "train")[0])[1] > 10 * job_cost(plan(narrow, "train")[0])[1]
    fused = plan(narrow, "lipschitz")[0]
    single = plan(narrow.model_copy(update={"fuse": "off"}), "lipschitz")[0]
    assert fused.numerics == "fused" and single.numerics == "single"
    assert job_cost(fused)[1] < job_cost(single)[1]  # the landscape's fixed cost: once per group
    assert job_cost(fused)[0] > job_cost(single)[0]


def test_group_hessian_equals_the_per_member_lanczos(monkeypatch):
    """The side-by-side Lanczos on block-diagonal stacked HVPs: each member's λ as its own
    Lanczos gives it (to the eigensolver's 1e-7, as fused vs single), the same convergence, and
    everything else to 1e-10; BN and plain arms, one member diverged (masked)."""
    spec = _spec("lipschitz", ["plain", "batchnorm"], lr=[0.3, 1e6])
    spec = Spec.model_validate({**spec.model_dump(mode="json"),
                                "analysis": {"lipschitz": {"every": 4, "hessian": True, "jacobian": False}}})
    grouped, member = _group_vs_member(spec, "lipschitz", monkeypatch)
    checked = 0
    for key, s in member.items():
        for a, b in zip(grouped[key].probes["landscape"]["series"], s.probes["landscape"]["series"], strict=True):
            for k in ("lambda_max", "lambda_min"):
                assert a[k] == pytest.approx(b[k], rel=1e-7), (key, a["step"], k)
                checked += 1
            for k in ("hessian_converged_max", "hessian_converged_min"):
                assert a[k] == b[k], (key, a["step"], k)
            rest = {k: v for k, v in a.items() if not k.startswith(("hessian_", "lambda_"))}
            assert _worst(rest, {k: b[k] for k in rest})[0] < 1e-10, (key, a["step"])
    assert checked > 8


@pytest.mark.parametrize("serial", [False, True])
def test_side_by_side_lanczos_equals_each_alone(serial, monkeypatch):
    """Members' Lanczos runs side by side (threads; one batched product per round) give each
    member exactly what lanczos_extremes gives its operator alone: Lanczos (n > DENSE_MAX) with
    different convergence speeds, a tiny budget, and the dense path; also with an older scipy's
    one-at-a-time ARPACK (serial)."""
    from bncli.probes import hessian

    monkeypatch.setattr(hessian, "_ARPACK_SERIAL", serial)
    g = torch.Generator().manual_seed(0)
    for n, iters in ((260, 60), (260, 3), (40, 10)):
        mats = []
        for k in range(3):
            a = torch.randn(n, n, generator=g, dtype=torch.float64)
            mats.append((a + a.T) / 2 + torch.diag(torch.linspace(0, 10 * (k + 1), n, dtype=torch.float64)))

        def batched(todo, mats=mats):
            return {k: mats[k] @ v.to(torch.float64) for k, v in todo.items()}

        seeds = [5, 6, 7]
        got = hessian.lanczos_extremes_group(batched, n, seeds, tol=1e-6, max_iters=iters)
        for k in range(3):
            assert got[k] == hessian.lanczos_extremes(lambda v, a=mats[k]: a @ v.to(torch.float64), n,
                                                      seed=seeds[k], tol=1e-6, max_iters=iters)


def test_deep_chains_keep_the_per_member_shared_gprime():
    from bncli.probes.ics_grad import GROUP_MAX_LAYERS

    probe = GradientIcsProbe(every=1)
    probe.layers = [f"layer{i}" for i in range(GROUP_MAX_LAYERS)]
    assert probe.grouped()
    probe.layers.append("one more")
    assert not probe.grouped()


def test_group_ics_distribution_sites_after_the_activation(monkeypatch):
    """BN after the nonlinearity: `preact` is the linear output and `bn_in` the activation's output;
    the group form's taps (StackedMLP.functional's sites) must name them as the Block does."""
    arms = ["plain", {"name": "bn_post", "norm": "batch", "position": "post"},
            {"name": "l1_post", "norm": "lp", "p": 1, "position": "post"}]
    grouped, member = _group_vs_member(_spec("ics", arms), "ics", monkeypatch)
    worst, where = _compare(grouped, member)
    assert worst < 1e-10, where
    dist = grouped[("bn_post", 0.3, 0)].probes["ics_dist"]
    assert dist["steps"] == [0, 4, 8]
    # after the activation (tanh) the BN input lies in (-1, 1); the pre-activation does not have to
    per = dist["per_layer"]["layer2"]
    assert per["bn_in"]["mean"] != per["preact"]["mean"]


def test_stacked_shift_statistics_equal_each_members():
    """ics_stats' stacked forms (a fused group's sites [K, N, C], here feature-major views as the
    fused MLP leaves them) give each member's shift_stats, moments and percentiles."""
    from bncli.probes import ics_stats as st

    g = torch.Generator().manual_seed(11)
    a, b = (torch.randn(4, 7, 50, generator=g).transpose(1, 2) * 2 + 1 for _ in range(2))  # [K, N=50, C=7]
    units = [0, 3, 6]
    got = st.stacked_shift_stats(a, b, units)
    pct = st.stacked_percentiles(b, units)
    mu, var = st.stacked_moments(b)
    two = st.stacked_shift_stats(torch.stack([b, a]), torch.stack([a, b]), units)  # [sites, K]: a second leading dim
    for k in range(4):
        want = st.shift_stats(a[k], b[k], units)
        assert set(got) == set(want)
        for name, v in want.items():
            assert float(got[name][k]) == pytest.approx(v, rel=1e-12, abs=1e-15), name
            assert float(two[name][1, k]) == pytest.approx(v, rel=1e-12, abs=1e-15), name
        assert torch.equal(pct[:, k], st.unit_percentiles(b[k], units))
        m1, v1 = st.unit_moments(b[k])
        assert torch.allclose(mu[k], m1, rtol=1e-13, atol=0) and torch.allclose(var[k], v1, rtol=1e-13, atol=0)
