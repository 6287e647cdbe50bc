"""The foundation: run plans of independent jobs, executors, results that load back, structure."""

from __future__ import annotations

import ast
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from bncli.analyses import ANALYSES, get_analysis
from bncli.errors import SchemaError
from bncli.executors import execute
from bncli.pipeline import run_analysis
from bncli.plan import plan
from bncli.results import CommandResult
from bncli.runner import SingleRunner, run_job
from bncli.spec import apply_overrides, parse_spec

ROOT = Path(__file__).resolve().parents[1]


def _spec(tiny_spec_dict_factory, **over):
    d = tiny_spec_dict_factory(train={"steps": 6, "eval_every": 3, "lr": [0.05, 0.2]}, seeds=2, **over)
    return parse_spec(d)


def test_plan_is_seed_lr_arm_in_order(tiny_spec_dict_factory):
    spec = _spec(tiny_spec_dict_factory)
    jobs = plan(spec, "train")
    assert [(j.seed, j.lr, j.arm) for j in jobs] == [
        (s, lr, a) for s in (0, 1) for lr in (0.05, 0.2) for a in ("plain", "batchnorm")]
    assert len({j.key for j in jobs}) == len(jobs)


def test_jobs_are_small_picklable_values_with_stable_keys(tiny_spec_dict_factory):
    spec = _spec(tiny_spec_dict_factory)
    job = plan(spec, "ics")[1]
    again = pickle.loads(pickle.dumps(job))
    assert again == job and hash(again) == hash(job) and again.key == job.key
    assert len(pickle.dumps(job)) < 8000
    # the spec's name, other lrs/seeds/arms, other analyses' settings and threads don't change it
    other = apply_overrides(spec, {"name": "renamed", "threads": 1, "train.lr": [0.2, 0.05, 1.0],
                                   "analysis.lipschitz.every": 3, "arms": "batchnorm,plain"})
    assert {j.key for j in plan(other, "ics")} >= {j.key for j in plan(spec, "ics")}
    # what the run depends on does change it
    for change in ({"train.steps": 7}, {"analysis.ics.every": 2}, {"model.hidden": [16, 13]}):
        changed = apply_overrides(spec, change)
        assert plan(changed, "ics")[1].key != job.key, change
    assert plan(spec, "train")[1].key != job.key  # another analysis


@pytest.mark.parametrize("name", list(ANALYSES))
def test_run_job_gives_bitwise_the_records_of_the_command(name, tiny_spec_dict_factory):
    # the single path (fused groups are checked against it in tests/test_fused.py)
    spec = apply_overrides(_spec(tiny_spec_dict_factory), {"fuse": "off"})
    result = run_analysis(spec, name)
    jobs = plan(spec, name)
    # run the jobs alone, in reverse order: every record is a function of its job only
    alone = {j: run_job(j) for j in reversed(jobs)}
    for j, rec in zip(jobs, result.runs):
        a, b = alone[j].to_json(), rec.to_json()
        a.pop("wall_s"), b.pop("wall_s")
        if "scale" in a["probes"]:
            for when in ("init", "end"):
                a["probes"]["scale"]["static"][when].pop("wall_s", None)
                b["probes"]["scale"]["static"][when].pop("wall_s", None)
        assert a == b, j.label


@pytest.mark.parametrize("name", list(ANALYSES))
def test_results_round_trip_through_json(name, tiny_spec_dict_factory):
    spec = _spec(tiny_spec_dict_factory)
    doc = json.loads(json.dumps(run_analysis(spec, name).to_json(), allow_nan=False))
    back = CommandResult.from_json(doc)
    assert back.to_json() == doc
    assert back.command == get_analysis(name).command and back.tables.keys() == (
        doc.keys() - {"schema_version", "command", "bncli_version", "interrupted", "spec", "summary",
                      "claims", "runs", "task", "device"})
    # the renderers draw a loaded result as they draw a fresh one
    import importlib

    render = importlib.import_module(get_analysis(name).render)
    assert render.render(spec, back)


def test_other_schema_versions_are_refused():
    with pytest.raises(SchemaError, match="schema_version 99"):
        CommandResult.from_json({"schema_version": 99, "command": "train"})


def test_identical_jobs_run_once(tiny_spec_dict_factory):
    spec = _spec(tiny_spec_dict_factory)
    jobs = plan(spec, "train")
    calls = []

    class Counting:
        runner = SingleRunner()

        def run(self, groups, reporter=None):
            from bncli.executors.base import JobResult

            for g in groups:
                for j in g:
                    calls.append(j)
                    yield JobResult(j, run_job(j))

    ex = execute(jobs + jobs[:2], Counting())
    assert len(calls) == len(jobs) and len(ex.records) == len(jobs) + 2
    assert ex.records[-1] is ex.records[1]


def _imports(path: Path) -> set[str]:
    mods = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            mods.add(node.module)
        elif isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
    return mods


def test_layering_probes_measure_render_draws():
    for f in (ROOT / "bncli" / "probes").glob("*.py"):
        bad = {m for m in _imports(f) if m.startswith(("bncli.render", "bncli.analyses", "bncli.verdicts",
                                                        "bncli.commands", "bncli.pipeline"))}
        assert not bad, f"{f.name} imports {bad}: probes only measure"
    for f in (ROOT / "bncli" / "render").glob("*.py"):
        bad = {m for m in _imports(f) if m.startswith("bncli.probes")}
        assert not bad, f"{f.name} imports {bad}"
    for f in (ROOT / "bncli" / "analyses").glob("*.py"):
        bad = {m for m in _imports(f) if m.startswith(("torch", "bncli.render", "bncli.commands"))}
        assert not bad, f"{f.name} imports {bad}"


def test_cli_imports_no_torch():
    code = "import sys, bncli.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _module_graph() -> dict[str, set[str]]:
    """bncli's modules -> the bncli modules each imports (any import, also inside functions)."""
    mods: dict[str, Path] = {}
    for f in (ROOT / "bncli").rglob("*.py"):
        rel = f.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    graph: dict[str, set[str]] = {}
    for name, f in mods.items():
        deps = set()
        for m in _imports(f):
            # `from bncli.x import y` may name a submodule y; count the deepest module that exists
            while m and m not in mods:
                m = m.rpartition(".")[0]
            if m and m != name:
                deps.add(m)
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bncli"):
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    if sub in mods and sub != name:
                        deps.add(sub)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(comp)

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_import_graph_of_the_whole_package():
    """No import loop anywhere in bncli (imports inside functions count); render/ computes nothing
    about the runtime; batch/ writes files through bncli.io, never through render/."""
    graph = _module_graph()
    loops = [sorted(comp) for comp in _cycles(graph)]
    assert not loops, f"import loops: {loops}"
    for name, deps in graph.items():
        if name.startswith("bncli.render"):
            assert "bncli.runtime" not in deps, f"{name} imports bncli.runtime"
    for name, deps in graph.items():
        if name.startswith("bncli.batch"):
            assert not {d for d in deps if d.startswith("bncli.render")}, f"{name} imports render/"
    assert not {d for d in graph["bncli.plan"] if d.startswith(("bncli.runner", "bncli.executors"))}
