"""Issue 14 (verdicts from the right numbers) and issue 15 (C2, C4 rules) regression tests."""

from __future__ import annotations

import math

import pytest
import torch

from bncli.analyses.landscape import c4_claims
from bncli.pipeline import complete_and_paired, run_analysis
from bncli.probes.ics_stats import shift_stats
from bncli.results import RunRecord
from bncli.spec import parse_spec


def _rec(arm, seed=0, lr=0.1, interrupted=False, diverged_at=None, probes=None, steps_done=10):
    return RunRecord(arm=arm, lr=lr, seed=seed, steps=[0, 10], train_loss=[1.0, 0.5], train_eval_loss=[1.0, 0.5],
                     train_acc=[0.1, 0.5], test_loss=[1.0, 0.6], test_acc=[0.1, 0.5], diverged_at=diverged_at,
                     divergence_reason=None, steps_done=steps_done, steps_to_target=None, wall_s=0.0,
                     interrupted=interrupted, probes=probes or {})


def test_divergence_is_checked_before_every_due_probe_step(tiny_spec_dict_factory):
    # lr 50 diverges within a few steps; with measurements every 5 steps none may come after it
    spec = parse_spec(tiny_spec_dict_factory(train={"lr": 50.0, "steps": 40, "eval_every": 20},
                                             analysis={"lipschitz": {"every": 5}}))
    res = run_analysis(spec, "lipschitz")
    assert any(r.diverged for r in res.runs)
    for r in res.runs:
        steps = [s["step"] for s in r.probes["landscape"]["series"]]
        if r.diverged:
            assert all(s < r.diverged_at for s in steps), (r.arm, r.diverged_at, steps)


def test_scale_check_skips_the_end_check_of_a_diverged_run(tiny_spec_dict_factory):
    spec = parse_spec(tiny_spec_dict_factory(train={"lr": 50.0, "steps": 30, "eval_every": 10}))
    res = run_analysis(spec, "scale")
    for r in res.runs:
        static = r.probes["scale"]["static"]
        assert ("end" in static) == (not r.diverged)


def test_partial_and_unpaired_runs_never_feed_a_verdict(tiny_spec_dict_factory):
    spec = parse_spec(tiny_spec_dict_factory(seeds=3))
    recs = [_rec(a, s) for s in (0, 1) for a in ("plain", "batchnorm")]
    recs += [_rec("plain", 2), _rec("batchnorm", 2, interrupted=True, steps_done=4)]
    kept, left = complete_and_paired(spec, recs)
    assert len(kept) == 4 and all(r.seed < 2 for r in kept)
    assert len(left) == 2 and any("partial, 4 steps" in x for x in left) and any("unpaired" in x for x in left)


def test_interrupted_command_judges_only_complete_pairs(tiny_spec_dict_factory):
    from bncli.analyses import get_analysis
    from bncli.executors import execute
    from bncli.executors.base import JobResult
    from bncli.pipeline import build_result, check_spec
    from bncli.plan import plan
    from bncli.runner import SingleRunner, run_job

    spec = parse_spec(tiny_spec_dict_factory(seeds=2))

    class StopAtThird:  # Ctrl-C while the third job (seed 1, plain) runs
        runner = SingleRunner()

        def run(self, groups, reporter=None):
            for i, (j,) in enumerate(groups):
                if i == 2:
                    raise KeyboardInterrupt
                yield JobResult(j, run_job(j))

    ex = execute(plan(spec, "train"), StopAtThird())
    assert ex.interrupted and len(ex.records) == 2
    res = build_result(spec, get_analysis("train"), ex.records, True, check_spec(spec))
    assert res.interrupted and res.claims
    assert all(len(m.arm_values) == 1 and len(m.baseline_values) == 1 for c in res.claims for m in c.metrics)


def test_c2_shift_sees_shape_when_moments_are_fixed():
    # the same per-unit mean and variance, a different shape: BN in training mode looks like this
    torch.manual_seed(0)
    a = torch.randn(4000, 3)
    b = (torch.rand(4000, 3) - 0.5) * math.sqrt(12)  # uniform, mean 0, variance 1
    a = (a - a.mean(0)) / a.std(0, unbiased=False)
    b = (b - b.mean(0)) / b.std(0, unbiased=False)
    st = shift_stats(a, b, [0, 1, 2])
    assert st["d_mean"] < 1e-6 and st["d_var"] < 1e-5
    assert st["w1"] > 0.03 and st["d_pct"] > 0.05


def test_c2_is_judged_on_w1_and_percentiles(tiny_spec_dict_factory):
    spec = parse_spec(tiny_spec_dict_factory(train={"steps": 8, "eval_every": 4}, analysis={"ics": {"every": 2}}))
    res = run_analysis(spec, "ics")
    (c2,) = [c for c in res.claims if c.claim == "C2"]
    assert [m.name for m in c2.metrics] == ["mean W1 shift per step (per unit)",
                                            "mean 15/50/85th percentile shift per step (tracked units)"]
    assert "not judged (fixed by construction" in c2.note and "eval mode" in c2.note
    sites = {r["site"] for r in res.tables["ics_rows"]["distribution"] if r["arm"] == "batchnorm"}
    assert sites == {"preact", "bn_in", "preact_eval"}


