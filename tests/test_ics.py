"""measure-ics (C2, C3): statistics against scipy/numpy, G' against a deep-copy reference, CLI."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

from bncli.analyses.ics import c3_claims, layer_rows
from bncli.cli import app
from bncli.pipeline import run_analysis
from bncli.probes.base import ProbeBase, as_units, spread_indices
from bncli.probes.ics import DistributionProbe, ics_probes, next_noise_seed
from bncli.probes.ics_grad import (
    compare_grads,
    gprime_batched,
    gprime_loop,
    gprime_shared,
)
from bncli.probes.ics_stats import shift_stats, unit_percentiles, wasserstein1
from bncli.results import RunRecord
from bncli.runner.build import build_arm_model, initial_model, prepare
from bncli.spec import parse_spec
from bncli.train import train_run


def run_analysis_ics(spec):
    return run_analysis(spec, "ics")

# ----------------------------------------------------------------------------- statistics


def test_wasserstein_matches_scipy() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 5, generator=g)
    b = torch.randn(300, 5, generator=g) * 1.7 + 0.3
    ours = wasserstein1(a, b)
    for j in range(5):
        ref = stats.wasserstein_distance(a[:, j].numpy(), b[:, j].numpy())
        assert abs(float(ours[j]) - ref) < 1e-6


def test_shift_stats_and_percentiles_match_explicit_loops() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(200, 4, generator=g)
    b = torch.randn(200, 4, generator=g) * 2 + 1
    got = shift_stats(a, b)
    an, bn = a.double().numpy(), b.double().numpy()
    d_mean = np.mean([abs(bn[:, j].mean() - an[:, j].mean()) for j in range(4)])
    d_var = np.mean([abs(bn[:, j].var() - an[:, j].var()) for j in range(4)])
    w1 = np.mean([stats.wasserstein_distance(an[:, j], bn[:, j]) for j in range(4)])
    assert got["d_mean"] == pytest.approx(d_mean, abs=1e-9)
    assert got["d_var"] == pytest.approx(d_var, abs=1e-9)
    assert got["w1"] == pytest.approx(w1, abs=1e-6)
    pct = unit_percentiles(a, [0, 3])
    for ui, j in enumerate([0, 3]):
        assert np.allclose(pct[:, ui].numpy(), np.percentile(an[:, j], [15, 50, 85]), atol=1e-9)


def test_conv_maps_count_positions_as_samples() -> None:
    x = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    u = as_units(x)
    assert u.shape == (8, 3)
    assert sorted(u[:, 1].tolist()) == sorted(x[:, 1].flatten().tolist())
    assert spread_indices(100, 3) == [0, 50, 99]  # evenly spread, ends included
    assert spread_indices(2, 5) == [0, 1]


# ----------------------------------------------------------------------------- G' reference


def _spec(tiny: Any, **over: Any):
    return parse_spec(tiny(**over))


class ReferenceCheck(ProbeBase):
    """Every step: G and G' from a deep copy updated layer by layer, against the fast paths."""

    name = "ref"

    def __init__(self) -> None:
        super().__init__(1)
        self.max_err = 0.0
        self.checked = 0
        self.nontrivial = 0.0

    def before_update(self, ctx) -> None:
        model = ctx.run.model
        self.snapshot = copy.deepcopy(model)  # θ_t (deepcopy also carries .grad; unused)
        self.g_real = {n: model.get_parameter(w).grad.clone()
                       for n, w in model.weight_param_names().items()}

    def _reference(self, ctx, layer_index: int | None) -> dict[str, torch.Tensor]:
        """Deep copy at θ_t; earlier layers loaded with θ_{t+1}; BN buffers from before the step."""
        live = ctx.run.model
        ref = copy.deepcopy(self.snapshot)
        names = ref.point_names
        with torch.no_grad():
            if layer_index is not None:
                for layer in names[:layer_index]:
                    for (_, p_ref), (_, p_new) in zip(
                        ref.layers[layer].named_parameters(), live.layers[layer].named_parameters(),
                        strict=True,
                    ):
                        p_ref.copy_(p_new)
            for k, b in ref.named_buffers():
                b.copy_(ctx.buffers_before[k])
        ref.set_noise_seed(ctx.noise_seed)
        ref.train()
        for p in ref.parameters():
            p.grad = None
        loss = ctx.run.loss_fn(ref(ctx.x), ctx.y)
        ws = [ref.layers[n].weight for n in names]
        return dict(zip(names, torch.autograd.grad(loss, ws), strict=True))

    def after_update(self, ctx) -> None:
        model = ctx.run.model
        names = model.point_names
        g_ref = self._reference(ctx, None)
        gp_ref = {n: self._reference(ctx, i)[n] for i, n in enumerate(names)}
        old = {n: p.detach() for n, p in self.snapshot.named_parameters()}
        new = {n: p.detach() for n, p in model.named_parameters()}
        args = (model, ctx.run.loss_fn, ctx.x, ctx.y, old, new, ctx.buffers_before, names)
        with_seed = model.noise_modules()
        for m in with_seed:
            m.seed = ctx.noise_seed
        fast = gprime_batched(*args)
        loop = gprime_loop(*args)
        shared = gprime_shared(*args)
        part = gprime_shared(*args[:-1], names[1::2])  # a subset of layers, as --layers gives
        for n in names:
            for got in (fast[n], loop[n], shared[n], *([part[n]] if n in part else [])):
                self.max_err = max(self.max_err, float((got - gp_ref[n]).abs().max()))
            self.max_err = max(self.max_err, float((self.g_real[n] - g_ref[n]).abs().max()))
            self.nontrivial = max(self.nontrivial, float((g_ref[n] - gp_ref[n]).abs().max()))
        self.checked += 1

    def result(self) -> dict:
        return {}


