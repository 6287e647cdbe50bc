"""Regressions of the reliability review (issue 23): writes and deletes stay inside --out, resume
checks what it reuses, names and matrices are checked up front, handlers are restored."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bncli.cli import app

sys.path.insert(0, str(Path(__file__).parent))
from conftest import tiny_spec_dict  # noqa: E402

runner = CliRunner()
FAST = {"train": {"steps": 4, "eval_every": 2, "lr": 0.1, "batch_size": 32}}


def _spec(tmp_path: Path, **over) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(tiny_spec_dict(**{**FAST, **over})))
    return p


def _batch(tmp_path: Path, comparisons: list[dict], name: str = "b.yaml", **top) -> Path:
    _spec(tmp_path)
    p = tmp_path / name
    p.write_text(yaml.safe_dump({**top, "comparisons": comparisons}, sort_keys=False))
    return p


# ------------------------------------------------------------------ 1: handlers restored


def test_commands_restore_every_signal_handler_they_or_a_library_change(tmp_path, monkeypatch):
    import bncli.spec

    real = bncli.spec.load_spec

    def meddling(path):  # a library (ray.init) that installs its own handlers mid-command
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        return real(path)

    monkeypatch.setattr(bncli.spec, "load_spec", meddling)
    mine = lambda *_: None  # noqa: E731
    old_int, old_term = signal.signal(signal.SIGINT, mine), signal.signal(signal.SIGTERM, mine)
    try:
        res = runner.invoke(app, ["train", str(_spec(tmp_path)), "--steps", "2"])
        assert res.exit_code == 0, res.output
        assert signal.getsignal(signal.SIGINT) is mine and signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)
