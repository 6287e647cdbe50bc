"""A result's files under an output folder: summary.json, spec.yaml, history.csv and its plots."""

from __future__ import annotations

import importlib
from pathlib import Path

from bncli.results import CommandResult
from bncli.spec import Spec, spec_to_yaml


def write_result_files(result: CommandResult, out_dir: Path, render_module: str | None = None) -> list[Path]:
    """Write every file of one command's result (atomically); return their paths."""
    from bncli.analyses import get_analysis
    from bncli.io import atomic_write_json, atomic_write_text
    from bncli.render.train import write_history_csv

    spec = Spec.model_validate(result.spec)
    atomic_write_json(out_dir / "summary.json", result.to_json())
    atomic_write_text(out_dir / "spec.yaml", spec_to_yaml(spec))
    written = [out_dir / "summary.json", out_dir / "spec.yaml",
               write_history_csv(result.runs, out_dir / "history.csv")]
    render = importlib.import_module(render_module or get_analysis(result.command).render)
    written += list(render.write_files(spec, result, out_dir))
    return written
