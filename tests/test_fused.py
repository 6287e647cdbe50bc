"""Fused sweeps (bncli.runner.fused): a group of runs trained as one batched model gives each run's
single record — in float64 (spec `precision: float64`) to 1e-10 for the well-conditioned numbers
(training curves, every fusable probe's measurements) and below an absolute bound for the residuals
that are zero in exact arithmetic, on any CPU; to 1e-5 in float32 for plain nets, with BN's float32
drift bounded on a short horizon — and fused jobs are planned, keyed and recorded apart from
single ones."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict

import pytest

from bncli.data import Dataset
from bncli.plan import plan
from bncli.probes.registry import PROBES
from bncli.results import RunRecord
from bncli.runner.base import group_jobs
from bncli.runner.cache import cpu_data
from bncli.runner.fused import FusedRunner
from bncli.runner.single import run_job
from bncli.spec import Spec

REL = 1e-10  # well-conditioned float64 numbers: fused = single to this, relative
# Residuals that are zero in exact arithmetic: scale-invariance residuals (out/loss/grad changes
# under W -> αW, the ε -> 1e-30 pass), cos(∇W, W) and the cross term of a BN layer, a BN layer's
# bias cancellation, the BN Jacobian's and backward pass's errors against their float64 closed
# forms, cos with 1 and ŷ, Thm 4.1's gap, the mean of BN outputs and β that stays 0. In float64
# they are rounding noise, 1e-17 to ~1e-11 (the ε -> 1e-30 pass is ill-conditioned: it divides
# by variances with no ε), whose digits depend on the kernels' summation order (fused vs single,
# and each CPU's instruction set and BLAS): they match when both are below RESIDUAL_BOUND, far
# below any value a broken invariance would give.
RESIDUAL_BOUND = 1e-6  # (Thm 4.1's gap, a difference of sums of squares, reaches 1.3e-7 by cancellation)
RESIDUALS = re.compile(
    r"^(eps0_out_rel|eps0_grad_err|out_abs|out_rel|loss_abs|grad_err|bias_cancel_rel|cos_grad_w|cross|"
    r"jacobian_err_f64|cos_ones_max|cos_yhat_max|thm41_gap_max|d_mean|mean|beta_mean|beta_std)$")
# the BN Jacobian probe's float32 column is computed in float32 by design (autograd in float32
# against the float64 closed form), also in a float64 run: float32 noise, ~1e-7
FLOAT32_BOUND = {"jacobian_err_f32": 1e-4}
ABS_FLOOR = 1e-13  # any two numbers closer than this are equal (a difference at float64's ulp of ~1)


def float64(spec: Spec) -> Spec:
    """`spec` with precision: float64 (data, models, probes and fused stacks in float64)."""
    return spec.model_copy(update={"precision": "float64"})


def _spec(analysis: dict | None = None, **train) -> Spec:
    doc = {"seeds": 2, "threads": 1, "device": "cpu",
           "data": {"source": "synthetic", "n_samples": 300, "n_features": 10, "n_classes": 3},
           "model": {"hidden": [12, 12], "activation": "sigmoid"},
           "train": {"lr": [0.5, 2.0], "steps": 24, "eval_every": 8, "batch_size": 20,
                     "eval_train_examples": 200, **train},
           "arms": ["plain", "batchnorm"], "analysis": analysis or {}}
    return Spec.model_validate(doc)


def _data(spec: Spec) -> Dataset:
    return cpu_data(spec)  # in the spec's precision


def _bound(key: str) -> float:
    if key in FLOAT32_BOUND:
        return FLOAT32_BOUND[key]
    return RESIDUAL_BOUND if RESIDUALS.match(key) else 0.0


def _worst(a, b, path="$", bound=0.0) -> tuple[float, str]:
    """The largest relative difference between two records' plain data; residuals (keys under
    RESIDUALS) count as equal when both are below their bound. The structure (lengths, None,
    strings, ints: steps, divergence) must match exactly."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        return max([_worst(a[k], b[k], f"{path}.{k}", _bound(k)) for k in a] or [(0.0, path)])
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        return max([_worst(x, y, path, bound) for x, y in zip(a, b)] or [(0.0, path)])
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        if (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= ABS_FLOOR:
            return 0.0, path
        if abs(a) < bound and abs(b) < bound:
            return 0.0, path
        return abs(a - b) / abs(b), path
    assert a == b, (path, a, b)
    return 0.0, path


def _records(spec: Spec, analysis: str):
    data = _data(spec)
    jobs = plan(spec, analysis)
    assert all(j.numerics == "fused" for j in jobs), [j.probes for j in jobs]
    runner = FusedRunner()
    groups = group_jobs(jobs, runner)
    assert [len(g) for g in groups] == [4, 4]  # one group per arm: 2 seeds x 2 lrs
    fused = {(r.arm, r.lr, r.seed): r for g in groups for r in runner.run(g, data)}
    single = {(j.arm, j.lr, j.seed): run_job(j, data) for j in jobs}
    return fused, single


def _compare(fused, single) -> tuple[float, str]:
    worst = (0.0, "")
    for key, s in single.items():
        f = fused[key]
        assert f.numerics == "fused" and s.numerics == "single" and f.precision == s.precision
        a, b = asdict(f), asdict(s)
        for d in (a, b):
            for k in ("wall_s", "numerics"):
                d.pop(k)
            for p in d["probes"].values():
                for when in ("init", "end"):
                    if isinstance(p, dict) and "static" in p:
                        p["static"][when].pop("wall_s", None)
        worst = max(worst, _worst(a, b))
    return worst


def test_the_comparison_is_relative_for_numbers_and_by_bound_for_residuals():
    rec = {"train_loss": [1.0, 0.5], "layers": {"layer1": {"eps0_grad_err": [3e-12], "grad_norm": 2.0}}}
    other = json.loads(json.dumps(rec))
    other["layers"]["layer1"]["eps0_grad_err"] = [9e-12]  # both rounding noise: equal
    assert _worst(other, rec)[0] == 0.0
    other["train_loss"][1] = 0.5 * (1 + 1e-9)
    assert _worst(other, rec) == (pytest.approx(1e-9), "$.train_loss")
    broken = json.loads(json.dumps(rec))
    broken["layers"]["layer1"]["eps0_grad_err"] = [1e-3]  # a residual that is no longer zero
    assert _worst(broken, rec)[0] > 1


# Adam divides each step by sqrt(v) + 1e-8: a parameter whose gradient is tiny turns the rounding
# of that gradient into a relative change of its step, so fused and single Adam runs part faster
# than SGD ones (measured on three instruction sets, float64: 1.2e-11 at lrs 0.01/0.003, 1.6e-12
# to 2.6e-12 at 0.003/0.001): the smaller lrs keep a margin of 40 below REL.
ADAM_LRS = [0.003, 0.001]
CASES = [
    ("train", None, {"momentum": 0.9, "weight_decay": 1e-3}),
    ("train", None, {"optimizer": "adam", "lr": ADAM_LRS}),
    ("train", None, {"schedule": "cosine", "warmup_steps": 5, "momentum": 0.9}),
    ("train", None, {"optimizer": "adam", "lr": ADAM_LRS, "schedule": "step", "milestones": [10],
                     "gamma": 0.5}),
    ("ics", {"ics": {"gradient_ics": False}}, {}),
    ("ics", {"ics": {"every": 6}}, {"momentum": 0.9}),
    ("landscape", {"lipschitz": {"every": 8}}, {}),
    ("landscape", {"lipschitz": {"every": 8}}, {"schedule": "cosine", "warmup_steps": 3}),
    ("saturation", None, {}),
    ("scale", None, {}),
]


@pytest.mark.parametrize("analysis,settings,train", CASES, ids=[
    "sgd-momentum-wd", "adam", "cosine-warmup-momentum", "adam-step-schedule", "ics_dist",
    "ics_dist+ics_grad", "landscape+bn_jacobian", "landscape-scheduled",
    "saturation", "scale"])
def test_fused_records_equal_single_records_in_float64(analysis, settings, train):
    worst, where = _compare(*_records(float64(_spec(settings, **train)), analysis))
    assert worst < REL, where


def test_fused_hessian_matches_single_to_the_eigensolvers_tolerance():
    """The landscape probe's Lanczos extremes on fused members: the members' weights differ from
    single runs' by ~1e-14 (batched kernels round differently, on plain nets too with some CPU
    kernels) and the iterative eigensolver amplifies that to ~1e-9 in λ and more in its residuals
    (convergence noise): λ within 1e-7, or within 1 % of the solver's own error bound where that
    is larger (Bauer–Fike: a unit v with ||Hv - λv|| = r is within r of an eigenvalue; the probe
    records r / |λ| as the residual: measured 1.1e-7 relative at a residual of 2.8e-4), the same
    convergence (residual <= the solver's tolerance), everything else as in the 1e-10 test."""
    fused, single = _records(float64(_spec({"lipschitz": {"every": 8, "hessian": True}})), "landscape")
    checked = 0
    for key, s in single.items():
        for a, b in zip(fused[key].probes["landscape"]["series"], s.probes["landscape"]["series"],
                        strict=True):
            for k in ("lambda_max", "lambda_min"):
                bound = 1e-2 * max(a[f"hessian_residual_{k[7:]}"], b[f"hessian_residual_{k[7:]}"])
                assert a[k] == pytest.approx(b[k], rel=max(1e-7, bound)), (key, a["step"], k)
                checked += 1
            for k in ("hessian_converged_max", "hessian_converged_min"):
                assert a[k] == b[k], (key, a["step"], k)
            rest = {k: v for k, v in a.items() if not k.startswith(("hessian_", "lambda_"))}
            assert _worst(rest, {k: b[k] for k in rest})[0] < REL, (key, a["step"])
    assert checked == 2 * 4 * 2 * 4  # 2 arms x (2 seeds x 2 lrs) x 4 points x (max, min)


def test_every_fusable_probe_is_covered_by_the_float64_test():
    covered = {"ics_dist", "ics_grad", "landscape", "bn_jacobian", "saturation", "scale"}
    assert {n for n, k in PROBES.items() if k.fusable} <= covered


def test_float32_plain_within_1e_5_and_bn_drift_bounded():
    fused, single = _records(_spec(), "train")
    for arm, bound in (("plain", 1e-5), ("batchnorm", 1e-4)):  # 24 steps: BN's drift stays small
        worst, where = _compare({k: v for k, v in fused.items() if k[0] == arm},
                                {k: v for k, v in single.items() if k[0] == arm})
        assert worst < bound, (arm, where, worst)


def assert_diverged_members_match(fused, single) -> None:
    """Some members diverged and some did not, and each fused member stops where it stops alone."""
    assert any(r.diverged_at is not None for r in single.values())
    assert any(r.diverged_at is None for r in single.values())
    for key, s in single.items():
        assert (fused[key].diverged_at, fused[key].steps_done) == (s.diverged_at, s.steps_done)


def test_a_diverged_member_is_cut_at_its_step_and_the_others_go_on():
    spec = _spec(lr=[0.5, 400.0], steps=40)
    fused, single = _records(float64(spec), "train")
    assert_diverged_members_match(fused, single)
    worst, where = _compare(fused, single)
    assert worst < REL, where


def test_fuse_off_plans_single_jobs_with_the_keys_of_before():
    spec = _spec()
    fused, off = plan(spec, "train"), plan(spec.model_copy(update={"fuse": "off"}), "train")
    assert {j.numerics for j in fused} == {"fused"} and {j.numerics for j in off} == {"single"}
    assert not {j.key for j in fused} & {j.key for j in off}  # --resume never mixes them
    # the single key is what it was before `numerics` existed: the job spec has no `fuse`
    assert all("fuse" not in json.loads(j.spec_json) for j in off)
    # one run per arm (nothing to fuse), probes that can't measure a group, noisy arms: single
    one = spec.model_copy(update={"seeds": 1, "train": spec.train.model_copy(update={"lr": [0.5]})})
    assert {j.numerics for j in plan(one, "train")} == {"single"}
    other = Spec.model_validate({**_spec().model_dump(mode="json"), "arms": ["layernorm"]})
    assert {j.numerics for j in plan(other, "train")} == {"single"}  # a norm the stack lacks
    runner = FusedRunner()
    assert len(group_jobs(off, runner)) == len(off)


def test_old_records_load_as_single():
    rec = RunRecord("plain", 0.1, 0, [0], [1.0], [1.0], [None], [1.0], [None], None, None, 1, None, 0.0)
    doc = rec.to_json()
    doc.pop("numerics")
    assert RunRecord.from_json(doc).numerics == "single"


def test_cli_fuse_option(tmp_path, write_spec, tiny_spec_dict_factory):
    from typer.testing import CliRunner

    from bncli.cli import app

    d = tiny_spec_dict_factory()
    d["train"] = {**d.get("train", {}), "lr": [0.1, 0.2], "steps": 4}
    path = write_spec(d)
    for fuse, numerics in (("auto", "fused"), ("off", "single")):
        res = CliRunner().invoke(app, ["train", str(path), "--fuse", fuse, "--json", "-q"])
        assert res.exit_code == 0, res.output
        runs = json.loads(res.stdout)["runs"]
        assert {r["numerics"] for r in runs} == {numerics}
        # the terminal header says how the runs were computed
        res = CliRunner().invoke(app, ["train", str(path), "--fuse", fuse, "-q"], env={"COLUMNS": "400"})
        assert res.exit_code == 0, res.output
        header = res.stdout.splitlines()[0]
        assert f"numerics: {numerics}" in header, header


@pytest.mark.parametrize("source", ["mnist", "cifar10"])
def test_fused_runs_on_stored_images_as_single_runs_do(tmp_path, source):
    """uint8 images (normalized per batch, CIFAR augmented from each member's seed) train fused
    like single runs: same data per member, float32 rounding apart."""
    import json

    from image_files import make_cifar, make_mnist
    from typer.testing import CliRunner

    from bncli.cli import app

    if source == "mnist":
        make_mnist(tmp_path, n_train=120, n_test=30)
        data = {"source": "mnist", "root": str(tmp_path)}
    else:
        make_cifar(tmp_path, per_batch=24, n_test=30)
        data = {"source": "cifar10", "root": str(tmp_path), "augment": True}
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({
        "name": "img", "device": "cpu", "data": data, "seeds": 2,
        "model": {"kind": "mlp", "hidden": [16, 8], "activation": "sigmoid"},
        "arms": ["plain", "batchnorm"],
        "train": {"lr": [0.05, 0.2], "batch_size": 16, "steps": 12, "eval_every": 4}}))
    docs = {}
    for fuse in ("auto", "off"):
        res = CliRunner().invoke(app, ["train", str(spec), "--fuse", fuse, "--json"])
        assert res.exit_code == 0, res.output
        docs[fuse] = json.loads(res.stdout)["runs"]
    assert {r["numerics"] for r in docs["auto"]} == {"fused"}
    assert {r["numerics"] for r in docs["off"]} == {"single"}
    for a, b in zip(docs["auto"], docs["off"]):
        assert (a["arm"], a["lr"], a["seed"]) == (b["arm"], b["lr"], b["seed"])
        for key in ("train_loss", "test_loss"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("n,bs", [(50, 8), (48, 8), (5, 8)])
def test_group_batch_indices_stack_each_seeds_batches(n, bs):
    """The fused loop's [K, B] index batches are, row by row, the single runs' batch_indices, over
    several epochs (n a multiple of the batch or not; a batch larger than n)."""
    from itertools import islice

    import torch

    from bncli.data.base import batch_indices, group_batch_indices

    seeds = [0, 7, 2**40 + 3]
    steps = 3 * max(1, n // bs) + 2
    group = list(islice(group_batch_indices(n, bs, seeds), steps))
    for k, s in enumerate(seeds):
        single = list(islice(batch_indices(n, bs, s), steps))
        for a, b in zip(group, single, strict=True):
            assert torch.equal(a[k], b)
