"""Spec fuzzer: every field of every sample config, mutated; `bncli validate` exits 0 or 2, never crashes.

Each mutant is written to a file and validated in-process through typer's CliRunner, first with
--no-data (the spec alone); a seeded sample of the mutants that pass is validated again with
their data and models.
Exit 2 must be exactly one `error:` line; no run may show a traceback or leak an exception.
Deterministic: a fixed rotation of bad values and a seeded choice of hand-written numbers.
"""

from __future__ import annotations

import copy
import math
import random
import re
import time
import typing
from pathlib import Path
from typing import Any

import pytest
import torch
import typer.main
import typer.testing
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from bncli.cli import app
from bncli.spec import Spec

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted(
    p for p in (ROOT / "sample_configs").glob("*.yaml") if not p.name.startswith(("batch_", "ci_"))
)
BAD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 0.5, 1e30, -1e30, 10**30, 2**63, -(2**63) - 1,
    math.inf, -math.inf, math.nan, "", "x", "1e3", "auto", "a\x00b", "two\nlines",
    [], {}, [1], [-1], [True], [1e30], [None], {"x": 1}, [[1]],
]
VALUES_PER_FIELD = 4  # rotated so that across the sample configs every field meets every value
WITH_DATA = 40  # valid mutants per config validated with data too (all of them: ~1.5x the time)
RAW_SCALARS = ["2e2", "1e-3", "3E+2", ".inf", "-.inf", ".nan", "1e400", "0x10", "1_0", "true", "~", "-0",
               "1:30", "2024-13-45", "!!int x", "!!float", "*nope", "&a 1"]
DELETE = object()
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?(?![\w.])")

runner = CliRunner()


def _model_in(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in typing.get_args(tp):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _schema_paths(model: type[BaseModel] = Spec, prefix: tuple = ()) -> list[tuple]:
    """Every field of the spec, nested sections included (arms are mutated through arms.0)."""
    out = []
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        out.append(path)
        inner = _model_in(field.annotation)
        if inner is not None:
            out += _schema_paths(inner, (*path, 0) if name == "arms" else path)
    return out


def _file_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key and list item present in a loaded config."""
    out = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for k, v in items:
        out.append((*prefix, k))
        out += _file_paths(v, (*prefix, k))
    return out


def _set(doc: dict, path: tuple, value: Any) -> dict:
    """A copy of doc with path set (or deleted), creating sections and arm mappings on the way."""
    doc = copy.deepcopy(doc)
    node: Any = doc
    for i, part in enumerate(path[:-1]):
        if isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                return doc
            if isinstance(node[part], str):  # a preset name: spell the arm out as a mapping
                node[part] = {"name": node[part]}
            node = node[part]
            continue
        if not isinstance(node, dict):
            return doc
        nxt = node.get(part)
        if not isinstance(nxt, (dict, list)):
            nxt = [{"name": "fuzz", "norm": "batch"}] if path[i + 1] == 0 else {}
            node[part] = nxt
        node = nxt
    last = path[-1]
    if isinstance(node, list):
        if isinstance(last, int) and last < len(node):
            if value is DELETE:
                del node[last]
            else:
                node[last] = value
    elif isinstance(node, dict):
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return doc


def _mutants(config: Path, ci: int) -> list[tuple[str, str]]:
    """(label, YAML text) of every mutant of one config."""
    text = config.read_text()
    doc = yaml.safe_load(text)
    paths = list(dict.fromkeys(_file_paths(doc) + _schema_paths()))
    out: list[tuple[str, str]] = []
    for pi, path in enumerate(paths):
        for j in range(VALUES_PER_FIELD):
            value = BAD_VALUES[(ci * VALUES_PER_FIELD + pi + j) % len(BAD_VALUES)]
            out.append((f"{path}={value!r}", yaml.safe_dump(_set(doc, path, value), sort_keys=False)))
    for path in _file_paths(doc):
        out.append((f"del {path}", yaml.safe_dump(_set(doc, path, DELETE), sort_keys=False)))
        if isinstance(path[-1], str):  # an unknown key next to each known one
            out.append((f"typo {path}", yaml.safe_dump(_set(doc, (*path[:-1], path[-1] + "s"), 1), sort_keys=False)))
    out.append(("unknown top-level key", yaml.safe_dump({**doc, "zzz": {"a": 1}}, sort_keys=False)))
    # numbers written by hand: a number token of each line, replaced by textual variants
    rng = random.Random(ci)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        body = line.split("#", 1)[0]
        tokens = list(NUMBER.finditer(body))
        if not tokens:
            continue
        for word in rng.sample(RAW_SCALARS, 3):
            tok = rng.choice(tokens)
            mutated = [*lines[:i], line[: tok.start()] + word + line[tok.end():], *lines[i + 1:]]
            out.append((f"line {i + 1} -> {word}", "\n".join(mutated) + "\n"))
    out.append(("duplicate key", text + "\n" + text.splitlines()[0] + "\n"))
    out.append(("empty file", ""))
    out.append(("a list", "- 1\n- 2\n"))
    out.append(("deep nesting", "name: " + "[" * 200 + "]" * 200 + "\n"))
    return out


def _check(result, label: str, args: list[str]) -> str | None:
    """None when the run is acceptable, else what went wrong."""
    if "Traceback" in result.output:
        return f"{label}: traceback: {result.output[-300:]}"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"{label}: {type(result.exception).__name__}: {result.exception}"
    if result.exit_code not in (0, 2):
        return f"{label}: exit {result.exit_code}: {result.output.strip()[:300]}"
    if result.exit_code == 2:
        out = result.output.strip()
        if not out.startswith("error:") or len(out.splitlines()) != 1:
            return f"{label}: not one error line: {out[:300]!r}"
    return None


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_fuzz_sample_config(tmp_path, monkeypatch, config):
    # typer's runner rebuilds the whole click command from the annotations on every invoke (about
    # half the time of a --no-data validate); build it once, the invocations are unchanged
    command = typer.main.get_command(app)
    monkeypatch.setattr(typer.testing, "_get_command", lambda _app: command)
    threads = torch.get_num_threads()
    ci = CONFIGS.index(config)
    mutants = _mutants(config, ci)
    problems: list[str] = []
    passed: list[Path] = []
    t0 = time.perf_counter()
    try:
        for k, (label, text) in enumerate(mutants):
            p = tmp_path / f"m{k}.yaml"
            p.write_text(text)
            args = ["validate", str(p), "--no-data"]
            result = runner.invoke(app, args)
            problem = _check(result, f"{config.name} {label}", args)
            if problem:
                problems.append(problem)
            elif result.exit_code == 0:
                passed.append(p)
        # the mutants that are valid specs: load their data, build their models
        for p in random.Random(ci).sample(passed, min(WITH_DATA, len(passed))):
            result = runner.invoke(app, ["validate", str(p)])
            problem = _check(result, f"{config.name} {p.name} (with data)", ["validate", str(p)])
            if problem:
                problems.append(problem + " | " + p.read_text().replace("\n", " ")[:400])
    finally:
        torch.set_num_threads(threads)  # a mutant's `threads:` must not leak into other tests
    elapsed = time.perf_counter() - t0
    print(f"{config.name}: {len(mutants)} mutants, {len(passed)} valid, {elapsed:.1f} s")
    assert len(mutants) > 200
    assert not problems, f"{len(problems)} of {len(mutants)} mutants misbehaved:\n" + "\n".join(problems[:15])
