"""How a run's `--json` is compared with its golden file, on any CPU.

float32 results differ between CPUs: torch picks AVX512, AVX2 or plain kernels at run time
(`ATEN_CPU_CAPABILITY`), whose sums round in another order, by about 1e-7 relative per operation.
Twelve training steps amplify that: a trajectory is a chaotic map, so the gap grows like
ulp·λ^steps, to a few percent in ordinary specs and to O(1) in those made to sit at the edge of
stability (saturation_deep_relu, a plain arm that diverges). So numbers are compared the way the
physics allows, not digit by digit:

- a number's error is measured against the scale of its siblings: the largest |value| in the
  same series (a list of numbers), or in the same column of a list of rows (one key in every
  row); a lone number is its own scale. It must be within ABS_NOISE of that scale (float32 noise
  of a short run), or within the measured CPU spread of its quantity (tolerances.json, below);
- quantities that are rounding noise by construction (errors against a closed form, cosines and
  cross terms that are 0 in exact arithmetic, means of BN outputs, β that stays 0) match when
  both are below NOISE_BOUND, whatever their digits; above it they are compared like any number;
- numbers inside text (notes) match to TEXT_REL, or the document's largest spread;
- everything else (verdicts, names, booleans, None, keys, lengths) exactly. A verdict that flips
  between CPUs is a real finding, never a tolerance.

tests/golden/tolerances.json holds, per golden document, MARGIN × the largest error measured
when every case ran under the CPU capabilities torch can emulate (`python
tests/golden/make_golden.py --tolerances`: default, avx2 and the machine's own), where that
exceeds ABS_NOISE. Per document, not per quantity: one chaotic trajectory moves all its numbers,
and a third CPU's gap is not the two measured ones' per quantity (checked: per-quantity spreads
of two capabilities missed the third).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

REL = 1e-4  # the files keep 6 significant digits
ABS_NOISE = 1e-3  # float32 noise of a short run, relative to the siblings' scale
TEXT_REL = 2e-3  # notes print 4 digits
NOISE_BOUND = 1e-3  # below this a noise-by-construction quantity says only "zero up to rounding"
GRAD_NOISE_BOUND = 1e-2  # gradient-law errors: scale-check's grad_tolerance (what its verdict allows)
TEXT_NOISE_BOUND = 1e-2  # numbers in notes below this are such errors, printed
CHAOTIC = 0.5  # a document whose measured spread is O(1): its notes' sign words are noise too
MARGIN = 4.0  # tolerances.json: this many times the spread measured across CPU capabilities
# keys whose values are 0 in exact arithmetic (or sit at the rounding floor): their digits are
# the rounding of the CPU's kernels. `metrics`: a claim's metric values (the verdict is exact).
NOISE_KEYS = re.compile(
    r"^(jacobian_err\w*|thm41_gap\w*|cos_ones\w*|cos_yhat\w*|"
    r"out_rel|eval_out_rel|eps0_out_rel|out_abs|loss_abs|identity_rel_err|bias_cancel_rel|"
    r"d_mean|mean|cos_grad_w|cross|cos_init|cos_end|cross_rel|beta_mean|beta_std|metrics)$"
)
GRAD_NOISE_KEYS = re.compile(r"^(grad_err|eps0_grad_err|ratio_dev|eps0_ratio_dev)$")
# labels scale-check derives by comparing such noise with its tolerance (which α count as
# invariant, which layer is worst): compared by type only
DERIVED_KEYS = frozenset({"status", "worst_layer", "invariant_alphas"})
SIGN_WORDS = re.compile(r"\b(positive|negative)\b")
# in a chaotic document (spread >= CHAOTIC) a claim's per-metric direction, the leaning of an
# exploratory claim and its verdicts at partial budgets are decided by numbers that are noise
# there: compared by type. claims[].verdict stays exact everywhere.
CHAOTIC_LABELS = frozenset({"points", "leaning", "budgets"})
NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
LAYER = re.compile(r"layer\d+")


def _numbers(x: Any) -> list[float]:
    if isinstance(x, bool) or x is None:
        return []
    if isinstance(x, (int, float)):
        return [float(x)] if math.isfinite(float(x)) else []
    if isinstance(x, list):
        return [v for item in x for v in _numbers(item)]
    return []


def _scale(*xs: Any) -> float:
    return max((abs(v) for x in xs for v in _numbers(x)), default=0.0)


def _key(pattern: str, k: str) -> str:
    return f"{pattern}.{LAYER.sub('layer*', k)}"


def _leaves(a: Any, b: Any, path: str, pattern: str, scale: float, noise: float) -> Iterator[tuple]:
    """(kind, path, pattern, a, b, scale, noise) for every leaf pair; kind 'structure' for a key
    set or length that differs (then a and b describe it)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            yield ("structure", path, pattern, f"keys {sorted(set(a) ^ set(b))}", None, 0.0, 0.0)
        for k in sorted(set(a) & set(b)):
            if k in DERIVED_KEYS:
                yield ("derived", f"{path}.{k}", pattern, a[k], b[k], 0.0, 0.0)
                continue
            yield from _leaves(a[k], b[k], f"{path}.{k}", _key(pattern, k), 0.0, _bound(k, noise))
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield ("structure", path, pattern, f"length {len(a)} != {len(b)}", None, 0.0, 0.0)
            return
        if a and all(isinstance(x, dict) for x in a + b):
            # rows: a key's scale is its column's, over every row of both documents
            cols: dict[str, float] = {}
            for r in a + b:
                for k, v in r.items():
                    cols[k] = max(cols.get(k, 0.0), _scale(v))
            for i, (x, y) in enumerate(zip(a, b)):
                if set(x) != set(y):
                    yield ("structure", f"{path}[{i}]", pattern, f"keys {sorted(set(x) ^ set(y))}", None, 0.0,
                           0.0)
                for k in sorted(set(x) & set(y)):
                    if k in DERIVED_KEYS:
                        yield ("derived", f"{path}[{i}].{k}", pattern, x[k], y[k], 0.0, 0.0)
                        continue
                    yield from _leaves(x[k], y[k], f"{path}[{i}].{k}", _key(pattern, k), cols.get(k, 0.0),
                                       _bound(k, noise))
            return
        s = max(scale, _scale(a, b))  # a series: its largest |value| is the scale
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _leaves(x, y, f"{path}[{i}]", pattern, s, noise)
        return
    yield ("leaf", path, pattern, a, b, scale, noise)


