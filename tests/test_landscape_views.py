"""The opt-in landscape views of `bncli lipschitz` (issue 33): spec, job keys, records, CLI."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from bncli.analyses.landscape import ANALYSIS
from bncli.cli import app
from bncli.pipeline import run_experiment
from bncli.plan import job_spec
from bncli.probes.landscape_views import LandscapeViewsProbe, surface_directions
from bncli.spec import parse_spec


def test_views_are_opt_in_and_leave_default_keys_alone(tiny_spec_dict_factory):
    spec = parse_spec(tiny_spec_dict_factory())
    assert spec.analysis.lipschitz.surface is None
    arm = spec.arms[0]
    assert "landscape_views" not in ANALYSIS.plan_probes(spec, arm)
    doc = json.loads(job_spec(spec, ["lipschitz"], arm.name, 0.1, 0))
    assert "surface" not in doc["analysis"]["lipschitz"] and "hessian_trace" not in doc["analysis"]["lipschitz"]
    on = parse_spec(tiny_spec_dict_factory(analysis={"lipschitz": {"surface": {"dims": 1}}}))
    assert "landscape_views" in ANALYSIS.plan_probes(on, arm)
    assert json.loads(job_spec(on, ["lipschitz"], arm.name, 0.1, 0))["analysis"]["lipschitz"]["surface"]["dims"] == 1


def test_same_directions_for_both_arms_of_a_seed(tiny_spec_dict_factory):
    spec = parse_spec(tiny_spec_dict_factory(analysis={"lipschitz": {"surface": {}}}))
    cfg = spec.analysis.lipschitz
    a = {"l1.weight": torch.randn(4, 3), "bn.weight": torch.ones(4), "l2.weight": torch.randn(2, 4)}
    b = {"l1.weight": a["l1.weight"] * 3, "l1.bias": torch.zeros(4), "l2.weight": a["l2.weight"] * 3}
    for da, db in zip(surface_directions(a, 7, cfg), surface_directions(b, 7, cfg), strict=True):
        torch.testing.assert_close(da["l1.weight"] * 3, db["l1.weight"])
    assert not torch.equal(surface_directions(a, 7, cfg)[0]["l1.weight"], surface_directions(a, 8, cfg)[0]["l1.weight"])


def test_views_change_nothing_and_record_plain_data(tiny_spec_dict_factory):
    spec = parse_spec(tiny_spec_dict_factory(
        train={"steps": 6}, analysis={"lipschitz": {"every": 3, "hessian_trace": True, "hessian_density": True,
                                                    "hessian_trace_max": 16, "density_steps": 12,
                                                    "surface": {"dims": 2, "points": 5, "at_init": True,
                                                                "interpolate": True}}}))
    cfg = spec.analysis.lipschitz
    seen: dict = {}
    got: dict = {}

    def factory(with_views):
        def make(spec_, arm, lr, seed, data):
            probes = [LandscapeViewsProbe(cfg, seed, data)] if with_views else []

            class Grab:
                name, every = "grab", 10**9

                def on_end(self, run):
                    state = run.model.state_dict()
                    seen.setdefault(with_views, {})[arm.name] = {k: v.clone() for k, v in state.items()}
                    if probes:
                        got[arm.name] = probes[0]

                def result(self):
                    return {}

            return [*probes, Grab()]
        return make

    run_experiment(spec, factory(True))
    run_experiment(spec, factory(False))
    for arm, state in seen[False].items():
        for k, v in state.items():
            assert torch.equal(v, seen[True][arm][k]), (arm, k)
    res = got["batchnorm"].result()
    json.dumps(res)  # plain data
    assert [s["step"] for s in res["series"]] == [0, 3, 5]
    assert all(len(s["hessian_top"]) == 3 and s["hessian_trace_se"] >= 0 for s in res["series"])
    assert [s["step"] for s in res["surfaces"]] == [0, 6]
    end = res["surfaces"][-1]
    assert len(end["loss"]) == 5 and len(end["loss"][0]) == 5 and end["loss"][2][2] == end["surface_centre"]
    line = res["interpolation"]
    assert line["t"] == [-0.5, 0.0, 0.5, 1.0, 1.5]
    assert abs(line["loss"][3] - end["surface_centre"]) < 1e-6 * max(1.0, abs(end["surface_centre"]))
    assert abs(line["loss"][1] - res["surfaces"][0]["surface_centre"]) < 1e-6 * max(1.0, line["loss"][1])


def test_cli_flags_and_table(tiny_spec_dict_factory, write_spec, tmp_path):
    path = write_spec(tiny_spec_dict_factory())
    result = CliRunner().invoke(app, ["lipschitz", str(path), "--steps", "4", "--every", "2", "--surface", "1",
                                      "--hessian-trace", "--json", "-q", "--no-report"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    rows = {r["arm"]: r for r in doc["views"]}
    assert set(rows) == {"plain", "batchnorm"}
    assert {"trace_end", "lambda1_end", "surface_range", "surface_rise"} <= set(rows["batchnorm"])
    assert "not judged" in doc["views_note"]
    assert {c["claim"] for c in doc["claims"]} == {"C4", "C5"}
    out = tmp_path / "o"
    table = CliRunner().invoke(app, ["lipschitz", str(path), "--steps", "4", "--every", "2", "--surface", "2",
                                     "--hessian-density", "--out", str(out), "--no-report"])
    assert table.exit_code == 0, table.output
    assert "landscape views beside C4" in table.output and "surface range" in table.output
    for name in ("landscape_surface", "hessian_density", "hessian_trace"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 0
    assert "not judged" in (out / "plots" / "captions.md").read_text()


def test_report_shows_the_views_beside_c4(tiny_spec_dict_factory, write_spec, tmp_path):
    path = write_spec(tiny_spec_dict_factory())
    out = tmp_path / "r"
    result = CliRunner().invoke(app, ["lipschitz", str(path), "--steps", "4", "--every", "2", "--surface", "1",
                                      "--hessian-trace", "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    md = (out / "report.md").read_text()
    c4, c5 = md.index("## C4"), md.index("## C5")
    assert c4 < md.index("### C4 evidence") < c5 and "landscape_surface.png" in md
    assert "C4 evidence" in (out / "report.html").read_text()


def test_the_interpolation_line_holds_both_ends_exactly():
    from bncli.probes.landscape_views import line_ts

    for points in (2, 4, 5, 11, 21):
        ts = line_ts(points)
        assert 0.0 in ts and 1.0 in ts and ts == sorted(set(ts)), (points, ts)
        assert ts[0] == -0.5 and ts[-1] == 1.5
        assert all(abs(a - b) > 1e-6 for a, b in zip(ts, ts[1:], strict=False))
    assert line_ts(5) == [-0.5, 0.0, 0.5, 1.0, 1.5]
    assert len(line_ts(11)) == 13


@pytest.mark.parametrize("dims", [1, 2])
def test_view_figures_show_every_learning_rate(tiny_spec_dict_factory, write_spec, dims):
    """Each learning rate the runs cover gets its own panels (the first lr alone hid the others)."""
    from bncli.render.figures_views import view_figures
    from bncli.results import CommandResult

    d = tiny_spec_dict_factory(analysis={"lipschitz": {"surface": {"dims": dims, "points": 3, "interpolate": True}}})
    d["train"] = {**d["train"], "lr": [0.05, 0.2]}
    result = CliRunner().invoke(app, ["lipschitz", str(write_spec(d)), "--steps", "4", "--every", "2",
                                      "--hessian-trace", "--hessian-density", "--json", "-q", "--no-report"])
    assert result.exit_code == 0, result.output
    res = CommandResult.from_json(json.loads(result.stdout))
    figs = {name: fig for name, fig, _ in view_figures(res, {"plain": "#000000", "batchnorm": "#0072B2"})}
    assert set(figs) == {"landscape_surface", "landscape_interpolation", "hessian_density", "hessian_trace"}
    for name, fig in figs.items():
        titles = " ".join(ax.get_title() for ax in fig.axes if ax.get_visible())
        assert "lr 0.05" in titles and "lr 0.2" in titles, (name, titles)
