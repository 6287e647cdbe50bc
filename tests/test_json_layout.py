"""Result files' JSON (bncli.io.readable_json), records' JSON form (claim_types.clean) and the
comparisons' files written in parallel, largest first (render.files.write_many_result_files):
each against a slow, obvious reference."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bncli.claim_types import clean
from bncli.io import atomic_write_json, readable_json


def _random_doc(rng: random.Random, depth: int = 0) -> object:
    """Nested JSON-like values: objects, arrays (and tuples), series of numbers, strings."""
    kind = rng.random()
    if depth > 4 or kind < 0.3:
        return rng.choice([0, -3, 2.5, -0.0, 1e-300, 1e300, "x", "ü\n\"q\"", True, False, None])
    if kind < 0.5:
        return [rng.uniform(-1e3, 1e3) for _ in range(rng.randrange(0, 6))]
    if kind < 0.75:
        items = [_random_doc(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
        return tuple(items) if rng.random() < 0.2 else items
    keys = ["a", "b", "step", "ü", "with space", 7, 2.5, None, True]
    return {rng.choice(keys): _random_doc(rng, depth + 1) for _ in range(rng.randrange(0, 5))}


def test_readable_json_is_the_same_document_as_json_dumps():
    rng = random.Random(3)
    for _ in range(400):
        doc = _random_doc(rng)
        assert json.loads(readable_json(doc)) == json.loads(json.dumps(doc, indent=2))


def test_readable_json_refuses_what_strict_json_refuses():
    for bad in ({"a": [math.nan]}, {"a": {"b": {"c": math.inf}}}, [[1, [-math.inf]]], {"x": [[1.0], [math.nan]]}):
        with pytest.raises(ValueError):
            readable_json(bad)
    with pytest.raises(TypeError):
        readable_json({(1, 2): 3})
    with pytest.raises(TypeError):
        readable_json({"a": {"b": {"c": object()}}})


def test_readable_json_puts_series_on_one_line_and_indents_the_rest(tmp_path):
    layer = {"mean": [0.1, 0.2], "pct": [[1, 2], [3, 4]]}
    doc = {"command": "lipschitz", "runs": [{"arm": "batchnorm", "train_loss": [1.0, 0.5, 0.25],
                                             "probes": {"ics": {"layer1": layer}}}]}
    atomic_write_json(tmp_path / "s.json", doc)
    text = (tmp_path / "s.json").read_text()
    assert json.loads(text) == doc and text.endswith("}\n")
    lines = text.splitlines()
    assert '    "train_loss": [1.0, 0.5, 0.25],' in lines[5:7] or '      "train_loss": [1.0, 0.5, 0.25],' in lines
    assert any(line.strip() == '"mean": [0.1, 0.2],' for line in lines)
    assert any(line.strip() == '"pct": [[1, 2], [3, 4]]' for line in lines)
    assert lines[0] == "{" and lines[1] == '  "command": "lipschitz",'
    # nothing nested deeper than two levels shares a line with its parent's key
    assert not any(line.count("{") > 1 for line in lines)


def _clean_reference(value):
    """clean's definition, one call per value (the form before its fast path for series)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bool, int, str, type(None))):
        return value
    if isinstance(value, dict):
        return {str(k): _clean_reference(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_reference(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {k: _clean_reference(getattr(value, k)) for k in value.__dataclass_fields__}
    if hasattr(value, "item"):
        return _clean_reference(value.item())
    return value


@dataclass
class _Rec:
    xs: list
    name: str = "r"


def test_clean_of_series_equals_the_one_call_per_value_definition():
    values = [1.5, math.nan, math.inf, -math.inf, -0.0, 0, 7, True, False, None, "s", np.float64(2.5),
              np.float32(math.nan), np.int64(3), torch.tensor(1.25, dtype=torch.float64), (1.0, math.nan),
              [math.inf, [math.nan, 2.0]], {"k": math.nan}, _Rec([math.nan, 1.0])]
    rng = random.Random(5)
    for _ in range(200):
        series = [rng.choice(values) for _ in range(rng.randrange(0, 12))]
        got = clean(series)
        want = _clean_reference(series)
        assert json.dumps(got) == json.dumps(want)
        assert [type(v) for v in got] == [type(v) for v in want]
    assert clean((math.nan, 1.0)) == [None, 1.0]


def test_many_result_files_come_back_in_order_written_largest_first(tmp_path, monkeypatch):
    """The largest result is handed to a worker first; the paths come back in the caller's order
    whichever worker wrote them."""
    from bncli.render import files

    def fake_write(result, out_dir, fmt="png", size="page", colors=None, keep=None):
        out_dir.mkdir(parents=True)
        (out_dir / "summary.json").write_text(str(result.n))
        return [out_dir / "summary.json"]

    monkeypatch.setattr(files, "write_result_files", fake_write)
    sizes = [1, 40, 3, 200, 2, 10]
    results = [SimpleNamespace(n=n, runs=[SimpleNamespace(steps=list(range(n)), probes={"p": 0})]) for n in sizes]
    items = [(r, tmp_path / f"c{i}") for i, r in enumerate(results)]
    order = sorted(range(len(items)), key=lambda i: -files._size(items[i][0]))
    assert order[:2] == [3, 1]
    got = files.write_many_result_files(items, jobs=2)
    assert got == [[tmp_path / f"c{i}" / "summary.json"] for i in range(len(sizes))]
    assert [(tmp_path / f"c{i}" / "summary.json").read_text() for i in range(len(sizes))] == [str(n) for n in sizes]


def test_a_written_summary_reads_back_as_the_same_result(tmp_path, tiny_spec_dict_factory):
    """A real result (a lipschitz run: nested probe series) through write_result_files and
    bncli.saved.load_result: the same records."""
    import bncli

    spec = tiny_spec_dict_factory(train={"steps": 8, "eval_every": 4}, seeds=2)
    result = bncli.run("lipschitz", spec, every=4)
    from bncli.render.files import write_result_files
    from bncli.saved import load_result

    Path(tmp_path / "out").mkdir()
    write_result_files(result, tmp_path / "out")
    back = load_result(tmp_path / "out" / "summary.json")
    assert json.dumps(back.to_json()) == json.dumps(result.to_json())


def test_the_report_takes_the_figures_drawn_for_the_result_files_and_they_equal_fresh_ones(
        tmp_path, tiny_spec_dict_factory, monkeypatch):
    """A subcommand's --out: the report's claim figures are the plots/ ones (not drawn again),
    byte for byte what `bncli report` draws afresh; a figure of other colours is drawn anew."""
    import bncli
    from bncli.render import report_figures
    from bncli.render.files import write_result_files
    from bncli.render.report_write import write_report

    result = bncli.run("train", tiny_spec_dict_factory(train={"steps": 8, "eval_every": 4}, seeds=2))
    out = tmp_path / "out"
    kept: dict = {}
    write_result_files(result, out, keep=kept)
    assert kept and all(key[0] == "." for key in kept)
    drawn_tasks = []
    real = report_figures.draw_all
    monkeypatch.setattr(report_figures, "draw_all",
                        lambda tasks, *a, **k: drawn_tasks.extend(tasks) or real(tasks, *a, **k))
    write_report(out, drawings=kept)
    assert [t for t in drawn_tasks if t[0] != "C9"] == []  # every one-result figure was taken
    taken = {p.name: p.read_bytes() for p in (out / "report_files").iterdir()}
    monkeypatch.setattr(report_figures, "draw_all", real)
    write_report(out)  # drawn afresh
    assert {p.name: p.read_bytes() for p in (out / "report_files").iterdir()} == taken
    # other colours: not the same figure, so drawn again
    other = {key[:2] + (tuple((a, "#000000") for a, _ in key[2]),) + key[3:]: d for key, d in kept.items()}
    drawn_tasks.clear()
    monkeypatch.setattr(report_figures, "draw_all",
                        lambda tasks, *a, **k: drawn_tasks.extend(tasks) or real(tasks, *a, **k))
    write_report(out, drawings=other)
    assert len(drawn_tasks) == len(kept)
