"""The data-source registry: a source name -> the module that reads it (imported on first use).

A new source is one module in `bncli/data/` with `where(spec) -> str` (how errors name it) and
`load(spec, rng) -> RawData`, optionally `key_material(spec)` (what identifies its bytes for job
keys), `check(spec)` (cheap checks before anything is read), `OVERFLOW_HINT`, `TEST_LABELS`, and
`describe(spec) -> str`; plus one line here. This module imports nothing heavy (spec.py reads
the names)."""

from __future__ import annotations

import importlib
from types import ModuleType

SOURCES: dict[str, str] = {
    "synthetic": "bncli.data.synthetic",
    "digits": "bncli.data.digits",
    "npz": "bncli.data.npz",
    "mnist": "bncli.data.mnist",
    "fashion_mnist": "bncli.data.mnist",
    "cifar10": "bncli.data.cifar",
    "cifar100": "bncli.data.cifar",
}

IMAGE_SOURCES = ("mnist", "fashion_mnist", "cifar10", "cifar100")  # read from data.root

SOURCE_HELP = ("synthetic (generated), digits (scikit-learn's 8x8, no download), npz (your file, see "
               "path), or mnist, fashion_mnist, cifar10, cifar100 (the published files in a local "
               "folder, see root; bncli never downloads)")


def register_source(name: str, module: str) -> None:
    """Add a source at run time (a plugin; built-in sources are lines in SOURCES): `module` is
    imported on first use; the spec accepts `data.source: name` from now on."""
    from bncli.spec import refresh_registry_choices

    SOURCES[name] = module
    refresh_registry_choices()


def source_names() -> tuple[str, ...]:
    return tuple(SOURCES)


def get_source(name: str) -> ModuleType:
    """The module that reads source `name` (a KeyError names the known ones)."""
    try:
        return importlib.import_module(SOURCES[name])
    except KeyError:
        raise KeyError(f"unknown data source {name!r} (known: {', '.join(SOURCES)})") from None


def key_material(spec) -> object:
    """What, beyond the data spec, identifies a source's data (a file's bytes); None for none."""
    fn = getattr(get_source(spec.source), "key_material", None)
    return fn(spec) if fn is not None else None
