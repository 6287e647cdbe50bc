"""Regenerate the golden `--json` documents of every sample config x subcommand (short runs).

Run from the repository root:

    python tests/golden/make_golden.py               # every case (about 4 minutes on one core)
    python tests/golden/make_golden.py cnn_digits    # only these configs

Only do this when a change is *meant* to change results (a new verdict rule, a probe's new
field), and say so in the commit; `git diff --stat tests/golden` then shows which cases moved.
test_golden.py compares against these files (tests/golden_compare.py says how).

Each case is written twice: float64/NAME.json.gz, the run with `--precision float64` (12
significant digits, compared to 1e-9), and float32/NAME.json.gz, the default precision reduced to
its structure and verdicts (golden_compare.skeleton).

`python tests/golden/make_golden.py --spread [CAPABILITY ...]` reruns every float64 case under
the CPU capabilities torch can emulate here (ATEN_CPU_CAPABILITY=default, avx2, avx512, and the
machine's own) and prints each case's largest difference from its golden file: what REL must
cover (nothing is written).
"""

from __future__ import annotations

import gzip
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent
sys.path.insert(0, str(GOLDEN.parent))
from golden_compare import DIGITS, skeleton, spread  # noqa: E402

COMMANDS = ["train", "measure-ics", "lipschitz", "scale-check", "saturation"]
PRECISIONS = ("float64", "float32")
STEPS = 12
# fields that are timing or provenance, not results
# (`numerics`: how a record was computed; goldens are the single path, run with --fuse off, and
# fused records are checked against single ones in float64 by tests/test_fused.py)
DROP_KEYS = {"wall_s", "static_wall_s", "bncli_version", "spec", "schema_version", "command_line",
             "numerics"}


def reduce(doc, digits: int = DIGITS):
    """Drop timing/provenance fields and round floats to `digits` significant digits."""
    if isinstance(doc, dict):
        return {k: reduce(v, digits) for k, v in doc.items() if k not in DROP_KEYS}
    if isinstance(doc, list):
        return [reduce(v, digits) for v in doc]
    if isinstance(doc, float) and math.isfinite(doc) and doc != 0:
        return float(f"{doc:.{digits}g}")
    return doc


def run(config: Path, command: str, precision: str = "float64") -> dict:
    from typer.testing import CliRunner

    from bncli.cli import app

    res = CliRunner().invoke(app, [command, str(config), "--steps", str(STEPS), "--threads", "1", "--fuse", "off",
                                  "--precision", precision, "--json"])
    if res.exit_code != 0:
        raise SystemExit(f"{config} {command}: exit {res.exit_code}: {res.output[-500:]}")
    return json.loads(res.stdout)


def document(config: Path, command: str, precision: str) -> dict:
    """What the golden file of a case holds: float64 reduced, float32 as a skeleton."""
    doc = reduce(run(config, command, precision))
    return doc if precision == "float64" else skeleton(doc)


def cases() -> list[tuple[Path, str]]:
    return [(c, cmd) for c in sorted((ROOT / "sample_configs").glob("*.yaml"))
            if not c.name.startswith(("batch_", "ci_")) for cmd in COMMANDS]


def golden_path(config: Path, command: str, precision: str = "float64") -> Path:
    return GOLDEN / precision / f"{config.stem}.{command}.json.gz"


def load(config: Path, command: str, precision: str = "float64") -> dict:
    with gzip.open(golden_path(config, command, precision), "rt", encoding="utf-8") as f:
        return json.load(f)


def write(config: Path, command: str, precision: str, doc: dict) -> None:
    path = golden_path(config, command, precision)
    path.parent.mkdir(exist_ok=True)
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(text.encode("utf-8"))  # mtime 0: the same content gives the same bytes


def dump_all(folder: Path) -> None:
    """Every case's float64 document as plain JSON files in `folder` (for --spread)."""
    folder.mkdir(parents=True, exist_ok=True)
    for config, command in cases():
        (folder / f"{config.stem}.{command}.json").write_text(json.dumps(document(config, command, "float64")))


def measure_spread(capabilities: list[str]) -> None:
    import os
    import subprocess
    import tempfile

    worst: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cap in capabilities:
            env = dict(os.environ)
            if cap != "native":
                env["ATEN_CPU_CAPABILITY"] = cap
            folder = Path(tmp) / cap
            subprocess.run([sys.executable, __file__, "--dump", str(folder)], env=env, check=True)
            for config, command in cases():
                got = json.loads((folder / f"{config.stem}.{command}.json").read_text())
                case = f"{config.stem}.{command}"
                worst[case] = max(worst.get(case, 0.0), spread(got, load(config, command)))
            print("measured", cap, flush=True)
    for case, e in sorted(worst.items(), key=lambda kv: -kv[1]):
        print(f"{e:.1e}  {case}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--dump"]:
        dump_all(Path(sys.argv[2]))
        raise SystemExit(0)
    if sys.argv[1:2] == ["--spread"]:
        measure_spread(sys.argv[2:] or ["default", "avx2", "avx512", "native"])
        raise SystemExit(0)
    only = sys.argv[1:]
    for config, command in cases():
        if only and config.stem not in only:
            continue
        for precision in PRECISIONS:
            write(config, command, precision, document(config, command, precision))
        print(config.stem, command, flush=True)
