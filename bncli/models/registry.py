"""The model-family registry: `model.kind` -> the module that builds and sizes it.

A new family is one module in `bncli/models/` and one `register_family` line here (or in a
plugin); its entry declares the `model.*` fields it reads, whether and where it fuses, its help.
The module keeps torch out of its top level (spec validation, memory estimates and `threads: auto`
read it without torch) and
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
from dataclasses import dataclass
from types import ModuleType

from bncli.registry import Registry


@dataclass(frozen=True)
class FamilyInfo:
    """One model family and its capabilities (the spec, the planner and README read these)."""

    name: str
    module: str  # imported on first use
    help: str  # one phrase for `model.kind`'s help and README's table
    fields: tuple[str, ...] = ()  # model.* fields only some families read, that this one reads
    requires: tuple[str, ...] = ()  # of those, the ones it cannot do without (module: factory)
    # how bncli.runner.fused trains its seeds x lrs as one model: "stacked" (StackedMLP),
    # "vmap" (torch.func over a grouped convolution) or None (never fused)
    fuses: str | None = None
    fuses_on: tuple[str, ...] = ("cpu", "cuda")  # devices where fusing pays (vmap: a GPU only)


FAMILIES: Registry[FamilyInfo] = Registry("model kind")


def register_family(name: str | FamilyInfo, module: str | None = None, **capabilities: object) -> FamilyInfo:
    """Add a model family (bncli's own below; a plugin's the same way): the spec accepts
    `model.kind: name` from now on. Give a FamilyInfo, or its name, module and capabilities."""
    replace = bool(capabilities.pop("replace", False))
    if isinstance(name, FamilyInfo):
        info = name
    else:
        if module is None:
            raise ValueError("register_family(name, module, ...): give the module that builds it")
        capabilities.setdefault("help", module)
        info = FamilyInfo(name, module, **capabilities)  # type: ignore[arg-type]
    return FAMILIES.register(info.name, info, replace=replace)


# on the CPU (1 thread) a grouped convolution is ~1.4x slower than its K single ones, so a fused
# conv group there is 1.15-1.45x slower on 32x32 images and gains at most ~10% on 8x8 digits
_GPU = ("cuda",)
for _info in (
    FamilyInfo("mlp", "bncli.models.mlp", "fully connected; flattens images", fields=("hidden",),
               fuses="stacked"),
    FamilyInfo("cnn", "bncli.models.cnn", "3x3 conv blocks, then a linear head",
               fields=("channels", "pool"), fuses="vmap", fuses_on=_GPU),
    FamilyInfo("vgg", "bncli.models.vgg", "depth 11/13/16, for 32x32 images", fields=("depth", "width"),
               fuses="vmap", fuses_on=_GPU),
    FamilyInfo("resnet", "bncli.models.resnet", "depth 20/56: CIFAR ResNets, 18: ResNet-18",
               fields=("depth", "width"), fuses="vmap", fuses_on=_GPU),
    FamilyInfo("module", "bncli.models.module", "your own nn.Module: see factory",
               fields=("factory",), requires=("factory",)),
):
    register_family(_info)


def family_help() -> str:
    """`model.kind`'s help: every registered family's phrase."""
    return ", ".join(f"{n} ({f.help})" for n, f in FAMILIES.items())


def family_names() -> tuple[str, ...]:
    return FAMILIES.names()


def family_info(name: str) -> FamilyInfo:
    return FAMILIES.get(name)


def get_family(name: str) -> ModuleType:
    return importlib.import_module(FAMILIES.get(name).module)


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
