"""Saved results, read back: a subcommand's (summary.json or its folder) or a batch's (batch.json
or its folder) as one value, for `bncli compare`, the exports and `bncli.load`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bncli.errors import SchemaError, UsageError
from bncli.results import Claim, CommandResult


@dataclass(frozen=True)
class Comparison:
    """One comparison x command of a batch: its verdicts, and its full result when its folder
    (summary.json) is there."""

    name: str
    command: str
    claims: list[Claim]
    result: CommandResult | None = None
    path: str | None = None


@dataclass(frozen=True)
class BatchResult:
    """A batch's results: batch.json and, when loaded from its folder, every comparison's result."""

    doc: dict[str, Any]
    comparisons: list[Comparison]
    folder: Path | None = None

    @property
    def expectations(self) -> list[dict[str, Any]]:
        return list(self.doc.get("expectations", []))

    @property
    def exit_code(self) -> int | None:
        return self.doc.get("exit_code")

    def to_json(self) -> dict[str, Any]:
        return self.doc

    def to_pandas(self) -> Any:
        """Every curve of every comparison, long format (comparison, command, run, arm, lr, seed,
        step, metric, value). Needs pandas (`pip install bncli[pandas]`)."""
        from bncli.frames import batch_frame

        return batch_frame(self)

    def claims_frame(self) -> Any:
        """One row per comparison x claim x lr x arm (bncli.frames.CLAIM_COLUMNS after comparison,
        command)."""
        from bncli.frames import batch_claims_frame

        return batch_claims_frame(self)

    def metrics_frame(self) -> Any:
        """One row per comparison x claim x metric: every number behind each verdict."""
        from bncli.frames import batch_metrics_frame

        return batch_metrics_frame(self)

    def __repr__(self) -> str:
        """At most 20 lines: the batch, its exit code and one row per verdict."""
        from bncli.render.repr_text import result_repr

        return result_repr(self)

    def _repr_html_(self) -> str:
        from bncli.frames import verdict_grid_html

        return verdict_grid_html(self)


@dataclass
class _Found:
    kind: str  # "single" | "batch"
    path: Path
    doc: dict[str, Any] = field(default_factory=dict)


def _locate(path: Path) -> _Found:
    from bncli.render.report import _read_json

    path = Path(path)
    if path.is_dir():
        for name, kind in (("batch.json", "batch"), ("summary.json", "single")):
            if (path / name).is_file():
                return _Found(kind, path / name, _read_json(path / name))
        raise UsageError(f"{path}: holds neither summary.json (a subcommand's --out) nor batch.json "
                         "(a batch's --out)")
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    doc = _read_json(path)
    return _Found("batch" if doc.get("kind") == "batch" else "single", path, doc)


def load_result(path: str | Path) -> CommandResult | BatchResult:
    """A result folder or JSON document (summary.json, batch.json, or a `--json` output saved to a
    file) as a CommandResult or a BatchResult. Another schema_version is a SchemaError (exit 2)."""
    from bncli.render.report import _check_version
    from bncli.result_shape import check_batch_doc, check_command_doc

    found = _locate(Path(path))
    _check_version(found.path, found.doc)
    if found.kind == "single":
        check_command_doc(found.path, found.doc)
        try:
            return CommandResult.from_json(found.doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"{found.path}: not a bncli result document ({type(exc).__name__}: {exc})") from None
    check_batch_doc(found.path, found.doc)
    folder = found.path.parent
    comps = []
    for c in found.doc.get("comparisons", []):
        if not isinstance(c, dict):
            continue
        result = None
        rel = c.get("path")
        if rel and (folder / rel / "summary.json").is_file():
            loaded = load_result(folder / rel / "summary.json")
            result = loaded if isinstance(loaded, CommandResult) else None
        claims = result.claims if result is not None else [Claim.from_json(x) for x in c.get("claims", [])]
        comps.append(Comparison(str(c.get("name", "?")), str(c.get("command", "?")), claims, result, rel))
    return BatchResult(found.doc, comps, folder)


def named_results(loaded: CommandResult | BatchResult) -> list[tuple[str, CommandResult]]:
    """(comparison name, result) of every result with runs: a batch's comparisons (named
    `<comparison>/<command>`), or a subcommand's (named `<spec name>/<command>`)."""
    if isinstance(loaded, CommandResult):
        return [(f"{loaded.spec.get('name', 'result')}/{loaded.command}", loaded)]
    return [(f"{c.name}/{c.command}", c.result) for c in loaded.comparisons if c.result is not None]
