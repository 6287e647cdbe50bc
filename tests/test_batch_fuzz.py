"""Batch-file fuzzer, like the spec one (test_fuzz.py): every key of every sample batch file,
mutated (bad values, deletions, names that are paths, huge and colliding matrices);
`bncli batch FILE --dry-run` exits 0 or 2, never crashes. Exit 2 is exactly one `error:` line; no
run shows a traceback. Deterministic: a fixed rotation of bad values and a seeded sample."""

from __future__ import annotations

import copy
import math
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from bncli.cli import app

ROOT = Path(__file__).resolve().parent.parent
BATCHES = sorted((ROOT / "sample_configs").glob("batch_*.yaml")) + sorted((ROOT / "sample_configs").glob("ci_*.yaml"))
BAD_VALUES: list[Any] = [
    None, True, 0, -1, 1e30, math.inf, math.nan, "", ".", "..", "../x", "a/b", "x" * 300, "two\nlines",
    "a\x00b", [], {}, [1], [None], {"x": 1}, [[1]], "/dev/zero", "/etc/passwd",
]
EXTRA: list[Any] = [  # whole-comparison mutants: matrices too large or colliding, odd names
    {"matrix": {f"train.x{i}": list(range(20)) for i in range(5)}},
    {"matrix": {"train.lr": [0.1, 0.1000001]}},
    {"matrix": {"seed": [1, "1"]}},
    {"matrix": {"data": [{"source": "synthetic"}, {"source": "digits"}]}},
    {"name": "."}, {"name": ".."}, {"name": "n" * 101},
    {"overrides": {"data": {"source": "npz", "path": "/dev/zero"}}},
]
PER_FILE = 40
runner = CliRunner()


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple, value: Any) -> Any:
    doc = copy.deepcopy(doc)
    node = doc
    for p in path[:-1]:
        node = node[p]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


_DELETE = object()


def _absolute_specs(doc: Any, base: Path) -> Any:
    for c in doc.get("comparisons", []) if isinstance(doc, dict) else []:
        if isinstance(c, dict) and isinstance(c.get("spec"), str):
            c["spec"] = str((base / c["spec"]).resolve())
    return doc


def _mutants(path: Path) -> list[tuple[str, Any]]:
    doc = _absolute_specs(yaml.safe_load(path.read_text()), path.parent)
    rng = random.Random(path.name)
    out: list[tuple[str, Any]] = []
    for i, p in enumerate(_paths(doc)):
        for k in range(2):
            v = BAD_VALUES[(i * 2 + k) % len(BAD_VALUES)]
            out.append((f"{'.'.join(map(str, p))}={v!r:.20}", _set(doc, p, v)))
        out.append((f"{'.'.join(map(str, p))} deleted", _set(doc, p, _DELETE)))
    out = rng.sample(out, min(PER_FILE, len(out)))
    for j, extra in enumerate(EXTRA):
        m = copy.deepcopy(doc)
        m["comparisons"][0].update(copy.deepcopy(extra))
        out.append((f"extra {j}", m))
    return out


@pytest.mark.parametrize("batch", BATCHES, ids=lambda p: p.stem)
def test_batch_dry_run_mutants_exit_0_or_2_without_traceback(batch, tmp_path):
    bad = []
    for label, doc in _mutants(batch):
        f = tmp_path / "b.yaml"
        try:
            f.write_text(yaml.safe_dump(doc, allow_unicode=True))
        except yaml.YAMLError:
            continue
        res = runner.invoke(app, ["batch", str(f), "--dry-run", "--steps", "2", "--json"])
        if res.exit_code not in (0, 2) or res.exception and not isinstance(res.exception, SystemExit):
            bad.append(f"{label}: exit {res.exit_code}: {res.output[-300:]!r}")
        elif res.exit_code == 2 and (res.stderr.count("error:") != 1 or "Traceback" in res.output):
            bad.append(f"{label}: exit 2 but not one error line: {res.stderr[-300:]!r}")
    assert not bad, f"{len(bad)} mutants misbehaved, e.g.\n" + "\n".join(bad[:8])