@pytest.mark.parametrize("arm,optimizer,model", [
    ("plain", "sgd", {"kind": "mlp", "hidden": [16, 12, 8]}),
    ("batchnorm", "sgd", {"kind": "mlp", "hidden": [16, 12, 8]}),
    ("noisy_batchnorm", "adam", {"kind": "mlp", "hidden": [16, 12, 8]}),
    ("batchnorm_post", "sgd", {"kind": "mlp", "hidden": [10, 10], "activation": "tanh"}),
    ("noisy_batchnorm", "sgd", {"kind": "cnn", "channels": [3, 4]}),
])
def test_gprime_batched_and_loop_match_deepcopy_reference(tiny_spec_dict_factory, arm, optimizer,
                                                          model) -> None:
    train = {"lr": 0.1, "batch_size": 24, "steps": 3, "optimizer": optimizer, "momentum": 0.0}
    over: dict[str, Any] = {"arms": [arm], "model": model, "train": train}
    if model["kind"] == "cnn":
        over["data"] = {"source": "digits", "shape": "image"}
    spec = _spec(tiny_spec_dict_factory, **over)
    data, _ = prepare(spec)
    init = initial_model(spec, data, 0)
    net = build_arm_model(spec, spec.arms[0], init, data, 0)
    check = ReferenceCheck()
    train_run(net, data, spec.arms[0], spec.train, 0.1, 0, [check])
    assert check.checked == 3
    assert check.nontrivial > 1e-6  # G' really differs from G: the test could fail
    assert check.max_err < 1e-5


def test_compare_grads_closed_forms() -> None:
    g = torch.tensor([[3.0, 4.0]])
    same = compare_grads(g, g)
    assert same["diff_norm"] == 0 and same["cos"] == pytest.approx(1.0)
    orth = compare_grads(g, torch.tensor([[-4.0, 3.0]]))
    assert orth["cos"] == pytest.approx(0.0, abs=1e-12)
    assert orth["diff_norm"] == pytest.approx(50 ** 0.5)
    assert orth["rel_diff"] == pytest.approx(50 ** 0.5 / 5)


# ----------------------------------------------------------------------------- probes


class SeedLog(ProbeBase):
    name = "seedlog"

    def __init__(self) -> None:
        super().__init__(1)
        self.seeds: list[int | None] = []

    def before_update(self, ctx) -> None:
        self.seeds.append(ctx.noise_seed)


@pytest.mark.parametrize("arm", ["batchnorm", "noisy_batchnorm", "noisy_plain"])
def test_measuring_leaves_training_bitwise_unchanged(tiny_spec_dict_factory, arm) -> None:
    spec = _spec(tiny_spec_dict_factory, arms=[arm],
                 train={"steps": 12, "momentum": 0.9, "batch_size": 20},
                 analysis={"ics": {"every": 3, "probe_size": 50}})
    data, _ = prepare(spec)
    init = initial_model(spec, data, 0)
    finals = []
    probes_used = []
    for with_probes in (False, True):
        torch.manual_seed(123)
        net = build_arm_model(spec, spec.arms[0], init, data, 0)
        probes = ics_probes(spec, spec.arms[0], 0.1, 0, data) if with_probes else []
        log = SeedLog()
        out = train_run(net, data, spec.arms[0], spec.train, 0.1, 0, [*probes, log])
        finals.append((net.state_dict(), out.step_losses, torch.rand(3)))
        probes_used = probes
        seeds = log.seeds
    (s0, l0, r0), (s1, l1, r1) = finals
    assert s0.keys() == s1.keys()
    assert all(torch.equal(s0[k], s1[k]) for k in s0)
    assert l0 == l1 and torch.equal(r0, r1)  # losses and the global RNG too
    dist, grad = probes_used
    assert dist.steps == [0, 3, 6, 9, 11] == grad.steps
    for m in net.modules():  # the last model trained is the one with probes
        assert not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks), type(m).__name__
    # the noise seed the distribution probe predicts for step t+1 is the one the loop sets
    if seeds[0] is not None:
        assert all(next_noise_seed(a) == b for a, b in zip(seeds, seeds[1:], strict=False))


