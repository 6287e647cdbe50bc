"""`bncli compare A B`: verdict A vs B per claim and regime; exit 0 unchanged, 1 changed, 2 unreadable."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bncli.cli import app

runner = CliRunner()


def test_one_changed_verdict_exits_1(saved_results):
    """Two real lipschitz results; the second with jacobian_tol 1e-12: C5 changes, C4 does not."""
    a, b = saved_results["lipschitz"], saved_results["lipschitz_tight"]
    res = runner.invoke(app, ["compare", str(a), str(b), "--json"])
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    changed = [c for c in doc["claims"] if c["changed"]]
    assert {c["claim"] for c in changed} == {"C5"} and doc["n_changed"] == len(changed) and doc["exit_code"] == 1
    assert all(c["verdict_a"] == "supported" and c["verdict_b"] != "supported" for c in changed)
    c4 = next(c for c in doc["claims"] if c["claim"] == "C4")
    assert not c4["changed"] and c4["metrics"] and all(m["change"] == 0 for m in c4["metrics"])
    table = runner.invoke(app, ["compare", str(a), str(b)])
    assert table.exit_code == 1 and f"{len(changed)} of {len(doc['claims'])} verdict(s) changed" in table.stdout


def test_same_result_exits_0_folder_against_its_json(saved_results):
    a = saved_results["lipschitz"]
    res = runner.invoke(app, ["compare", str(a), str(a / "summary.json")])
    assert res.exit_code == 0, res.output
    assert "no verdict changed" in res.stdout


def test_unreadable_result_exits_2(saved_results, tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{")
    res = runner.invoke(app, ["compare", str(saved_results["train"]), str(bad)])
    assert res.exit_code == 2 and "not a JSON document" in res.output
