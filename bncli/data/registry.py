"""The data-source registry: a source name -> its entry (the module that reads it, imported on
first use, and what the spec needs to know about it).

A new source is one module in `bncli/data/` with `where(spec) -> str` (how errors name it) and
`load(spec, rng) -> RawData`, optionally `key_material(spec)` (what identifies its bytes for job
keys), `check(spec)` (cheap checks before anything is read), `OVERFLOW_HINT`, `TEST_LABELS`, and
`describe(spec) -> str`; plus one `register_source` line here (or in a plugin). Its entry declares
the `data.*` fields it reads, whether it reads `root`, supports `augment`, and its help line: the
spec derives its checks and help from these. This module imports nothing heavy and nothing of
the spec (the spec listens to SOURCES for new names)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from bncli.registry import Registry


@dataclass(frozen=True)
class SourceInfo:
    """One data source and its capabilities."""

    name: str
    module: str  # imported on first use
    help: str  # what it is, a phrase ("generated"): `data.source`'s help and README's table
    fields: tuple[str, ...] = ()  # data.* fields only some sources read, that this one reads
    requires: tuple[str, ...] = ()  # of those, the ones it cannot do without (npz: path)
    reads_root: bool = False  # published files in a local folder (data.root; uint8 pixels)
    augment: bool = False  # data.augment: random crop + flip of each training batch
    infers_task: bool = False  # task: auto is decided from the data (else: classification)
    size_field: str = "data.n_samples"  # the field that sets how many examples (memory estimate)
    params: dict[str, Any] = field(default_factory=dict)  # what its module reads (an IDX set's files)


# MNIST's four IDX files (torchvision's names); an IDX data set is data: idx_source(...)
MNIST_FILES = {"x": "train-images-idx3-ubyte", "y": "train-labels-idx1-ubyte",
               "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}


def idx_source(name: str, help: str, subdir: str, where_to_get: str, n_classes: int = 10,
               files: dict[str, str] | None = None, label_offset: int = 0) -> SourceInfo:
    """The entry of an IDX image data set read by bncli.data.mnist: its folder under data.root
    (ROOT/<subdir>/raw/ or ROOT), its four files' names, where to download them, its classes and
    the first label (EMNIST letters count from 1). MNIST, Fashion-MNIST, an EMNIST: one call each."""
    return SourceInfo(name, "bncli.data.mnist", help, fields=("root",), reads_root=True,
                      size_field="data.subset",
                      params={"subdir": subdir, "where_to_get": where_to_get, "n_classes": n_classes,
                              "files": dict(files or MNIST_FILES), "label_offset": label_offset})


SOURCES: Registry[SourceInfo] = Registry("data source")


def register_source(name: str | SourceInfo, module: str | None = None, **capabilities: object) -> SourceInfo:
    """Add a source (bncli's own below; a plugin's the same way): `module` is imported on first
    use; the spec accepts `data.source: name` from now on. Give a SourceInfo, or its name, module
    and capabilities (help=..., fields=..., reads_root=..., ...)."""
    if isinstance(name, SourceInfo):
        info = name
    else:
        if module is None:
            raise ValueError("register_source(name, module, ...): give the module that reads it")
        capabilities.setdefault("help", module)
        info = SourceInfo(name, module, **capabilities)  # type: ignore[arg-type]
    return SOURCES.register(info.name, info, replace=bool(capabilities.pop("replace", False)))


_IMAGE = dict(fields=("root",), reads_root=True, size_field="data.subset")
for _info in (
    SourceInfo("synthetic", "bncli.data.synthetic", "generated",
               fields=("n_samples", "n_features", "n_classes", "n_outputs", "class_sep", "noise")),
    SourceInfo("digits", "bncli.data.digits", "scikit-learn's 8x8, no download", fields=("shape",)),
    SourceInfo("npz", "bncli.data.npz", "your file, see path", fields=("path",), requires=("path",),
               infers_task=True, size_field="data.path"),
    idx_source("mnist", "the published files in a local folder, see root; bncli never downloads",
               "MNIST", "https://ossci-datasets.s3.amazonaws.com/mnist/ (torchvision's mirror of "
               "http://yann.lecun.com/exdb/mnist/)"),
    idx_source("fashion_mnist", "as mnist", "FashionMNIST",
               "https://github.com/zalandoresearch/fashion-mnist (data/fashion/)"),
    SourceInfo("cifar10", "bncli.data.cifar", "as mnist; augment: crop + flip", augment=True, **_IMAGE),
    SourceInfo("cifar100", "bncli.data.cifar", "as cifar10", augment=True, **_IMAGE),
):
    register_source(_info)


def source_help() -> str:
    """`data.source`'s help: every registered source's phrase."""
    return ", ".join(f"{n} ({s.help})" for n, s in SOURCES.items())


def source_names() -> tuple[str, ...]:
    return SOURCES.names()


def source_info(name: str) -> SourceInfo:
    return SOURCES.get(name)


def sources_with(predicate: object) -> tuple[str, ...]:
    """The names of the sources whose entry satisfies `predicate(info)`."""
    return tuple(n for n, s in SOURCES.items() if predicate(s))  # type: ignore[operator]


def get_source(name: str) -> ModuleType:
    """The module that reads source `name` (a KeyError names the known ones)."""
    return importlib.import_module(SOURCES.get(name).module)


def key_material(spec) -> object:
    """What, beyond the data spec, identifies a source's data (a file's bytes); None for none."""
    fn = getattr(get_source(spec.source), "key_material", None)
    return fn(spec) if fn is not None else None
