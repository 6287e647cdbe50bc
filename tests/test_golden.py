"""Every sample config x subcommand gives the same `--json` as the golden files (timing aside), on
any CPU: in float64 to 1e-9, in float32 the same structure and verdicts.

The goldens were made with tests/golden/make_golden.py (12 steps, one thread; `python
tests/golden/make_golden.py` regenerates them all). How numbers are compared (float64 to 1e-9 of
their siblings' scale, noise-by-construction quantities by bound; float32 documents reduced to
their skeleton) is tests/golden_compare.py; verdicts, names and structure are compared exactly.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_golden  # noqa: E402
from golden_compare import CHAOTIC, CHAOTIC_REL, REL, diff, skeleton, skeleton_diff  # noqa: E402

CASES = make_golden.cases()
IDS = [f"{c.stem}-{cmd}" for c, cmd in CASES]


@pytest.mark.parametrize("config,command", CASES, ids=IDS)
def test_float64_json_matches_golden(config: Path, command: str) -> None:
    got = make_golden.document(config, command, "float64")
    rel = CHAOTIC_REL if f"{config.stem}.{command}" in CHAOTIC else REL
    problems = diff(got, make_golden.load(config, command, "float64"), rel)
    assert not problems, f"{config.stem} {command}: {len(problems)} differences, e.g.\n" + "\n".join(problems[:10])


@pytest.mark.parametrize("config,command", CASES, ids=IDS)
def test_float32_json_has_the_golden_structure_and_verdicts(config: Path, command: str) -> None:
    got = make_golden.document(config, command, "float32")
    problems = skeleton_diff(got, make_golden.load(config, command, "float32"))
    assert not problems, f"{config.stem} {command}: {len(problems)} differences, e.g.\n" + "\n".join(problems[:10])


def test_verdicts_and_structure_are_exact() -> None:
    """The tolerance is on numbers only: a flipped verdict, a missing key or a shorter series is
    a difference; noise-by-construction values match by bound."""
    doc = {"claims": [{"verdict": "supported", "metrics": [{"arm_mean": 1e-12}]}],
           "jacobian": [{"grad_err": 1e-15}], "train_loss": [2.0, 1.0], "precision": "float64"}
    other = json.loads(json.dumps(doc))
    other["jacobian"][0]["grad_err"] = 3e-15  # rounding noise by construction: both below the bound
    other["claims"][0]["metrics"][0]["arm_mean"] = 2e-12
    other["train_loss"][1] = 1.0 + 1e-12  # float64 rounding, grown by a few steps
    assert diff(other, doc) == []
    flipped = json.loads(json.dumps(doc))
    flipped["claims"][0]["verdict"] = "refuted"
    assert diff(flipped, doc) and skeleton_diff(skeleton(flipped), skeleton(doc))
    shorter = json.loads(json.dumps(doc))
    shorter["train_loss"] = [2.0]
    assert diff(shorter, doc) and skeleton_diff(skeleton(shorter), skeleton(doc))
    moved = json.loads(json.dumps(doc))
    moved["train_loss"] = [2.0, 1.0 + 1e-8]  # beyond float64 rounding: a change
    assert diff(moved, doc)
    assert not skeleton_diff(skeleton(moved), skeleton(doc))  # float32: numbers are not compared
    broken = json.loads(json.dumps(doc))
    broken["jacobian"][0]["grad_err"] = 1e-3  # a residual that is no longer zero
    assert diff(broken, doc)


def test_chaotic_documents_name_cases() -> None:
    assert CHAOTIC <= {f"{c.stem}.{cmd}" for c, cmd in CASES}


def test_every_case_has_both_goldens() -> None:
    for config, command in CASES:
        for precision in make_golden.PRECISIONS:
            assert make_golden.golden_path(config, command, precision).is_file(), (config.stem, command, precision)
