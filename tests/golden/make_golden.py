"""Regenerate the golden `--json` documents of every sample config x subcommand (short runs).

Run from the repository root: `python tests/golden/make_golden.py`. Only do this when a change is
*meant* to change numbers, and say so in the commit. test_golden.py compares against these files.
"""

from __future__ import annotations

import gzip
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent
COMMANDS = ["train", "measure-ics", "lipschitz", "scale-check", "saturation"]
STEPS = 12
# fields that are timing or provenance, not results
# (`numerics`: how a record was computed; goldens are the single path, run with --fuse off, and
# fused records are checked against single ones in float64 by tests/test_fused.py)
DROP_KEYS = {"wall_s", "static_wall_s", "bncli_version", "spec", "schema_version", "command_line",
             "numerics"}


def reduce(doc):
    """Drop timing/provenance fields and round floats to 6 significant digits (stable, small)."""
    if isinstance(doc, dict):
        return {k: reduce(v) for k, v in doc.items() if k not in DROP_KEYS}
    if isinstance(doc, list):
        return [reduce(v) for v in doc]
    if isinstance(doc, float) and math.isfinite(doc) and doc != 0:
        return float(f"{doc:.6g}")
    return doc


def run(config: Path, command: str) -> dict:
    from typer.testing import CliRunner

    from bncli.cli import app

    res = CliRunner().invoke(app, [command, str(config), "--steps", str(STEPS), "--threads", "1", "--fuse", "off",
                                  "--json"])
    if res.exit_code != 0:
        raise SystemExit(f"{config} {command}: exit {res.exit_code}: {res.output[-500:]}")
    return json.loads(res.stdout)


def cases() -> list[tuple[Path, str]]:
    return [(c, cmd) for c in sorted((ROOT / "sample_configs").glob("*.yaml"))
            if not c.name.startswith(("batch_", "ci_")) for cmd in COMMANDS]


def golden_path(config: Path, command: str) -> Path:
    return GOLDEN / f"{config.stem}.{command}.json.gz"


if __name__ == "__main__":
    only = sys.argv[1:]
    for config, command in cases():
        if only and config.stem not in only:
            continue
        doc = reduce(run(config, command))
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        with open(golden_path(config, command), "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(text.encode("utf-8"))  # mtime 0: the same content gives the same bytes
        print(config.stem, command)
