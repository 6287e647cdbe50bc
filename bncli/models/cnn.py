"""A plain conv stack: 3x3 conv blocks of `model.channels` (each a normalization point), 2x2
max-pool while the map is >= 2x2, then a linear head."""

from __future__ import annotations

import math
from typing import Any

from bncli.models.registry import require_image

LAYERS_FIELD = "model.channels"
CONV = True


def widths(spec: Any) -> list[int]:
    return list(spec.channels)


def _chw(input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    return input_shape if len(input_shape) == 3 else (math.prod(input_shape), 1, 1)  # type: ignore[return-value]


def macs_per_example(spec: Any, input_shape: tuple[int, ...], n_out: int) -> int:
    c, h, w = _chw(input_shape)
    total = 0
    for ch in spec.channels:
        total += c * ch * 9 * h * w
        if spec.pool and h >= 2 and w >= 2:
            h, w = h // 2, w // 2
        c = ch
    return total + c * h * w * n_out


def size(spec: Any, input_shape: tuple[int, ...], n_out: int) -> tuple[int, int, int]:
    c, h, w = _chw(input_shape)
    params = 0
    act = c * h * w
    positions = h * w  # the first conv layer's map is the largest
    for ch in spec.channels:
        params += c * ch * 9 + ch + 4 * ch
        act += 6 * ch * h * w
        if spec.pool and h >= 2 and w >= 2:
            h, w = h // 2, w // 2
            act += ch * h * w
        c = ch
    params += c * h * w * n_out + n_out
    return params, act + 2 * n_out, positions


def describe(spec: Any, input_shape: tuple[int, ...], n_out: int) -> str:
    return f"cnn channels {list(spec.channels)} ({spec.activation}) on {tuple(input_shape)}"


def build(spec: Any, arm: Any, input_shape: tuple[int, ...], n_out: int) -> Any:
    from torch import nn

    from bncli.models.base import Block, Net

    require_image("cnn", input_shape)
    c, h, w = input_shape
    blocks = []
    for i, ch in enumerate(spec.channels):
        pool = spec.pool and h >= 2 and w >= 2
        conv = nn.Conv2d(c, ch, 3, padding=1, bias=spec.bias)
        blocks.append(Block(conv, ch, True, spec.activation, arm, i, pool=pool))
        c = ch
        if pool:
            h, w = h // 2, w // 2
    head = nn.Linear(c * h * w, n_out, bias=spec.bias)
    return Net(blocks, head, flatten_input=False)
