"""Issue 32, batch and compare at a glance: the batch's verdict grid, its unmet expectations and a
last line whose counts and exit code agree with the run; compare's leanings, kinds and widths."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bncli.cli import app
from bncli.results import SCHEMA_VERSION, Claim, CommandResult, MetricComparison

runner = CliRunner()
NARROW = {"COLUMNS": "100"}
TINY = {
    "data": {"source": "synthetic", "n_samples": 160, "n_features": 6, "n_classes": 3},
    "model": {"kind": "mlp", "hidden": [12, 10], "activation": "relu"},
    "train": {"lr": [0.1, 0.5], "batch_size": 32, "steps": 12, "eval_every": 6},
    "device": "cpu",
    "threads": 1,
}
# one seed: every verdict is exploratory, so `C1 supported` is unmet whatever the numbers say
EXPECT = [
    {"not_diverged": "batchnorm", "lr": 0.1},
    {"claim": "C1", "lr": 0.1, "verdict": "supported"},
    {"metric": "best_test_acc", "arm": "plain", "at_least": 2.0, "known_deviation": "accuracy is at most 1"},
    {"metric": "best_test_acc", "arm": "plain", "lr": 0.1, "at_least": 0.0},
]
LAST = re.compile(r"^(\d+) expectations?: (\d+) met(?:, (\d+) known deviations?)?, (\d+) unmet(.*) \(exit (\d+)\)$")


def _batch(tmp_path: Path, expect: list, name: str = "b.yaml", **comp) -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump({"comparisons": [{"name": "t", "spec": TINY, "expect": expect, **comp}]},
                                sort_keys=False))
    return p


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines()]


def _widest(text: str) -> int:
    return max((len(line.rstrip()) for line in text.splitlines()), default=0)


@pytest.fixture(scope="module")
def tiny_batch(tmp_path_factory):
    """One tiny batch, run once through the CLI at 100 columns: (its output, exit code, batch.json)."""
    tmp = tmp_path_factory.mktemp("glance")
    p = _batch(tmp, EXPECT)
    res = runner.invoke(app, ["batch", str(p), "--jobs", "1", "--out", str(tmp / "o"), "-q", "--no-report"],
                        env=NARROW)
    doc = json.loads((tmp / "o" / "batch.json").read_text())
    return res, doc, p


def test_default_output_is_the_grid_the_unmet_and_a_last_line_with_the_exit_reason(tiny_batch):
    res, doc, _ = tiny_batch
    assert res.exit_code == doc["exit_code"] == 1, res.output
    out = res.stdout
    lines = _lines(out)
    # the last line counts every expectation as the JSON does, and gives the exit code
    m = LAST.match(lines[-1])
    assert m, lines[-1]
    c = doc["counts"]
    total, met, known, unmet = int(m[1]), int(m[2]), int(m[3] or 0), int(m[4])
    assert (total, met, known) == (c["expectations"], c["expectations_passed"], c["expectations_skipped"])
    assert unmet == total - met - known == 1 and int(m[6]) == res.exit_code
    assert "job" in lines[-2] and "failed" in lines[-2]
    # the grid: the comparison's row names both learning rates, C1's row one verdict per lr
    assert "Verdicts per claim and learning rate" in out
    head = next(line for line in lines if line.startswith("t "))
    assert "lr 0.1" in head and "lr 0.5" in head
    (c1,) = [line for line in lines if line.startswith("  C1 ")]
    leanings = {cl["lr"]: cl["leaning"] for cl in doc["comparisons"][0]["claims"] if cl["claim"] == "C1"}
    assert c1.count("expl→") == 2 and all(f"expl→{v}" in c1 for v in leanings.values())
    # the unmet expectation with what decided it; the known deviation counted, not listed as unmet
    assert "Unmet expectations (1)" in out and "wanted" in out and f"exploratory→{leanings[0.1]}" in out
    assert "C1 supported (lr 0.1)" in out
    assert "≈ 1 known deviation(s)" in out
    # nothing of --detail, and nothing wider than the terminal
    assert "Expectations (4)" not in out and "t · train" not in out
    assert _widest(out) <= 100


def test_detail_adds_the_per_comparison_tables_and_every_expectation(tiny_batch, tmp_path):
    res, doc, p = tiny_batch
    det = runner.invoke(app, ["batch", str(p), "--jobs", "1", "--detail"], env=NARROW)
    assert det.exit_code == res.exit_code, det.output
    out = det.stdout
    assert "t · train" in out and "p_adj" in out and "Expectations (4)" in out
    assert _lines(out)[-1] == _lines(res.stdout)[-1]
    assert len(_lines(out)) > len(_lines(res.stdout)) and _widest(out) <= 100


def _render(doc: dict, capsys, monkeypatch) -> list[str]:
    from bncli.commands._common import print_renderables
    from bncli.render.batch import render_batch

    monkeypatch.setenv("COLUMNS", "100")
    capsys.readouterr()
    print_renderables(render_batch(doc))
    return _lines(capsys.readouterr().out)


def test_line_count_grows_with_comparisons_not_with_metrics(tiny_batch, capsys, monkeypatch):
    _, doc, _ = tiny_batch
    base = _render(doc, capsys, monkeypatch)
    more_metrics = copy.deepcopy(doc)
    for comp in more_metrics["comparisons"]:
        for cl in comp["claims"]:
            cl["metrics"] = [{**m, "name": f"{m['name']} #{k}"} for k in range(6) for m in cl["metrics"]]
    assert len(_render(more_metrics, capsys, monkeypatch)) == len(base)
    more_comps = copy.deepcopy(doc)
    extra = copy.deepcopy(doc["comparisons"])
    for comp in extra:
        comp["name"] += "_copy"
    more_comps["comparisons"] += extra
    rows = {(cl["claim"], cl["arm"], cl["baseline"]) for comp in extra for cl in comp["claims"]}
    assert len(_render(more_comps, capsys, monkeypatch)) == len(base) + len(extra) + len(rows)


def test_a_failed_job_is_the_last_lines_reason_for_exit_3(tmp_path, monkeypatch):
    import bncli.runner.single as serial

    real = serial.run_job

    def flaky(job, *a, **kw):
        if job.arm == "batchnorm":
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(job, *a, **kw)

    monkeypatch.setattr(serial, "run_job", flaky)
    res = runner.invoke(app, ["batch", str(_batch(tmp_path, [{"not_diverged": "plain"}])), "--jobs", "1",
                              "--fuse", "off"], env=NARROW)
    assert res.exit_code == 3, res.output
    last = _lines(res.stdout)[-1]
    assert LAST.match(last) and last.endswith("jobs failed to run (exit 3)"), last
    assert "of 4 job(s) failed" in res.stdout  # on the comparison's row of the grid


def test_an_interruption_is_the_last_lines_reason_for_exit_130(tmp_path, monkeypatch):
    import bncli.runner.single as serial

    real = serial.run_job
    calls = []

    def interrupt_second(job, *a, **kw):
        calls.append(job)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job, *a, **kw)

    monkeypatch.setattr(serial, "run_job", interrupt_second)
    p = _batch(tmp_path, [{"not_diverged": "plain"}], matrix={"seed": [0, 1]})
    res = runner.invoke(app, ["batch", str(p), "--jobs", "1", "--fuse", "off"], env=NARROW)
    assert res.exit_code == 130, res.output
    last = _lines(res.stdout)[-1]
    assert "interrupted" in last and "--resume" in last and last.endswith("(exit 130)"), last


def test_no_expectations_says_so_with_exit_0(tmp_path):
    res = runner.invoke(app, ["batch", str(_batch(tmp_path, [])), "--jobs", "1"], env=NARROW)
    assert res.exit_code == 0, res.output
    assert _lines(res.stdout)[-1] == "no expectations checked (exit 0)"


# ---------------------------------------------------------------- compare

LONG = "mean 15/50/85th percentile shift per step (tracked units)"


def _claim(verdict: str, leaning: str, name: str = "final train loss") -> Claim:
    m = MetricComparison(name=name, better="lower", arm_mean=0.5, baseline_mean=0.6, arm_values=[0.5],
                         baseline_values=[0.6], effect=-0.1667, points="neither", n_pairs=1, n_seeds=1)
    return Claim(claim="C1", statement="BN speeds training", verdict=verdict, lr=0.1, arm="batchnorm",
                 baseline="plain", metrics=[m], rule="test", leaning=leaning, evidence="exploratory", n_seeds=1)


def _saved(tmp_path: Path, name: str, *claims: Claim) -> Path:
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(CommandResult("train", {"name": name}, [], [], list(claims)).to_json()))
    return p


def test_compare_a_flipped_leaning_is_a_change_exit_1(tmp_path):
    a = _saved(tmp_path, "a", _claim("exploratory", "supported"))
    b = _saved(tmp_path, "b", _claim("exploratory", "inconclusive"))
    res = runner.invoke(app, ["compare", str(a), str(b)], env=NARROW)
    assert res.exit_code == 1, res.output
    assert "exploratory→supported" in res.stdout and "exploratory→inconclusive" in res.stdout
    assert _lines(res.stdout)[-1] == "1 of 1 verdict(s) changed (exit 1)" and _widest(res.stdout) <= 100
    doc = json.loads(runner.invoke(app, ["compare", str(a), str(b), "--json"]).stdout)
    (c,) = doc["claims"]
    assert (c["verdict_a"], c["verdict_b"]) == ("exploratory", "exploratory")
    assert (c["leaning_a"], c["leaning_b"], c["changed"], doc["exit_code"]) == ("supported", "inconclusive", True, 1)
    c = _saved(tmp_path, "c", _claim("exploratory", "supported"))
    same = runner.invoke(app, ["compare", str(a), str(c)], env=NARROW)
    assert same.exit_code == 0, same.output
    assert _lines(same.stdout)[-1] == "no verdict changed (1 compared; exit 0)"
    # an unchanged claim's metrics only with --detail
    assert "final train loss" not in same.stdout
    detail = runner.invoke(app, ["compare", str(a), str(c), "--detail"], env=NARROW)
    assert detail.exit_code == 0 and "final train loss" in detail.stdout


def test_compare_a_batch_with_a_subcommands_result_is_exit_2_in_one_line(tmp_path):
    batch = tmp_path / "batch.json"
    batch.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "kind": "batch", "expectations": [],
                                 "comparisons": [{"name": "t", "command": "train",
                                                  "claims": [_claim("supported", "supported").to_json()]}]}))
    single = _saved(tmp_path, "a", _claim("supported", "supported"))
    for args in ([batch, single], [single, batch]):
        res = runner.invoke(app, ["compare", *map(str, args)])
        assert res.exit_code == 2, res.output
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "batch" in lines[0], res.stderr
        assert "Traceback" not in res.output and not res.stdout


def test_compare_gives_a_long_metric_name_its_room(tmp_path):
    a = _saved(tmp_path, "a", _claim("supported", "supported", LONG))
    b = _saved(tmp_path, "b", _claim("refuted", "refuted", LONG))
    res = runner.invoke(app, ["compare", str(a), str(b)], env=NARROW)
    assert res.exit_code == 1, res.output
    assert any(LONG in line for line in res.stdout.splitlines()), res.stdout
    assert _widest(res.stdout) <= 100


def test_compare_results_of_two_subcommands_is_exit_2_in_one_line(tmp_path):
    a = _saved(tmp_path, "a", _claim("supported", "supported"))
    doc = json.loads(a.read_text())
    doc["command"] = "lipschitz"
    b = tmp_path / "b.json"
    b.write_text(json.dumps(doc))
    res = runner.invoke(app, ["compare", str(a), str(b)])
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "`train`" in lines[0] and "`lipschitz`" in lines[0], res.stderr
    assert not res.stdout