def test_distribution_probe_against_explicit_forward(tiny_spec_dict_factory) -> None:
    spec = _spec(tiny_spec_dict_factory, arms=["plain", "batchnorm"], train={"steps": 1})
    data, _ = prepare(spec)
    init = initial_model(spec, data, 0)
    x = data.probe_batch(64)[0]
    for arm in spec.arms:
        net = build_arm_model(spec, arm, init, data, 0)
        w, b = net.layers["layer1"].fc.weight.detach(), net.layers["layer1"].fc.bias.detach()
        z = (x @ w.T + b).double()  # layer1's BN input, computed by hand at θ_0
        probe = DistributionProbe(1, (x, None), None, 2)  # type: ignore[arg-type]
        train_run(net, data, arm, spec.train, 0.1, 0, [probe])
        r = probe.result()["per_layer"]["layer1"]
        assert r["bn_in"]["mean"][0] == pytest.approx(float(z.mean(0).mean()), abs=1e-6)
        var0 = float(z.var(0, unbiased=False).mean())
        assert r["bn_in"]["var"][0] == pytest.approx(var0, rel=1e-5)
        if arm.normalized:
            # BN output at init (γ = 1, β = 0) in training mode: per-unit mean 0, variance
            # var / (var + eps), a closed form
            v = z.var(0, unbiased=False)
            assert abs(r["preact"]["mean"][0]) < 1e-6
            assert r["preact"]["var"][0] == pytest.approx(float((v / (v + 1e-5)).mean()), rel=1e-4)
        else:
            assert r["preact"]["mean"] == r["bn_in"]["mean"]


# ----------------------------------------------------------------------------- CLI


