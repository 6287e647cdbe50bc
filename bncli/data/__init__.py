"""Data: sources (a registry, one module each) -> an in-memory Dataset on the run's device, and
the seeded batch iterator. Names load lazily: spec.py reads the torch-free registry."""

from __future__ import annotations

from typing import Any

from bncli.data.registry import SOURCES, get_source, source_names

_BASE = ("Dataset", "RawData", "batch_indices", "load_data")


def __getattr__(name: str) -> Any:
    if name in _BASE:
        from bncli.data import base

        return getattr(base, name)
    raise AttributeError(f"module 'bncli.data' has no attribute {name!r}")


__all__ = ["SOURCES", "get_source", "source_names", *_BASE]