def _bound(key: str, inherited: float) -> float:
    if GRAD_NOISE_KEYS.match(key):
        return max(inherited, GRAD_NOISE_BOUND)
    if NOISE_KEYS.match(key):
        return max(inherited, NOISE_BOUND)
    return inherited


def number_error(a: float, b: float, scale: float, noise: float = 0.0) -> float:
    """0 when a and b agree; else |a − b| relative to the siblings' scale (inf: not comparable)."""
    if a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    if abs(a) < noise and abs(b) < noise:  # rounding noise by construction, both
        return 0.0
    err = abs(a - b) - REL * max(abs(a), abs(b))  # the 6 digits the files keep
    return max(err, 0.0) / max(scale, abs(a), abs(b))


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _text_ok(a: str, b: str, rel: float) -> bool:
    if rel >= CHAOTIC:
        a, b = SIGN_WORDS.sub("±", a), SIGN_WORDS.sub("±", b)
    na, nb = NUM.findall(a), NUM.findall(b)
    if NUM.sub("#", a) != NUM.sub("#", b) or len(na) != len(nb):
        return False
    for x, y in zip(na, nb):
        fx, fy = float(x), float(y)
        if fx == fy or (abs(fx) < TEXT_NOISE_BOUND and abs(fy) < TEXT_NOISE_BOUND):
            continue
        if not math.isclose(fx, fy, rel_tol=rel):
            return False
    return True


def diff(a: Any, b: Any, tolerance: float = 0.0) -> list[str]:
    """The differences between a run's document `a` and its golden `b` (empty: they match).
    `tolerance`: this document's measured CPU spread (tolerances.json), if above ABS_NOISE."""
    tol = max(ABS_NOISE, tolerance)
    text_rel = max(TEXT_REL, tol)
    out = []
    for kind, path, _pattern, x, y, scale, noise in _leaves(a, b, "$", "", 0.0, 0.0):
        if kind == "structure":
            if not (tol >= CHAOTIC and _chaotic_label(path)):
                out.append(f"{path}: {x}")
        elif kind == "derived" or (tol >= CHAOTIC and _chaotic_label(path)):
            if type(x) is not type(y):
                out.append(f"{path}: {x!r} != {y!r}")
        elif _is_number(x) and _is_number(y):
            if number_error(float(x), float(y), scale, noise) > tol:
                out.append(f"{path}: {x!r} != {y!r}")
        elif isinstance(x, str) and isinstance(y, str):
            if x != y and not _text_ok(x, y, text_rel):
                out.append(f"{path}: {x!r} != {y!r}")
        elif x != y or isinstance(x, bool) != isinstance(y, bool):
            out.append(f"{path}: {x!r} != {y!r}")
    return out


def _chaotic_label(path: str) -> bool:
    return any(part.split("[")[0] in CHAOTIC_LABELS for part in path.split("."))


def spread(a: Any, b: Any) -> float:
    """The largest number_error between two documents of one case (the measured CPU spread that
    tolerances.json keeps). Structural differences are not spread: diff reports them."""
    worst = 0.0
    for kind, _path, _pattern, x, y, scale, noise in _leaves(a, b, "$", "", 0.0, 0.0):
        if kind == "leaf" and _is_number(x) and _is_number(y):
            worst = max(worst, number_error(float(x), float(y), scale, noise))
    return worst
