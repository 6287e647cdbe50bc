"""How a run's `--json` is compared with its golden file, on any CPU.

float32 results differ between CPUs: torch picks AVX512, AVX2 or plain kernels at run time
(`ATEN_CPU_CAPABILITY`), and other vendors' BLAS sum in yet another order, each rounding by about
1e-7 relative per operation. Twelve training steps amplify that (a trajectory is a chaotic map:
the gap grows like ulp·λ^steps), to a few percent in ordinary specs and to O(1) in those made to
sit at the edge of stability. Tolerances measured on one machine's instruction sets do not carry
to another's. So the goldens are portable by construction:

- float64 documents (spec `precision: float64`, tests/golden/float64/) keep 12 significant digits
  and are compared to REL (1e-9) relative, where float64's rounding (1e-16) grown by the same
  amplification stays below ~2e-10 (measured: python tests/golden/make_golden.py --spread); the
  documents built at the edge of stability (CHAOTIC) are compared to 1e-6. A number's error is
  measured against the scale of its siblings: the largest |value| in the same series (a list of
  numbers), or in the same column of a list of rows (one key in every row); a lone number is its
  own scale;
- quantities that are rounding noise by construction (errors against a closed form, cosines and
  cross terms that are 0 in exact arithmetic, means of BN outputs, β that stays 0, a claim's
  metric values built from them) match when both are below NOISE_BOUND, whatever their digits;
  above it they are compared like any number. Labels derived from such noise (the worst layer,
  which α count as invariant) are compared by type;
- numbers inside text (notes print 4 digits) match to TEXT_REL;
- everything else (verdicts, names, booleans, None, keys, lengths) exactly;
- float32 documents (the default precision, tests/golden/float32/) keep only their structure and
  verdicts (skeleton): keys, lengths, the type of every value, and every `verdict` exactly. A
  verdict that flips between CPUs is a real finding, never a tolerance.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

REL = 1e-9  # float64 documents: relative to the siblings' scale
DIGITS = 12  # significant digits the float64 files keep (rounding: 5e-13 relative)
# documents whose float32 runs spread O(1) across CPU instruction sets (a plain arm at the edge of
# divergence, 25-layer deep linear nets, ℓp arms at large lrs): the trajectory amplifies rounding
# by ~1e7-1e8 in 12 steps, so float64's 1e-16 becomes up to ~5e-8 there (measured: 4.8e-8,
# saturation_deep_relu measure-ics, avx2 vs avx512). Their float64 numbers are compared to
# CHAOTIC_REL, still 1e5 below what the same documents spread in float32.
CHAOTIC_REL = 1e-6
# a claim's metric values aggregate record numbers the document holds (and compares at REL), and
# C5's include the BN Jacobian's float32 column (float32 by design: 7e-6 apart between plain and
# AVX-512 kernels on relu_mlp_synthetic): compared to METRICS_REL; the verdict stays exact
METRICS_REL = 1e-4
CHAOTIC = frozenset({
    "lp_norm_deep_linear.lipschitz", "lp_norm_deep_linear.measure-ics", "lp_norm_deep_linear.saturation",
    "lp_norm_deep_linear.scale-check", "lp_norm_deep_linear.train", "relu_mlp_synthetic.measure-ics",
    "relu_mlp_synthetic.scale-check", "saturation_deep_relu.lipschitz", "saturation_deep_relu.measure-ics",
    "saturation_deep_relu.saturation", "saturation_deep_relu.scale-check", "saturation_deep_relu.train",
    "saturation_sigmoid_wide.measure-ics",
})
TEXT_REL = 1e-3  # notes print 4 digits: one unit in the last may flip at a rounding boundary
# below this a noise-by-construction float64 quantity says only "zero up to rounding" (cancellation
# makes some large: Thm 4.1's gap, a difference of sums of squares, reaches 1.3e-7 in float64)
NOISE_BOUND = 1e-6
# the BN Jacobian probe's float32 column is computed in float32 also in a float64 run (by design)
FLOAT32_BOUND = 1e-4
# keys whose values are 0 in exact arithmetic (or sit at the rounding floor): their digits are
# the rounding of the CPU's kernels. `metrics`: a claim's metric values (the verdict is exact).
NOISE_KEYS = re.compile(
    r"^(jacobian_err_f64|thm41_gap\w*|cos_ones\w*|cos_yhat\w*|grad_err|eps0_grad_err|ratio_dev|eps0_ratio_dev|"
    r"out_rel|eval_out_rel|eps0_out_rel|out_abs|loss_abs|identity_rel_err|bias_cancel_rel|"
    r"d_mean|mean|cos_grad_w|cross|cos_init|cos_end|cross_rel|beta_mean|beta_std|metrics)$"
)
FLOAT32_KEYS = re.compile(r"^jacobian_err_f32$")
# labels derived from such noise: scale-check's (which α count as invariant, which layer is
# worst), and the share of positive β where β stays 0 in exact arithmetic (linear nets: the sign
# of rounding noise): compared by type only, as keys and as a row's `metric`
DERIVED_KEYS = frozenset({"status", "worst_layer", "invariant_alphas", "beta_pos"})
NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
VERDICT_KEYS = frozenset({"verdict"})  # kept exactly in float32 skeletons


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


def _leaves(a: Any, b: Any, path: str, scale: float, noise: float) -> Iterator[tuple]:
    """(kind, path, a, b, scale, noise) for every leaf pair; kind 'structure' for a key set or
    length that differs (then a describes it)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            yield ("structure", path, f"keys {sorted(set(a) ^ set(b))}", None, 0.0, 0.0)
        for k in sorted(set(a) & set(b)):
            if k in DERIVED_KEYS:
                yield ("derived", f"{path}.{k}", a[k], b[k], 0.0, 0.0)
                continue
            yield from _leaves(a[k], b[k], f"{path}.{k}", 0.0, _bound(k, noise))
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield ("structure", path, f"length {len(a)} != {len(b)}", None, 0.0, 0.0)
            return
        if a and all(isinstance(x, dict) for x in a + b):
            # rows: a key's scale is its column's, over every row of both documents
            cols: dict[str, float] = {}
            for r in a + b:
                for k, v in r.items():
                    cols[k] = max(cols.get(k, 0.0), _scale(v))
            for i, (x, y) in enumerate(zip(a, b)):
                if set(x) != set(y):
                    yield ("structure", f"{path}[{i}]", f"keys {sorted(set(x) ^ set(y))}", None, 0.0, 0.0)
                derived_row = x.get("metric") in DERIVED_KEYS
                for k in sorted(set(x) & set(y)):
                    if k in DERIVED_KEYS or (derived_row and k == "values"):
                        yield ("derived", f"{path}[{i}].{k}", x[k], y[k], 0.0, 0.0)
                        continue
                    yield from _leaves(x[k], y[k], f"{path}[{i}].{k}", cols.get(k, 0.0), _bound(k, noise))
            return
        s = max(scale, _scale(a, b))  # a series: its largest |value| is the scale
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _leaves(x, y, f"{path}[{i}]", s, noise)
        return
    yield ("leaf", path, a, b, scale, noise)