def test_cli_json_claims(tiny_spec_dict_factory, write_spec) -> None:
    path = write_spec(tiny_spec_dict_factory(train={"steps": 20}))
    result = CliRunner().invoke(app, ["measure-ics", str(path), "--every", "5", "--json",
                                      "--arms", "plain,batchnorm,noisy_batchnorm"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    claims = doc["claims"]
    assert {(c["claim"], c["arm"]) for c in claims} == {
        ("C2", "batchnorm"), ("C2", "noisy_batchnorm"),
        ("C3", "batchnorm"), ("C3", "noisy_batchnorm")}
    c2 = {c["arm"]: c["note"] for c in claims if c["claim"] == "C2"}
    assert "exactly β" in c2["batchnorm"] and "by construction" in c2["batchnorm"]
    assert "after Santurkar's noise" in c2["noisy_batchnorm"]
    for c in claims:
        assert c["lr"] == 0.1 and c["baseline"] == "plain"
        assert c["verdict"] in ("supported", "refuted", "inconclusive", "exploratory")
        assert all(m["arm_mean"] is not None for m in c["metrics"])
    run = doc["runs"][0]
    assert run["probes"]["ics_dist"]["steps"] == [0, 5, 10, 15, 19]
    assert len(run["probes"]["ics_grad"]["per_layer"]["layer2"]["cos"]) == 5
    assert doc["ics_rows"]["gradient"]


def test_cli_tables_and_plots(tiny_spec_dict_factory, write_spec, tmp_path) -> None:
    path = write_spec(tiny_spec_dict_factory(train={"steps": 10}))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["measure-ics", str(path), "--every", "5", "--layers",
                                      "layer2", "--out", str(out), "--quiet", "--detail"])
    assert result.exit_code == 0, result.output
    assert "C2 at lr = 0.1" in result.stdout and "C3 at lr = 0.1" in result.stdout
    assert "layer1 " not in result.stdout  # only the requested layer is measured
    names = {p.name for p in (out / "plots").iterdir()}
    assert {"distribution_shift.png", "gradient_ics.png", "captions.md"} <= names
    assert (out / "history.csv").exists() and (out / "summary.json").exists()


@pytest.mark.parametrize("args,needle", [
    (["--layers", "layer1,layer9"], "analysis.ics.layers: no normalization point named layer9"),
    (["--every", "0"], "analysis.ics.every"),
])
def test_cli_bad_input(tiny_spec_dict_factory, write_spec, args, needle) -> None:
    path = write_spec(tiny_spec_dict_factory())
    result = CliRunner().invoke(app, ["measure-ics", str(path), *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_probe_sizes_do_not_need_gradient_ics(tiny_spec_dict_factory) -> None:
    spec = _spec(tiny_spec_dict_factory, analysis={"ics": {"gradient_ics": False}})
    data, _ = prepare(spec)
    probes = ics_probes(spec, spec.arms[0], 0.1, 0, data)
    assert [type(p) for p in probes] == [DistributionProbe]
    res = run_analysis_ics(parse_spec(tiny_spec_dict_factory(train={"steps": 4},
                                                    analysis={"ics": {"gradient_ics": False}})))
    assert {c.claim for c in res.claims} == {"C2"}
    assert res.tables["ics_rows"]["gradient"] == [] and res.tables["ics_rows"]["distribution"]
    assert all("ics_grad" not in r.probes for r in res.runs)


# ----------------------------------------------------------------------------- C3 summaries


def _grad_record(arm: str, seed: int, cos: dict[str, float], rel: dict[str, float]) -> RunRecord:
    per_layer = {layer: {"g_norm": [1.0] * 2, "diff_norm": [rel[layer]] * 2,
                         "rel_diff": [rel[layer]] * 2, "cos": [cos[layer]] * 2} for layer in cos}
    probe = {"steps": [0, 5], "layers": list(cos), "per_layer": per_layer, "first_layer": "layer1"}
    return RunRecord(arm=arm, lr=0.1, seed=seed, steps=[0, 10], train_loss=[2.0, 1.0],
                     train_eval_loss=[2.0, 1.0], train_acc=[0.1, 0.5], test_loss=[2.0, 1.0],
                     test_acc=[0.1, 0.5], diverged_at=None, divergence_reason=None, steps_done=10,
                     steps_to_target=None, wall_s=0.0, probes={"ics_grad": probe})


def test_c3_judges_misalignment_without_layer1(tiny_spec_dict_factory) -> None:
    spec = _spec(tiny_spec_dict_factory)
    # layer 1 is G' = G (cos 1, no shift) in both arms; layer 2: cos 0.95 vs 0.99 is -4% on cos
    # (within the margin) but 1 - cos is 0.05 vs 0.01 (+400%)
    bn = _grad_record("batchnorm", 0, {"layer1": 1.0, "layer2": 0.95}, {"layer1": 0.0, "layer2": 0.3})
    plain = _grad_record("plain", 0, {"layer1": 1.0, "layer2": 0.99}, {"layer1": 0.0, "layer2": 0.1})
    (claim,) = c3_claims(spec, [bn, plain])
    rel, mis = claim.metrics
    assert "1 − cos" in mis.name and mis.better == "higher" and mis.points == "claimed"
    # means over layer 2 only: with layer 1 they would be halved
    assert mis.arm_mean == pytest.approx(0.05) and mis.baseline_mean == pytest.approx(0.01)
    assert rel.arm_mean == pytest.approx(0.3) and rel.baseline_mean == pytest.approx(0.1)
    assert claim.leaning == "supported" and "layer 1 is left out" in claim.note
    rows = layer_rows(spec, [bn, plain])["gradient"]
    assert {r["layer"] for r in rows} == {"layer2"}


def test_c3_plots_and_tables_leave_out_layer1_without_warnings(tiny_spec_dict_factory, tmp_path):
    import warnings

    from bncli.render.files import write_plots
    from bncli.render.ics import render_ics

    spec = _spec(tiny_spec_dict_factory, train={"steps": 6}, analysis={"ics": {"every": 3}})
    res = run_analysis_ics(spec)
    run = res.runs[0].probes["ics_grad"]
    assert run["first_layer"] == "layer1" and run["per_layer"]["layer1"]["diff_norm"] == [0.0] * 3
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = write_plots(res, tmp_path)
        render_ics(spec, res)
    assert any(p.name == "gradient_ics.png" for p in files)
    assert not [w for w in caught if "log" in str(w.message)], [str(w.message) for w in caught]
    assert {r["layer"] for r in res.tables["ics_rows"]["gradient"]} == {"layer2"}


def test_probe_paths_agree(monkeypatch, tiny_spec_dict_factory):
    """The probe picks the loop for a few layers and the batched form for many: same numbers."""
    import bncli.probes.ics_grad as ics_grad
    from bncli.spec import parse_spec

    spec = parse_spec(tiny_spec_dict_factory(model={"hidden": [8, 8, 8, 8, 8]},
                                             train={"steps": 6, "eval_every": 3},
                                             analysis={"ics": {"every": 2}}))
    out = {}
    for label, threshold in (("batched", 1), ("loop", 100)):
        monkeypatch.setattr(ics_grad, "SHARED_MIN_MIXES", threshold)
        out[label] = [r.probes["ics_grad"]["per_layer"] for r in run_analysis_ics(spec).runs]
    for a, b in zip(out["batched"], out["loop"]):
        for layer in a:
            for metric in a[layer]:
                assert a[layer][metric] == pytest.approx(b[layer][metric], rel=1e-4, abs=1e-6)
