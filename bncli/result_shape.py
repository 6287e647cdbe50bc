"""The shape of a saved result document (summary.json, batch.json), checked before it is read:
a tampered or damaged file (`runs: "x"`, `lr: "fast"`, a step of 1e400, `verdict: 123`) is one
SchemaError naming the file and the field, not an AttributeError deep in a renderer."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bncli.errors import SchemaError

_CURVES = ("train_loss", "train_eval_loss", "train_acc", "test_loss", "test_acc")
_MAX_STEP = 1 << 53  # an integer a float holds exactly: no run has more steps


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and abs(v) <= _MAX_STEP


class _Bad(Exception):
    pass


def _need(ok: bool, where: str, what: str, value: Any) -> None:
    if not ok:
        shown = repr(value)
        raise _Bad(f"{where}: {shown[:60] + ('...' if len(shown) > 60 else '')} is not {what}")


def _str(d: dict[str, Any], key: str, where: str, optional: bool = False) -> None:
    if optional and d.get(key) is None:
        return
    _need(isinstance(d.get(key), str), f"{where}.{key}", "a string", d.get(key))


def _finite(d: dict[str, Any], key: str, where: str) -> None:
    v = d.get(key)
    _need(_is_num(v) and math.isfinite(v), f"{where}.{key}", "a finite number", v)


def _list(v: Any, where: str) -> list[Any]:
    _need(isinstance(v, list), where, "a list", v)
    return v


def _dict(v: Any, where: str) -> dict[str, Any]:
    _need(isinstance(v, dict), where, "a mapping", v)
    return v


def _run(r: Any, where: str) -> None:
    r = _dict(r, where)
    _str(r, "arm", where)
    _finite(r, "lr", where)
    _need(_is_int(r.get("seed")), f"{where}.seed", "an integer", r.get("seed"))
    steps = _list(r.get("steps"), f"{where}.steps")
    for i, s in enumerate(steps):
        _need(_is_int(s), f"{where}.steps[{i}]", "a step (an integer)", s)
    for name in _CURVES:
        for i, v in enumerate(_list(r.get(name, []), f"{where}.{name}")):
            _need(v is None or _is_num(v), f"{where}.{name}[{i}]", "a number", v)
    for key in ("diverged_at", "steps_to_target"):
        _need(r.get(key) is None or _is_int(r.get(key)), f"{where}.{key}", "a step or null", r.get(key))
    _need(_is_int(r.get("steps_done", 0)), f"{where}.steps_done", "an integer", r.get("steps_done"))
    _need(r.get("wall_s") is None or _is_num(r.get("wall_s")), f"{where}.wall_s", "a number", r.get("wall_s"))
    _need(isinstance(r.get("interrupted", False), bool), f"{where}.interrupted", "true or false",
          r.get("interrupted"))
    _dict(r.get("probes", {}), f"{where}.probes")
    _str(r, "divergence_reason", where, optional=True)
    _str(r, "numerics", where, optional=True)


def _claim(c: Any, where: str) -> None:
    c = _dict(c, where)
    for key in ("claim", "statement", "verdict", "arm", "baseline", "rule"):
        _str(c, key, where)
    _finite(c, "lr", where)
    for i, m in enumerate(_list(c.get("metrics"), f"{where}.metrics")):
        m = _dict(m, f"{where}.metrics[{i}]")
        for key in ("name", "better", "points"):
            _str(m, key, f"{where}.metrics[{i}]")
        for key in ("arm_values", "baseline_values"):
            for j, v in enumerate(_list(m.get(key), f"{where}.metrics[{i}].{key}")):
                _need(v is None or _is_num(v), f"{where}.metrics[{i}].{key}[{j}]", "a number", v)


def _summary(s: Any, where: str) -> None:
    s = _dict(s, where)
    _str(s, "arm", where)
    _finite(s, "lr", where)


def check_command_doc(path: Path | str, doc: dict[str, Any]) -> None:
    """A subcommand's result document (summary.json, `--json`): SchemaError when its shape is not one
    bncli writes."""
    try:
        _str(doc, "command", "")
        spec = _dict(doc.get("spec"), "spec")
        if "name" in spec:
            _str(spec, "name", "spec")
        for key, check in (("runs", _run), ("claims", _claim), ("summary", _summary)):
            for i, item in enumerate(_list(doc.get(key), key)):
                check(item, f"{key}[{i}]")
        _need(isinstance(doc.get("interrupted", False), bool), "interrupted", "true or false", doc.get("interrupted"))
    except _Bad as exc:
        raise SchemaError(f"{path}: not a bncli result document: {str(exc).lstrip('.')}") from None


def check_batch_doc(path: Path | str, doc: dict[str, Any]) -> None:
    """A batch's batch.json: every comparison a mapping with a name, a command and well-formed claims."""
    try:
        for i, c in enumerate(_list(doc.get("comparisons", []), "comparisons")):
            where = f"comparisons[{i}]"
            c = _dict(c, where)
            _str(c, "name", where)
            _str(c, "command", where)
            _str(c, "path", where, optional=True)
            for j, claim in enumerate(_list(c.get("claims", []), f"{where}.claims")):
                _claim(claim, f"{where}.claims[{j}]")
        _list(doc.get("expectations", []), "expectations")
    except _Bad as exc:
        raise SchemaError(f"{path}: not a bncli batch document: {exc}") from None
