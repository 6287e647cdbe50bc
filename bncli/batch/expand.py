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
from bncli.spec_checks import check_user_spec
from bncli.yamlio import load_yaml_file

# the most cells one batch may expand to (a matrix is a product: 5 axes x 20 values is 3.2 M);
# counted before anything is expanded
MAX_CELLS = 10_000
MAX_FOLDER = 120  # a cell's folder name; longer ones are cut and get a digest of the full name

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
        """A file-system-safe folder name for the cell: never `.`/`..`, at most MAX_FOLDER
        characters (a longer one is cut and ends in a digest of the full name)."""
        import hashlib

        name = re.sub(r"[^A-Za-z0-9._=+\-]", "_", self.name.replace("[", "--").replace("]", ""))
        name = "_" + name[1:] if name.startswith(".") else name
        if len(name) > MAX_FOLDER:
            name = name[:MAX_FOLDER - 13] + "--" + hashlib.sha256(self.name.encode()).hexdigest()[:11]
        return name


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


def _leaf_paths(d: dict[str, Any], prefix: str = "") -> set[str]:
    """The dotted paths a mapping writes (its leaves; a list is one leaf)."""
    out: set[str] = set()
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out |= _leaf_paths(v, path + ".")
        else:
            out.add(path)
    return out


def _written(field: str, paths: set[str]) -> bool:
    """`field` (data.n_samples, arms.0.momentum) lies at, under or above one of `paths`."""
    return any(field == p or field.startswith(p + ".") or p.startswith(field + ".") for p in paths)


def _idle_in_file(raw: dict[str, Any]) -> set[str] | None:
    """The keys idle in a spec file on its own; None when the file alone is not a spec (the batch
    completes it)."""
    from bncli.spec_idle import idle_keys

    try:
        return {f for f, _ in idle_keys(parse_spec(copy.deepcopy(raw), "spec"))}
    except SpecError:
        return None


def _inherited_idle(cell: Spec, batch_paths: set[str], file_idle: set[str] | None) -> list[str]:
    """Idle keys of a cell that its spec file wrote, uses there, and an override made idle (a
    matrix over data.source leaves the synthetic source's sizes in the spec file): they pass. A
    key the batch itself writes, or one idle in the spec file alone (`file_idle`), is still refused."""
    from bncli.spec_idle import idle_keys

    if file_idle is None:  # nothing is inherited from a file that is no spec alone
        return []
    return [f for f, _ in idle_keys(cell) if not _written(f, batch_paths) and f not in file_idle]


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


def _check_keys(path: Path, raw: dict[str, Any]) -> None:
    """Unknown keys of the batch file itself (top level, each comparison) are named against the
    batch file's keys, not a spec's (pydantic's messages would suggest spec fields)."""
    import difflib

    places: list[tuple[str, Any, list[str]]] = [("", raw, list(BatchFile.model_fields))]
    comps = raw.get("comparisons")
    if isinstance(comps, list):
        places += [(f"comparisons.{i}.", c, list(Comparison.model_fields)) for i, c in enumerate(comps)
                   if isinstance(c, dict)]
    for where, d, known in places:
        for k in d:
            if k not in known:
                close = difflib.get_close_matches(str(k), known, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"valid here: {', '.join(known)}"
                raise SpecError(f"{path}: {where}{k}: unknown key of a batch file ({hint})")


def count_cells(batch: BatchFile, only: list[str] | None = None) -> int:
    """How many cells the (selected) comparisons expand to, without expanding them."""
    import math

    return sum(math.prod(len(v) for v in c.matrix.values()) for c in batch.comparisons
               if not only or any(fnmatch.fnmatchcase(c.name, pat) for pat in only))


def load_batch(path: Path) -> BatchFile:
    raw = load_yaml_file(path)
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: the top level must be a mapping with `comparisons:`")
    _check_keys(path, raw)
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
    overrides < matrix cell < command-line options (--steps, --seeds, --threads, --device, --fuse).

    Checked before anything is expanded or hashed: the number of cells (MAX_CELLS), and per cell
    that an npz data path is a regular file. Cells whose names coincide (values that print alike:
    lr 0.1 and 0.1000001, two inline data sets) get `#2`, `#3`, ... so each has its own folder."""
    n = count_cells(batch, only)
    if n > MAX_CELLS:
        raise SpecError(f"{path}: the matrices expand to {n:,} cells, more than the {MAX_CELLS:,} one batch "
                        "may hold; split the batch file or pick comparisons with --only")
    cells: list[Cell] = []
    folders: set[str] = set()
    for i, comp in enumerate(batch.comparisons):
        if only and not any(fnmatch.fnmatchcase(comp.name, pat) for pat in only):
            continue
        raw, base_dir, label = _spec_source(path, i, comp)
        merged = deep_merge(deep_merge(raw, batch.defaults), comp.overrides)
        axes = list(comp.matrix.items())
        file_idle = _idle_in_file(raw)  # once per comparison: the same file for every cell
        batch_paths = (_leaf_paths(batch.defaults) | _leaf_paths(comp.overrides) | set(comp.matrix)
                       | {k for k, v in (cli_overrides or {}).items() if v is not None})
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
            check_user_spec(spec, where, comp.commands, _inherited_idle(spec, batch_paths, file_idle))
            resolve_data_paths(spec, base_dir)
            if spec.data.path is not None:
                _check_data_file(spec.data.path, where)
            cell = Cell(name, comp.name, values, spec, comp.commands, list(comp.expect))
            k = 1
            while cell.folder.casefold() in folders:  # case too: macOS and Windows fold it
                k += 1
                cell.name = f"{name}#{k}"
            folders.add(cell.folder.casefold())
            cells.append(cell)
    if only and not cells:
        raise SpecError(f"{path}: --only {' '.join(only)} matches no comparison")
    return cells


def _check_data_file(p: Path, where: str) -> None:
    """A data path must be a regular file before anything reads or hashes it (/dev/zero, a FIFO or
    a folder would hang or fail late)."""
    import stat

    try:
        st = p.stat()
    except OSError as exc:
        raise SpecError(f"{where}: data.path: {p}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        what = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise SpecError(f"{where}: data.path: {p} is {what}; give an .npz file")


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
            if e.claim == "C9":
                _check_c9(where, cell.spec, e.arm)
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


def _check_c9(where: str, spec, arm: str | None) -> None:
    """A C9 expectation no arm of the spec can meet is an error now, not after every job ran: C9
    judges each ℓp arm against a plain arm and a batchnorm arm (bncli.analyses.c9)."""
    from bncli.analyses.c9 import c9_applies, c9_arms

    if not c9_applies(spec):
        raise SpecError(f"{where}.claim: C9 is judged only for an lp arm beside a plain arm and a batchnorm "
                        f"arm; this spec's arms ({', '.join(a.name for a in spec.arms)}) give no C9 verdict")
    judged = [a.name for a in c9_arms(spec)]
    if arm is not None and arm not in judged:
        raise SpecError(f"{where}.arm: C9 is judged for the lp arm(s) {', '.join(judged)}, not {arm!r}")
