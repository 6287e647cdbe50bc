"""Every sample config x subcommand gives the same `--json` as the golden files (timing aside).

The goldens were made with tests/golden/make_golden.py (12 steps, one thread). Floats are compared
to 1e-4 relative (the files keep 6 significant digits); numbers inside text to 4 digits, the way
notes print them; everything else exactly.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
import make_golden  # noqa: E402

NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def close(a: float, b: float, rel: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


def diff(a, b, path="$", rel=1e-4) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}: keys {sorted(set(a) ^ set(b))}"] if set(a) != set(b) else []
        for k in set(a) & set(b):
            out += diff(a[k], b[k], f"{path}.{k}", rel)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diff(x, y, f"{path}[{i}]", rel)]
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return [] if a == b else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return [] if close(float(a), float(b), rel) else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, str) and isinstance(b, str):
        na, nb = NUM.findall(a), NUM.findall(b)
        if NUM.sub("#", a) != NUM.sub("#", b) or len(na) != len(nb):
            return [f"{path}: {a!r} != {b!r}"]
        bad = [(x, y) for x, y in zip(na, nb) if not close(float(x), float(y), 2e-3)]
        return [f"{path}: {a!r} != {b!r}"] if bad else []
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


@pytest.mark.parametrize("config,command", make_golden.cases(), ids=lambda v: getattr(v, "stem", v))
def test_json_matches_golden(config: Path, command: str) -> None:
    path = make_golden.golden_path(config, command)
    with gzip.open(path, "rt", encoding="utf-8") as f:
        expected = json.load(f)
    got = make_golden.reduce(make_golden.run(config, command))
    problems = diff(got, expected)
    assert not problems, f"{config.stem} {command}: {len(problems)} differences, e.g.\n" + "\n".join(problems[:10])
