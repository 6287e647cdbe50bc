"""VGG for 32x32 inputs (Simonyan & Zisserman's configurations as used on CIFAR-10 by Santurkar
et al. 2018): 3x3 conv blocks, a normalization point after every conv, 2x2 max-pool after each
stage while the map is >= 2x2, then one linear layer. `model.depth` 11 | 13 | 16; `model.width`
the first stage's channels (64 in the paper; later stages double up to 8x)."""

from __future__ import annotations

from typing import Any

from bncli.models.registry import require_image

LAYERS_FIELD = "model.width"
CONV = True
DEPTHS = (11, 13, 16)
DEFAULT_DEPTH = 11
DEFAULT_WIDTH = 64
# channels in units of width/64; "M" closes a stage with a max-pool
CONFIGS: dict[int, list[Any]] = {
    11: [1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"],
    13: [1, 1, "M", 2, 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"],
    16: [1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M"],
}


def _depth(spec: Any) -> int:
    return spec.depth or DEFAULT_DEPTH


def _width(spec: Any) -> int:
    return spec.width or DEFAULT_WIDTH


def _plan(spec: Any) -> list[tuple[int, bool]]:
    """(channels, pool after) per conv, in forward order."""
    cfg = CONFIGS[_depth(spec)]
    out: list[tuple[int, bool]] = []
    for item in cfg:
        if item == "M":
            out[-1] = (out[-1][0], True)
        else:
            out.append((item * _width(spec), False))
    return out


def widths(spec: Any) -> list[int]:
    return [c for c, _ in _plan(spec)]


def _walk(spec: Any, input_shape: tuple[int, ...]):
    """(c_in, c_out, h, w, pooled) per conv: h x w is the conv's map, before its pool."""
    c, h, w = input_shape if len(input_shape) == 3 else (input_shape[0], 1, 1)
    for ch, pool in _plan(spec):
        pooled = pool and h >= 2 and w >= 2
        yield c, ch, h, w, pooled
        if pooled:
            h, w = h // 2, w // 2
        c = ch


def _final(spec: Any, input_shape: tuple[int, ...]) -> int:
    """Features into the head: the last conv's channels x its map after its pool."""
    ci, co, h, w, pooled = list(_walk(spec, input_shape))[-1]
    return co * (h // 2) * (w // 2) if pooled else co * h * w


def macs_per_example(spec: Any, input_shape: tuple[int, ...], n_out: int) -> int:
    total = sum(ci * co * 9 * h * w for ci, co, h, w, _p in _walk(spec, input_shape))
    return total + _final(spec, input_shape) * n_out


def size(spec: Any, input_shape: tuple[int, ...], n_out: int) -> tuple[int, int, int]:
    params, act, positions = 0, 0, 0
    for ci, co, h, w, _p in _walk(spec, input_shape):
        params += ci * co * 9 + co + 4 * co
        act += 7 * co * h * w  # weight out, norm in/out, noise, pre-activation, activation, pool
        positions = max(positions, h * w)
    feat = _final(spec, input_shape)
    return params + feat * n_out + n_out, act + 2 * n_out, positions


def describe(spec: Any, input_shape: tuple[int, ...], n_out: int) -> str:
    return (f"vgg{_depth(spec)} width {_width(spec)} ({len(widths(spec))} conv points, "
            f"{spec.activation}) on {tuple(input_shape)} → {n_out}")


def build(spec: Any, arm: Any, input_shape: tuple[int, ...], n_out: int) -> Any:
    from torch import nn

    from bncli.models.base import Block, Net

    require_image("vgg", input_shape)
    blocks = []
    for i, (ci, co, _h, _w, pooled) in enumerate(_walk(spec, input_shape)):
        conv = nn.Conv2d(ci, co, 3, padding=1, bias=spec.bias)
        blocks.append(Block(conv, co, True, spec.activation, arm, i, pool=pooled))
    return Net(blocks, nn.Linear(_final(spec, input_shape), n_out, bias=spec.bias), flatten_input=False)
