"""Regenerate the golden `--json` documents of every sample config x subcommand (short runs).

Run from the repository root: `python tests/golden/make_golden.py`. Only do this when a change is
*meant* to change numbers, and say so in the commit. test_golden.py compares against these files.

Then `python tests/golden/make_golden.py --tolerances` reruns every case under each CPU capability
torch can emulate here (ATEN_CPU_CAPABILITY=default, avx2, and the machine's own) and writes
tolerances.json (merged with what it holds): per case, MARGIN x the largest difference from the golden file
(tests/golden_compare.py says how differences are measured). About a minute and a half per
capability.
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


def dump_all(folder: Path) -> None:
    """Every case's reduced document as plain JSON files in `folder` (for --tolerances)."""
    folder.mkdir(parents=True, exist_ok=True)
    for config, command in cases():
        (folder / f"{config.stem}.{command}.json").write_text(json.dumps(reduce(run(config, command))))


def _round_up(x: float) -> float:
    """Up to one significant digit (a tolerance file that reads at a glance)."""
    e = math.floor(math.log10(x))
    return float(f"{math.ceil(x / 10**e)}e{e}")


def write_tolerances(capabilities: list[str]) -> None:
    import os
    import subprocess
    import tempfile

    sys.path.insert(0, str(GOLDEN.parent))
    from golden_compare import ABS_NOISE, MARGIN, spread

    worst: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cap in capabilities:
            env = dict(os.environ)
            if cap != "native":
                env["ATEN_CPU_CAPABILITY"] = cap
            folder = Path(tmp) / cap
            subprocess.run([sys.executable, __file__, "--dump", str(folder)], env=env, check=True)
            for config, command in cases():
                with gzip.open(golden_path(config, command), "rt", encoding="utf-8") as f:
                    golden = json.load(f)
                got = json.loads((folder / f"{config.stem}.{command}.json").read_text())
                case = f"{config.stem}.{command}"
                worst[case] = max(worst.get(case, 0.0), spread(got, golden))
            print("measured", cap)
    # merged with what the file holds: a run on another CPU family (ARM, ...) only widens it
    path = GOLDEN / "tolerances.json"
    doc = json.loads(path.read_text()) if path.is_file() else {}
    for case, e in worst.items():
        if MARGIN * e > ABS_NOISE:
            doc[case] = max(doc.get(case, 0.0), _round_up(MARGIN * e))
    path.write_text(json.dumps(dict(sorted(doc.items())), indent=1) + "\n")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--dump"]:
        dump_all(Path(sys.argv[2]))
        raise SystemExit(0)
    if sys.argv[1:2] == ["--tolerances"]:
        write_tolerances(sys.argv[2:] or ["default", "avx2", "native"])
        raise SystemExit(0)
    only = sys.argv[1:]
    for config, command in cases():
        if only and config.stem not in only:
            continue
        doc = reduce(run(config, command))
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        with open(golden_path(config, command), "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
            f.write(text.encode("utf-8"))  # mtime 0: the same content gives the same bytes
        print(config.stem, command)
