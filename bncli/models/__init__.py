"""Models: families (a registry, one module each) build a Net whose normalization points are
named layer1..layerK. Names load lazily: spec.py reads the torch-free registry."""

from __future__ import annotations

from typing import Any

from bncli.models.registry import FAMILIES, family_names, get_family, point_names, widths

_BASE = ("Block", "Net", "NoiseInjection", "build_model", "copy_shared_state", "loss_fn_for")


def __getattr__(name: str) -> Any:
    if name in _BASE:
        from bncli.models import base

        return getattr(base, name)
    raise AttributeError(f"module 'bncli.models' has no attribute {name!r}")


__all__ = ["FAMILIES", "family_names", "get_family", "point_names", "widths", *_BASE]