def _bound(key: str, inherited: float) -> float:
    if FLOAT32_KEYS.match(key):
        return max(inherited, FLOAT32_BOUND)
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
    if noise > 0:  # such quantities are ratios of O(1) operands (relative errors, cosines, gaps):
        scale = max(scale, 1.0)  # their rounding is absolute, ~1e-15 x the cancellation, not relative
    return abs(a - b) / max(scale, abs(a), abs(b))


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _text_ok(a: str, b: str) -> bool:
    na, nb = NUM.findall(a), NUM.findall(b)
    if NUM.sub("#", a) != NUM.sub("#", b) or len(na) != len(nb):
        return False
    for x, y in zip(na, nb):
        fx, fy = float(x), float(y)
        if fx == fy or (abs(fx) < NOISE_BOUND and abs(fy) < NOISE_BOUND):
            continue
        if not math.isclose(fx, fy, rel_tol=TEXT_REL):
            return False
    return True


def diff(a: Any, b: Any, rel: float = REL) -> list[str]:
    """The differences between a run's float64 document `a` and its golden `b` (empty: they
    match); `rel`: CHAOTIC_REL for the documents in CHAOTIC."""
    out = []
    for kind, path, x, y, scale, noise in _leaves(a, b, "$", 0.0, 0.0):
        if kind == "structure":
            out.append(f"{path}: {x}")
        elif kind == "derived":
            if type(x) is not type(y):
                out.append(f"{path}: {x!r} != {y!r}")
        elif _is_number(x) and _is_number(y):
            limit = max(rel, METRICS_REL) if ".metrics[" in path else rel
            if number_error(float(x), float(y), scale, noise) > limit:
                out.append(f"{path}: {x!r} != {y!r}")
        elif isinstance(x, str) and isinstance(y, str):
            if x != y and not _text_ok(x, y):
                out.append(f"{path}: {x!r} != {y!r}")
        elif x != y or isinstance(x, bool) != isinstance(y, bool):
            out.append(f"{path}: {x!r} != {y!r}")
    return out


def spread(a: Any, b: Any) -> float:
    """The largest number_error between two float64 documents of one case (what REL must cover)."""
    worst = 0.0
    for kind, _path, x, y, scale, noise in _leaves(a, b, "$", 0.0, 0.0):
        if kind == "leaf" and _is_number(x) and _is_number(y):
            worst = max(worst, number_error(float(x), float(y), scale, noise))
    return worst


def skeleton(doc: Any) -> Any:
    """A float32 document's structure and verdicts: keys, lengths, the type of every value, and
    every `verdict` as it is. Labels derived from noise (DERIVED_KEYS: which α count as invariant
    varies in length between CPUs) keep only their type."""
    if isinstance(doc, dict):
        derived_row = doc.get("metric") in DERIVED_KEYS
        return {k: (v if k in VERDICT_KEYS and isinstance(v, str)
                    else type(v).__name__ if k in DERIVED_KEYS or (derived_row and k == "values")
                    else skeleton(v)) for k, v in doc.items()}
    if isinstance(doc, list):
        return [skeleton(v) for v in doc]
    if isinstance(doc, bool):
        return "bool"
    if _is_number(doc):
        return "number"
    if isinstance(doc, str):
        return "text"
    return doc  # None


def skeleton_diff(a: Any, b: Any, path: str = "$") -> list[str]:
    """The differences between two skeletons (empty: the same structure and verdicts)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}: keys {sorted(set(a) ^ set(b))}"] if set(a) != set(b) else []
        for k in sorted(set(a) & set(b)):
            out += skeleton_diff(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in skeleton_diff(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]
