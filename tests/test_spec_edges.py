"""The JSON Schema and the loader agree at every edge the schema states (issue 32, item 8):
specs are generated from the schema itself — each number's bounds, each choice, each list's
length bounds and uniqueness — and each must be refused by both or accepted by both. What the
schema cannot say (two items of a range compared, a key that does nothing with another) is
listed, and the loader's refusal of it is one line naming the field. Plus: a key that does
nothing, and arms that compare nothing, are exit 2 at `validate` and before training."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from bncli.cli import app
from bncli.errors import SpecError
from bncli.spec import load_spec, parse_spec
from bncli.spec_doc import json_schema
from bncli.spec_idle import check_idle_keys

runner = CliRunner()
SCHEMA = json_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
DEFS = SCHEMA["$defs"]

# Settings under which a field is read (the loader refuses a key that does nothing, which the
# schema, one field at a time, cannot know): an edge value is "accepted by the loader" when one of
# these contexts accepts it. Each context is itself a valid spec.
CONTEXTS: list[dict[str, Any]] = [
    {},
    {"data": {"source": "synthetic"}},
    {"data": {"source": "synthetic", "task": "regression"}, "train": {"target_accuracy": None}},
    {"data": {"source": "npz", "path": "x.npz"}},
    {"data": {"source": "cifar10"}, "model": {"kind": "vgg"}},
    {"data": {"source": "digits", "shape": "image"}, "model": {"kind": "cnn"}},
    {"data": {"source": "cifar10"}, "model": {"kind": "resnet"}},
    {"model": {"kind": "module", "factory": "mod:build"}},
    {"model": {"init": "normal"}},
    {"train": {"schedule": "step", "milestones": [10]}},
    {"analysis": {"lipschitz": {"hessian": True, "hessian_trace": True, "hessian_density": True}}},
]
# arm fields are read by some norms only (each arm is tried as each of these)
ARM_CONTEXTS: list[dict[str, Any]] = [
    {"norm": "batch"}, {"norm": "none"}, {"norm": "group"}, {"norm": "lp"}, {"norm": "layer"},
    {"norm": "batch", "noise": True},
]
# the widest conv layer: any group count up to its channels divides it (an MLP group needs 2 units)
WIDE = {"model": {"kind": "cnn", "channels": [65_536]}, "data": {"source": "digits", "shape": "image"}}

# what JSON Schema cannot say, and the loader refuses: path -> words of the loader's error (the
# schema's description states the rule where one field holds it)
UNEXPRESSIBLE = {
    "analysis.lipschitz.eta_range": "low < high",
    "analysis.scale.verdict_alpha_range": "low <= high",
}


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return DEFS[node["$ref"].rsplit("/", 1)[-1]]
    return node


def _branches(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null alternatives of a node (anyOf flattened, $refs resolved)."""
    node = _resolve(node)
    if "anyOf" in node:
        return [b for alt in node["anyOf"] for b in _branches(alt)]
    return [] if node.get("type") == "null" else [node]


