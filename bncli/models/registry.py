"""The model-family registry: `model.kind` -> the module that builds and sizes it.

A new family is one module in `bncli/models/` and one line here. The module keeps torch out of
its top level (spec validation, memory estimates and `threads: auto` read it without torch) and
provides:
- `widths(spec) -> list[int]`: the units (channels) of each normalization point, in forward order;
- `LAYERS_FIELD`: the spec field that sets them (errors and the memory estimate name it);
- `CONV`: whether its normalization points are conv maps (per-channel norms);
- `macs_per_example(spec, input_shape, n_out)`, `size(spec, input_shape, n_out) ->
  (parameters, activations per example, positions per unit)`: rough sizes for threads and memory;
- `describe(spec, input_shape, n_out) -> str`: the shape line of the run header;
- `build(spec, arm, input_shape, n_out) -> Net`: the blocks and head (bncli.models.base).
Optionally `DEPTHS` (the allowed `model.depth` values) and `WIDTHS_KNOWN = False` when the points
are only known once the model is built (a user's module): spec checks of layer names then wait.
"""

from __future__ import annotations

import importlib
from types import ModuleType

FAMILIES: dict[str, str] = {
    "mlp": "bncli.models.mlp",
    "cnn": "bncli.models.cnn",
    "vgg": "bncli.models.vgg",
    "resnet": "bncli.models.resnet",
    "module": "bncli.models.module",
}

FAMILY_HELP = ("mlp (fully connected; flattens images), cnn (3x3 conv blocks, then a linear head), "
               "vgg (depth 11/13/16, for 32x32 images), resnet (depth 20/56: CIFAR ResNets, 18: "
               "ResNet-18) or module (your own nn.Module: see factory)")


def register_family(name: str, module: str) -> None:
    """Add a model family at run time (a plugin; built-in families are lines in FAMILIES): the spec
    accepts `model.kind: name` from now on."""
    from bncli.spec import refresh_registry_choices

    FAMILIES[name] = module
    refresh_registry_choices()


def family_names() -> tuple[str, ...]:
    return tuple(FAMILIES)


def get_family(name: str) -> ModuleType:
    try:
        return importlib.import_module(FAMILIES[name])
    except KeyError:
        raise KeyError(f"unknown model kind {name!r} (known: {', '.join(FAMILIES)})") from None


def widths(spec) -> list[int]:
    """The widths of the model's normalization points layer1..layerK."""
    return list(get_family(spec.kind).widths(spec))


def widths_known(spec) -> bool:
    return getattr(get_family(spec.kind), "WIDTHS_KNOWN", True)


def point_names(spec) -> list[str]:
    return [f"layer{i + 1}" for i in range(len(widths(spec)))]


def require_image(kind: str, input_shape: tuple[int, ...]) -> None:
    """A conv family's one check before building: image inputs (C, H, W), else a DataError."""
    if len(input_shape) != 3:
        from bncli.errors import DataError

        raise DataError(f"model.kind: {kind} needs image inputs (C, H, W) but the data has shape "
                        f"{input_shape}; for digits set data.shape: image")
