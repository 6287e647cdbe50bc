"""Fused sweeps (bncli.runner.fused): a group of runs trained as one batched model gives each run's
single record — to 1e-10 in float64 for the training curves and every fusable probe, to 1e-5 in
float32 for plain nets, with BN's float32 drift bounded on a short horizon — and fused jobs are
planned, keyed and recorded apart from single ones."""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import asdict

import pytest
import torch

from bncli.data import Dataset
from bncli.plan import plan
from bncli.probes.registry import PROBES
from bncli.results import RunRecord
from bncli.runner.base import group_jobs
from bncli.runner.cache import cpu_data
from bncli.runner.fused import FusedRunner
from bncli.runner.single import run_job
from bncli.spec import Spec

# measured quantities that are zero in exact arithmetic (scale invariance residuals, cos(∇W, W)
# of a BN layer) are rounding noise, ~1e-15 in float64: those are equal absolutely, not relatively
ABS_FLOOR = 1e-12


def _spec(analysis: dict | None = None, **train) -> Spec:
    doc = {"seeds": 2, "threads": 1, "device": "cpu",
           "data": {"source": "synthetic", "n_samples": 300, "n_features": 10, "n_classes": 3},
           "model": {"hidden": [12, 12], "activation": "sigmoid"},
           "train": {"lr": [0.5, 2.0], "steps": 24, "eval_every": 8, "batch_size": 20,
                     "eval_train_examples": 200, **train},
           "arms": ["plain", "batchnorm"], "analysis": analysis or {}}
    return Spec.model_validate(doc)


@contextmanager
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _data(spec: Spec, double: bool) -> Dataset:
    d = cpu_data(spec)
    if not double:
        return d
    return Dataset(d.x_train.double(), d.y_train, d.x_test.double(), d.y_test, d.task, d.n_out)


def _worst(a, b, path="$") -> tuple[float, str]:
    """The largest relative difference between two records' plain data (beyond ABS_FLOOR); the
    structure (lengths, None, strings, ints: steps, divergence) must match exactly."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        return max([_worst(a[k], b[k], f"{path}.{k}") for k in a] or [(0.0, path)])
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        return max([_worst(x, y, path) for x, y in zip(a, b)] or [(0.0, path)])
    if isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        if (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= ABS_FLOOR:
            return 0.0, path
        return abs(a - b) / abs(b), path
    assert a == b, (path, a, b)
    return 0.0, path


def _records(spec: Spec, analysis: str, double: bool):
    data = _data(spec, double)
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
        assert f.numerics == "fused" and s.numerics == "single"
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


CASES = [
    ("train", None, {"momentum": 0.9, "weight_decay": 1e-3}),
    ("train", None, {"optimizer": "adam", "lr": [0.01, 0.003]}),
    ("train", None, {"schedule": "cosine", "warmup_steps": 5, "momentum": 0.9}),
    ("train", None, {"optimizer": "adam", "lr": [0.01, 0.003], "schedule": "step", "milestones": [10],
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
    with _float64():
        worst, where = _compare(*_records(_spec(settings, **train), analysis, double=True))
    assert worst < 1e-10, where


def test_fused_hessian_matches_single_to_the_eigensolvers_tolerance():
    """The landscape probe's Lanczos extremes on fused members: plain nets bitwise as in the
    1e-10 test; on BN nets the members' weights differ from single runs' by ~1e-14 (BN's
    reduction over [B, K·U] rounds differently) and the iterative eigensolver amplifies that to
    ~1e-9 in λ and more in its residuals (convergence noise): λ within 1e-7, the same convergence."""
    with _float64():
        fused, single = _records(_spec({"lipschitz": {"every": 8, "hessian": True}}), "landscape",
                                 double=True)
    checked = 0
    for key, s in single.items():
        for a, b in zip(fused[key].probes["landscape"]["series"], s.probes["landscape"]["series"],
                        strict=True):
            for k in ("lambda_max", "lambda_min"):
                assert a[k] == pytest.approx(b[k], rel=1e-7), (key, a["step"], k)
                checked += 1
            for k in ("hessian_converged_max", "hessian_converged_min"):
                assert a[k] == b[k], (key, a["step"], k)
            rest = {k: v for k, v in a.items() if not k.startswith(("hessian_", "lambda_"))}
            assert _worst(rest, {k: b[k] for k in rest})[0] < 1e-10, (key, a["step"])
            if key[0] == "plain":
                assert a == b or _worst(a, b)[0] < 1e-10
    assert checked == 2 * 4 * 2 * 4  # 2 arms x (2 seeds x 2 lrs) x 4 points x (max, min)


def test_every_fusable_probe_is_covered_by_the_float64_test():
    covered = {"ics_dist", "ics_grad", "landscape", "bn_jacobian", "saturation", "scale"}
    assert {n for n, k in PROBES.items() if k.fusable} <= covered


def test_float32_plain_within_1e_5_and_bn_drift_bounded():
    fused, single = _records(_spec(), "train", double=False)
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
    with _float64():
        fused, single = _records(spec, "train", double=True)
    assert_diverged_members_match(fused, single)
    worst, where = _compare(fused, single)
    assert worst < 1e-10, where


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