def _fields(node: dict[str, Any], path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    """(path, schema) of every field of the spec; an arm's fields under ("arms", 0, field)."""
    for name, sub in _resolve(node).get("properties", {}).items():
        here = (*path, name)
        yield here, sub
        for branch in _branches(sub):
            if "properties" in branch:
                yield from _fields(branch, here)
            items = branch.get("items")
            if isinstance(items, dict):
                for item in _branches(items):
                    if "properties" in item:
                        yield from _fields(item, (*here, 0))


def _bounds(node: dict[str, Any]) -> tuple[float, float, bool, bool]:
    lo = node.get("minimum", node.get("exclusiveMinimum", -math.inf))
    hi = node.get("maximum", node.get("exclusiveMaximum", math.inf))
    return lo, hi, "exclusiveMinimum" in node, "exclusiveMaximum" in node


def _valid_numbers(node: dict[str, Any], n: int) -> list[Any]:
    """n distinct values inside a number's bounds."""
    lo, hi, _, _ = _bounds(node)
    if node["type"] == "integer":
        start = 1 if lo == -math.inf else math.floor(lo) + 1
        vals = [start + i for i in range(n)]
        return [v for v in vals if v < hi or (v == hi and "maximum" in node)][:n]
    if math.isfinite(lo) and math.isfinite(hi):
        return [lo + (hi - lo) * (i + 1) / (n + 1) for i in range(n)]
    start = 1.0 if lo == -math.inf else lo + 1.0
    return [start + i for i in range(n)]


def _items(node: dict[str, Any], n: int) -> list[Any]:
    """n distinct valid items of an array node (arm presets and mappings; numbers; layer names)."""
    branches = _branches(node["items"])
    first = branches[0]
    if "enum" in first:
        if "properties" in (branches[1] if len(branches) > 1 else {}):  # arms: mappings, named apart
            return [{"name": f"a{i}"} for i in range(n)]
        return list(first["enum"])[:n]
    if first.get("type") in ("integer", "number"):
        return _valid_numbers(first, n)
    return [f"layer{i + 1}" for i in range(n)]


def _number_edges(node: dict[str, Any]) -> Iterator[Any]:
    lo, hi, xlo, xhi = _bounds(node)
    integer = node["type"] == "integer"
    for bound, exclusive, inward in ((lo, xlo, 1), (hi, xhi, -1)):
        if not math.isfinite(bound):
            yield (-1 if inward > 0 else 1) * (2**70 if integer else 1e300)  # no bound stated
            continue
        step = 1 if integer else max(abs(bound), 1.0) * 1e-9
        yield bound  # on the bound: refused when it is exclusive
        yield bound + inward * step if exclusive else bound - inward * step  # just inside / just outside


def _edges(node: dict[str, Any]) -> Iterator[Any]:
    """Edge values of one field, from its schema: every choice and one more, each number bound
    and a step past it, each list length bound and one past it, a repeated item."""
    for b in _branches(node):
        if "enum" in b:
            yield from b["enum"]
            yield "not-a-choice"
        t = b.get("type")
        if t in ("integer", "number"):
            yield from _number_edges(b)
        if t == "array" and "prefixItems" in b:  # a [low, high] pair
            vals = _valid_numbers(_branches(b["prefixItems"][0])[0], 2)
            yield vals
            yield vals[::-1]
        elif t == "array" and isinstance(b.get("items"), dict):
            lo, hi = b.get("minItems", 0), b.get("maxItems")
            for n in {lo, max(lo - 1, 0), 2}:
                yield _items(b, n)
            if hi is not None:
                yield _items(b, hi)
                yield _items(b, hi + 1)
            if b.get("uniqueItems"):
                yield _items(b, 1) * 2


def _put(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """`doc` with `value` at `path`; an arm's field goes into the context's second arm (the
    first is plain)."""
    out = copy.deepcopy(doc)
    if path[:2] == ("arms", 0):
        path = ("arms", 1, *path[2:])
    node: Any = out
    for part in path[:-1]:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    node[path[-1]] = value
    return out


def _contexts(path: tuple[Any, ...]) -> Iterator[dict[str, Any]]:
    if path == ("arms",):  # the list itself: no other setting changes what it may hold
        yield {}
        return
    if path[:2] == ("arms", 0):
        for arm in ARM_CONTEXTS:
            yield {"arms": ["plain", {"name": "x", **arm}]}
            yield {"arms": ["plain", {"name": "x", **arm}], **WIDE}
        return
    yield from CONTEXTS


def _loader_accepts(doc: dict[str, Any]) -> tuple[bool, str]:
    try:
        check_idle_keys(parse_spec(doc, "edge.yaml"), "edge.yaml")
    except SpecError as exc:
        return False, str(exc)
    return True, ""


def _cases() -> list[tuple[str, Any]]:
    out = []
    for path, node in _fields(SCHEMA):
        for value in _edges(node):
            out.append((".".join(map(str, path)), value))
    return out


CASES = _cases()


def test_the_walk_covers_the_schema():
    """The generator reaches what it claims to: arrays, enums, bounds, the arms' fields."""
    paths = {p for p, _ in CASES}
    for p in ("train.lr", "arms", "model.hidden", "data.source", "arms.0.norm", "arms.0.groups", "model.depth",
              "analysis.lipschitz.eta_range", "analysis.ics.layers", "verdict.budgets",
              "analysis.lipschitz.surface.points"):
        assert p in paths, p
    assert len(CASES) > 300


@pytest.mark.parametrize("dotted, value", CASES, ids=[f"{p}={str(v)[:30]}" for p, v in CASES])
def test_schema_and_loader_agree_at_each_edge(dotted, value):
    path = tuple(int(p) if p.isdigit() else p for p in dotted.split("."))
    docs = [_put(ctx, path, value) for ctx in _contexts(path)]
    schema_ok = VALIDATOR.is_valid(docs[0])
    results = [_loader_accepts(d) for d in docs]
    loader_ok = any(ok for ok, _ in results)
    if dotted in UNEXPRESSIBLE and schema_ok and not loader_ok:
        msg = results[0][1]  # the loader says which rule, on one line, naming the field
        assert f"edge.yaml: {dotted}" in msg and UNEXPRESSIBLE[dotted] in msg and "\n" not in msg, msg
        desc = _resolve(DEFS[{"lipschitz": "LipschitzSpec", "scale": "ScaleSpec"}[path[1]]])
        assert UNEXPRESSIBLE[dotted] in desc["properties"][path[-1]]["description"]
        return
    assert schema_ok == loader_ok, (dotted, value, "schema" if schema_ok else "loader", results[0][1])


@pytest.mark.parametrize("doc, words", [
    ({"train": {"lr": []}}, "train.lr"),
    ({"arms": []}, "arms"),
    ({"arms": ["plain", "plain"]}, "arms"),
    ({"arms": "plain,plain"}, "arms"),  # the string form: the loader's (a pattern can't see a repeat)
    ({"train": {"lr": [0.1, 0.1]}}, "train.lr"),
    ({"analysis": {"lipschitz": {"eta_range": [4, 0.5]}}}, "analysis.lipschitz.eta_range"),
    ({"analysis": {"ics": {"layers": []}}}, "analysis.ics.layers"),
])
def test_the_issues_examples_are_refused_by_the_loader(doc, words):
    ok, msg = _loader_accepts(doc)
    assert not ok and msg.startswith(f"edge.yaml: {words}") and "\n" not in msg, msg


def test_the_schema_refuses_what_it_can_say():
    for doc in ({"train": {"lr": []}}, {"arms": []}, {"arms": ["plain", "plain"]}, {"arms": ""},
                {"train": {"lr": [0.1, 0.1]}}, {"analysis": {"scale": {"alphas": []}}}):
        assert not VALIDATOR.is_valid(doc), doc
    assert VALIDATOR.is_valid({"arms": "plain, batchnorm"}) and not VALIDATOR.is_valid({"arms": "plain batchnorm"})


# --------------------------------------------------------------------------- idle keys


@pytest.mark.parametrize("text, field, why", [
    ("data: {source: digits, task: regression}", "data.task", "class labels"),
    ("model: {kind: mlp, channels: [8]}", "model.channels", "kind: mlp"),
    ("model: {kind: cnn, hidden: [8]}\ndata: {source: digits, shape: image}", "model.hidden", "kind: cnn"),
    ("train: {target_loss: 0.1}", "train.target_loss", "classification"),
    ("data: {source: synthetic, task: regression}\ntrain: {target_accuracy: 0.5}", "train.target_accuracy",
     "regression"),
    ("data: {source: digits, path: x.npz}", "data.path", "source: digits"),
    ("data: {source: digits, n_features: 5}", "data.n_features", "source: digits"),
    ("data: {source: synthetic, task: regression, n_classes: 3}", "data.n_classes", "task: regression"),
    ("data: {source: synthetic, task: regression, class_sep: 1.0}", "data.class_sep", "task: regression"),
    ("data: {source: synthetic, noise: 0.5}", "data.noise", "task: classification"),
    ("data: {source: mnist, test_fraction: 0.3}", "data.test_fraction", "test split"),
    ("arms: [plain, {name: ln, norm: layer, momentum: 0.2}]", "arms.1.momentum", "norm: layer"),
    ("arms: [plain, {name: bn, norm: batch, groups: 4}]", "arms.1.groups", "only group"),
    ("arms: [plain, {name: bn, norm: batch, p: 1}]", "arms.1.p", "only lp"),
    ("arms: [plain, {name: wn, norm: weight, eps: 0.1}]", "arms.1.eps", "norm: weight"),
    ("arms: [plain, {name: wn, norm: weight, affine: false}]", "arms.1.affine", "norm: weight"),
    ("arms: [plain, {name: bn, norm: batch, noise_params: {n_mu: 0.2}}]", "arms.1.noise_params", "noise"),
    ("arms: [batchnorm, {name: p2, position: post}]", "arms.1.position", "norm: none without noise"),
    ("arms: [plain, {name: wn, norm: weight, position: post}]", "arms.1.position", "norm: weight"),
    ("analysis: {lipschitz: {hessian_iters: 50}}", "analysis.lipschitz.hessian_iters", "hessian"),
    ("analysis: {lipschitz: {jacobian: false, jacobian_tol: 0.1}}", "analysis.lipschitz.jacobian_tol", "jacobian"),
])
def test_a_key_that_does_nothing_is_exit_2_naming_why(tmp_path, text, field, why):
    p = tmp_path / "s.yaml"
    p.write_text(text + "\n")
    result = runner.invoke(app, ["validate", "--no-data", str(p)])
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith(f"error: {p}: {field}: not used") or err.startswith(f"error: {p}: {field}: source"), err
    assert why in err and len(err.splitlines()) == 1, err


def test_idle_keys_at_their_defaults_pass_so_a_dumped_spec_reloads(tmp_path):
    """A run's spec.yaml sets every key; those it did not choose sit at their defaults."""
    spec = parse_spec({"data": {"source": "synthetic", "task": "regression"}, "train": {"target_accuracy": None},
                       "arms": ["plain", "batchnorm", "layernorm"]})
    p = tmp_path / "dumped.yaml"
    p.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    assert load_spec(p).data.task == "regression"


def test_command_line_overrides_are_checked_for_idle_keys(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("train: {steps: 2}\n")
    result = runner.invoke(app, ["lipschitz", str(p), "--hessian-iters", "7", "--threads", "1"])
    assert result.exit_code == 2 and "analysis.lipschitz.hessian_iters: not used" in result.stderr, result.output


# --------------------------------------------------------------------------- comparisons


@pytest.mark.parametrize("arms, args, words", [
    ("[batchnorm]", [], "one arm (batchnorm): add plain"),
    ("[plain]", [], "add a normalized arm"),
    ("[batchnorm, noisy_batchnorm]", [], "is plain"),
    ("[plain, noisy_plain]", ["-c", "measure-ics"], "normalizes"),
    ("[batchnorm, batchnorm_noaffine]", ["-c", "train"], "add plain"),
])
def test_arms_that_compare_nothing_are_exit_2_at_validate(tmp_path, arms, args, words):
    p = tmp_path / "s.yaml"
    p.write_text(f"arms: {arms}\n")
    result = runner.invoke(app, ["validate", "--no-data", str(p), *args])
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith(f"error: {p}: arms: ") and words in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("arms, command", [
    ("[batchnorm]", "lipschitz"),  # C5: BN's Jacobian against its closed form needs no plain arm
    ("[batchnorm, batchnorm_noaffine]", "saturation"),  # C8: γ/β vs the same BN without them
    ("[plain, layernorm]", "measure-ics"),
    ("[plain, l1norm]", "lipschitz"),
])
def test_arms_that_compare_something_pass(tmp_path, arms, command):
    p = tmp_path / "s.yaml"
    p.write_text(f"arms: {arms}\n")
    result = runner.invoke(app, ["validate", "--no-data", str(p), "-c", command])
    assert result.exit_code == 0, result.output


def test_validate_checks_the_sections_a_spec_sets(tmp_path):
    """Without --command: the subcommands whose analysis.<section> the spec sets (else train)."""
    p = tmp_path / "s.yaml"
    p.write_text("arms: [batchnorm]\nanalysis: {lipschitz: {every: 5}}\n")
    assert runner.invoke(app, ["validate", "--no-data", str(p)]).exit_code == 0  # C5 is judged
    p.write_text("arms: [batchnorm]\nanalysis: {lipschitz: {every: 5, jacobian: false}}\n")
    result = runner.invoke(app, ["validate", "--no-data", str(p)])
    assert result.exit_code == 2 and "C5 needs a BN arm" in result.stderr, result.output
    dumped = tmp_path / "spec.yaml"  # a run's spec.yaml holds every section, at its defaults
    dumped.write_text(yaml.safe_dump(parse_spec({"arms": ["batchnorm", "batchnorm_noaffine"]}).model_dump(mode="json")))
    result = runner.invoke(app, ["validate", "--no-data", str(dumped)])
    assert result.exit_code == 2 and "`train` compares" in result.stderr, result.output
    assert runner.invoke(app, ["validate", "--no-data", str(dumped), "-c", "saturation"]).exit_code == 0
    bad = runner.invoke(app, ["validate", "--no-data", str(p), "-c", "nope"])
    assert bad.exit_code == 2 and "--command nope" in bad.stderr


def test_a_subcommand_stops_before_training_and_before_making_out(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("arms: [plain, batchnorm]\ntrain: {steps: 2}\n")
    out = tmp_path / "out"
    result = runner.invoke(app, ["train", str(p), "--arms", "batchnorm", "--out", str(out), "--threads", "1"])
    assert result.exit_code == 2, result.output
    assert "with command-line options): arms: `train` compares" in result.stderr
    assert not out.exists()


def test_a_batch_cell_that_compares_nothing_is_refused_by_dry_run(tmp_path):
    p = tmp_path / "b.yaml"
    p.write_text("defaults: {train: {steps: 2}}\ncomparisons:\n"
                 "  - {name: one, spec: {arms: [batchnorm]}, command: [train]}\n")
    result = runner.invoke(app, ["batch", str(p), "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "arms: `train` compares" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_validate_names_a_batch_file():
    result = runner.invoke(app, ["validate", "--no-data", "sample_configs/ci_smoke.yaml"])
    assert result.exit_code == 2 and "bncli batch sample_configs/ci_smoke.yaml --dry-run" in result.stderr


@pytest.mark.parametrize("arms", [["batchnorm"], ["batchnorm", "batchnorm_noaffine"], ["plain", "noisy_plain"],
                                  ["plain", "layernorm"]])
def test_the_comparison_check_agrees_with_what_each_subcommand_judges(tiny_spec_dict_factory, arms):
    """The check's table against the real thing: each subcommand run (from Python, which is not
    checked) on tiny specs judges some claim exactly when the check finds a comparison."""
    from bncli import run
    from bncli.analyses import BY_COMMAND
    from bncli.spec_checks import comparison_problem

    doc = tiny_spec_dict_factory(arms=arms, threads=1, train={"steps": 2, "eval_every": 1, "batch_size": 16},
                                 model={"activation": "tanh"},
                                 analysis={"ics": {"every": 1, "probe_size": 16},
                                           "lipschitz": {"every": 1, "eta_points": 2, "jacobian_units": 2},
                                           "scale": {"every": 1, "probe_size": 16, "alphas": [0.1, 10.0]},
                                           "saturation": {"every": 1, "probe_size": 16}})
    spec = parse_spec(doc)
    for command in BY_COMMAND:
        judged = bool(run(command, doc).claims)
        assert judged == (comparison_problem(spec, command) is None), (command, arms)
