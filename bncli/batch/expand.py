"""Batch file -> cells: each comparison's spec with defaults, overrides, one matrix cell and the
command-line overrides merged in, validated before anything runs."""

from __future__ import annotations

import copy
import fnmatch
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bncli.batch.model import BatchFile, Comparison, Expectation
from bncli.errors import SpecError
from bncli.spec import Spec, _format_validation_error, parse_spec, resolve_data_paths
from bncli.yamlio import load_yaml_file

# metrics of every command: the per (lr, arm) summary over seeds (the mean is compared)
SUMMARY_METRICS = ("final_train_loss", "final_test_loss", "final_test_acc", "best_test_acc",
                   "best_test_loss", "steps_to_target", "n_diverged", "n_reached_target")


@dataclass
class Cell:
    """One comparison x matrix cell: a resolved spec and the commands to run on it."""

    name: str  # e.g. "activations[activation=relu,lr=0.1]"
    comparison: str
    values: dict[str, Any]  # the matrix values of this cell (dotted path -> value)
    spec: Spec
    commands: list[str]
    expect: list[Expectation] = field(default_factory=list)

    @property
    def folder(self) -> str:
        """A file-system-safe folder name for the cell."""
        return re.sub(r"[^A-Za-z0-9._=+\-]", "_", self.name.replace("[", "--").replace("]", ""))


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` merged into a copy of `base`, mappings recursively (lists and scalars replace)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def set_dotted(d: dict[str, Any], dotted: str, value: Any) -> None:
    node = d
    parts = dotted.split(".")
    for p in parts[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            node[p] = nxt
        node = nxt
    node[parts[-1]] = copy.deepcopy(value)


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "+".join(_short(v) for v in value)
    if isinstance(value, dict):
        return str(value.get("name", "custom"))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def cell_name(comparison: str, values: dict[str, Any]) -> str:
    if not values:
        return comparison
    return f"{comparison}[{','.join(f'{k.rsplit(chr(46), 1)[-1]}={_short(v)}' for k, v in values.items())}]"


def load_batch(path: Path) -> BatchFile:
    raw = load_yaml_file(path)
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: the top level must be a mapping with `comparisons:`")
    try:
        return BatchFile.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(_format_validation_error(str(path), exc)) from None


def _spec_source(path: Path, i: int, comp: Comparison) -> tuple[dict[str, Any], Path, str]:
    """(raw spec mapping, folder relative data paths resolve from, label for errors)."""
    label = f"{path}: comparisons.{i} ({comp.name})"
    if isinstance(comp.spec, dict):
        return comp.spec, path.parent, label
    spec_path = (path.parent / comp.spec).resolve()
    raw = load_yaml_file(spec_path)
    if not isinstance(raw, dict):
        raise SpecError(f"{label}: spec {comp.spec}: the top level must be a mapping")
    return raw, spec_path.parent, f"{label} (spec {comp.spec})"


def expand(
    path: Path,
    batch: BatchFile,
    cli_overrides: dict[str, Any] | None = None,
    only: list[str] | None = None,
) -> list[Cell]:
    """Every cell of every (selected) comparison, validated. Order: spec file < defaults <
    overrides < matrix cell < command-line options (--steps, --seeds, --threads, --device, --fuse)."""
    cells: list[Cell] = []
    for i, comp in enumerate(batch.comparisons):
        if only and not any(fnmatch.fnmatchcase(comp.name, pat) for pat in only):
            continue
        raw, base_dir, label = _spec_source(path, i, comp)
        merged = deep_merge(deep_merge(raw, batch.defaults), comp.overrides)
        axes = list(comp.matrix.items())
        for combo in itertools.product(*[vals for _, vals in axes]) if axes else [()]:
            values = {k: v for (k, _), v in zip(axes, combo)}
            d = copy.deepcopy(merged)
            for k, v in values.items():
                set_dotted(d, k, v)
            for k, v in (cli_overrides or {}).items():
                if v is not None:
                    set_dotted(d, k, v)
            name = cell_name(comp.name, values)
            where = label if not values else f"{label} {name}"
            spec = parse_spec(d, where)
            resolve_data_paths(spec, base_dir)
            cells.append(Cell(name, comp.name, values, spec, comp.commands, list(comp.expect)))
    if only and not cells:
        raise SpecError(f"{path}: --only {' '.join(only)} matches no comparison")
    return cells


def check_expectations(path: Path, cells: list[Cell]) -> None:
    """Expectations that could never be evaluated are batch-file errors, before anything runs:
    unknown metrics, arms the spec doesn't have, commands the comparison doesn't run, claims the
    commands don't judge."""
    from bncli.analyses import BY_COMMAND

    for cell in cells:
        arms = {a.name for a in cell.spec.arms}
        for k, e in enumerate(cell.expect):
            where = f"{path}: {cell.name}: expect.{k}"
            cmds = [e.command] if e.command else cell.commands
            if e.command and e.command not in cell.commands:
                raise SpecError(f"{where}.command: {e.command!r} is not run by this comparison "
                                f"({', '.join(cell.commands)})")
            for key in ("arm", "less_than_arm", "greater_than_arm", "diverged", "not_diverged"):
                name = getattr(e, key)
                if name is not None and name not in arms:
                    raise SpecError(f"{where}.{key}: no arm {name!r} in this spec "
                                    f"(arms: {', '.join(sorted(arms))})")
            if e.lr is not None and e.lr not in cell.spec.train.lr:
                raise SpecError(f"{where}.lr: {e.lr:g} is not one of this spec's learning rates "
                                f"({', '.join(f'{x:g}' for x in cell.spec.train.lr)})")
            if e.claim is not None and not any(e.claim in BY_COMMAND[c].claims for c in cmds):
                raise SpecError(f"{where}.claim: {e.claim} is not judged by {', '.join(cmds)}")
            if e.metric is not None:
                known = set(SUMMARY_METRICS)
                for c in cmds:
                    known.update(BY_COMMAND[c].metrics)
                if e.metric not in known:
                    import difflib

                    close = difflib.get_close_matches(e.metric, sorted(known), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise SpecError(f"{where}.metric: unknown metric {e.metric!r}{hint}; known for "
                                    f"{', '.join(cmds)}: {', '.join(sorted(known))}")
