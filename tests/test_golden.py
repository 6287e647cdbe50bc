"""Every sample config x subcommand gives the same `--json` as the golden files (timing aside), on
any CPU.

The goldens were made with tests/golden/make_golden.py (12 steps, one thread). How numbers are
compared (scale-aware float32 tolerances, noise-by-construction quantities by bound, the measured
CPU spread per document in tests/golden/tolerances.json) is tests/golden_compare.py; verdicts,
names and structure are compared exactly.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_golden  # noqa: E402
from golden_compare import diff  # noqa: E402

TOLERANCES = json.loads((Path(__file__).resolve().parent / "golden" / "tolerances.json").read_text())


@pytest.mark.parametrize("config,command", make_golden.cases(), ids=lambda v: getattr(v, "stem", v))
def test_json_matches_golden(config: Path, command: str) -> None:
    path = make_golden.golden_path(config, command)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        expected = json.load(f)
    got = make_golden.reduce(make_golden.run(config, command))
    problems = diff(got, expected, TOLERANCES.get(f"{config.stem}.{command}", 0.0))
    assert not problems, f"{config.stem} {command}: {len(problems)} differences, e.g.\n" + "\n".join(problems[:10])


def test_verdicts_and_structure_are_exact() -> None:
    """The tolerances are on numbers only: a flipped verdict, a missing key or a shorter series is
    a difference whatever the document's tolerance; noise-by-construction values match by bound."""
    doc = {"claims": [{"verdict": "supported", "metrics": [{"arm_mean": 1e-7}]}],
           "jacobian": [{"grad_err": 1e-7}], "train_loss": [2.0, 1.0]}
    other = json.loads(json.dumps(doc))
    other["jacobian"][0]["grad_err"] = 3e-7  # rounding noise by construction: both below the bound
    other["claims"][0]["metrics"][0]["arm_mean"] = 2e-7
    assert diff(other, doc) == []
    flipped = json.loads(json.dumps(doc))
    flipped["claims"][0]["verdict"] = "refuted"
    assert diff(flipped, doc, 10.0)
    shorter = json.loads(json.dumps(doc))
    shorter["train_loss"] = [2.0]
    assert diff(shorter, doc, 10.0)
    moved = json.loads(json.dumps(doc))
    moved["train_loss"] = [2.0, 1.01]  # 0.5 % of the series' scale: beyond float32 noise
    assert diff(moved, doc) and not diff(moved, doc, 0.01)


def test_tolerances_cover_every_case_named() -> None:
    names = {f"{c.stem}.{cmd}" for c, cmd in make_golden.cases()}
    assert set(TOLERANCES) <= names
    assert all(0 < v <= 10 for v in TOLERANCES.values())