def _land(values):
    series = [{"step": i, "loss_variation": v, "grad_pred_max": v, "grad_pred_mean": v, "beta": v,
               "grad_norm": 1.0} for i, v in enumerate(values)]
    return {"landscape": {"series": series}}


@pytest.mark.parametrize("plain,bn,verdict", [
    ([1.0, 1.0], [0.1, 0.1], "supported"),
    ([1.0], [0.1], "inconclusive"),  # one measurement each: too few to judge
    ([1.0, 1.0], [0.1], "inconclusive"),
])
def test_c4_needs_two_finite_measurements_per_run(tiny_spec_dict_factory, plain, bn, verdict):
    spec = parse_spec(tiny_spec_dict_factory())
    (c,) = c4_claims(spec, [_rec("plain", probes=_land(plain)), _rec("batchnorm", probes=_land(bn))])
    assert c.leaning == verdict, c.note
    if verdict == "inconclusive":
        assert "too few finite measurement steps" in c.note


# ---------------------------------------------------------------- losing results, bad output targets


def _cli_spec(tmp_path, **over):
    import yaml
    from conftest import tiny_spec_dict

    d = tiny_spec_dict(**over)
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def test_sigterm_keeps_finished_runs_and_exits_143(tmp_path):
    """SIGTERM right after the third run finished (a known point of the plan, whatever the
    machine's load): exit 143, the finished runs reported and written, no temp files."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    # --fuse off: one run after another, each its own finished job
    spec = _cli_spec(tmp_path, seeds=4, train={"steps": 40, "eval_every": 20, "lr": 0.1, "batch_size": 32})
    out = tmp_path / "out"
    helper = Path(__file__).parent / "signal_after.py"
    proc = subprocess.run([sys.executable, str(helper), "3", "SIGTERM", "train", str(spec), "--json", "--out",
                           str(out), "--threads", "1", "--fuse", "off"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "120"})
    assert proc.returncode == 143, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["interrupted"] and len(doc["runs"]) == 3
    assert (out / "summary.json").exists() and json.loads((out / "summary.json").read_text())["interrupted"]
    assert not [p for p in out.rglob(".*") if p.is_file()], "temp files left behind"
    assert "Traceback" not in proc.stderr


def test_unwritable_out_is_exit_2_before_training(tmp_path):
    import os

    from typer.testing import CliRunner

    from bncli.cli import app

    if os.geteuid() == 0:
        pytest.skip("root writes anywhere; the read-only case needs a normal user")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    res = CliRunner().invoke(app, ["train", str(_cli_spec(tmp_path)), "--out", str(ro)])
    assert res.exit_code == 2 and res.stderr.startswith("error: --out: cannot write"), res.output


def test_out_check_catches_a_file_system_that_refuses_writes(tmp_path, monkeypatch):
    import tempfile

    from bncli.commands._common import check_out_folder
    from bncli.errors import UsageError

    def refuse(*a, **k):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    with pytest.raises(UsageError, match="Read-only file system"):
        check_out_folder(tmp_path / "x")


def test_output_files_respect_the_umask(tmp_path):
    import os
    import stat

    from typer.testing import CliRunner

    from bncli.cli import app

    old = os.umask(0o022)
    try:
        res = CliRunner().invoke(app, ["train", str(_cli_spec(tmp_path)), "--out", str(tmp_path / "o"), "-q"])
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    for f in ("summary.json", "spec.yaml", "history.csv", "plots/training.png"):
        assert stat.S_IMODE((tmp_path / "o" / f).stat().st_mode) == 0o644, f


@pytest.mark.parametrize("name", ["exp[/b]", "mlp[bn]", "[red]x"])
def test_spec_names_are_printed_literally(tmp_path, name):
    from typer.testing import CliRunner

    from bncli.cli import app

    res = CliRunner().invoke(app, ["train", str(_cli_spec(tmp_path, name=name)), "--steps", "4"])
    assert res.exit_code == 0, res.output
    assert name in res.stdout


def test_plots_survive_losses_that_are_never_finite(tmp_path):
    from typer.testing import CliRunner

    from bncli.cli import app

    spec = _cli_spec(tmp_path, model={"kind": "mlp", "hidden": [16, 12], "activation": "relu", "init": "normal",
                                      "init_std": 1e30})
    res = CliRunner().invoke(app, ["train", str(spec), "--steps", "4", "--out", str(tmp_path / "o")])
    assert res.exit_code in (0, 2), res.output
    if res.exit_code == 0:
        assert (tmp_path / "o" / "plots" / "training.png").stat().st_size > 0
    else:
        assert res.stderr.startswith("error:") and len(res.stderr.strip().splitlines()) == 1


def test_closed_stdout_is_not_a_crash(tmp_path):
    import subprocess
    import sys

    spec = _cli_spec(tmp_path)
    proc = subprocess.run([sys.executable, "-c", "import sys, os; os.close(1); sys.stdout = None; "
                           "from bncli.cli import app; app(['validate', sys.argv[1]])", str(spec)],
                          capture_output=True, text=True)
    assert "AttributeError" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
