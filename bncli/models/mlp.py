"""Fully connected nets: `model.hidden` units per layer, each a normalization point; image inputs
are flattened."""

from __future__ import annotations

import math
from typing import Any

LAYERS_FIELD = "model.hidden"
CONV = False


def widths(spec: Any) -> list[int]:
    return list(spec.hidden)


def macs_per_example(spec: Any, input_shape: tuple[int, ...], n_out: int) -> int:
    fan_in, total = math.prod(input_shape), 0
    for w in spec.hidden:
        total += fan_in * w
        fan_in = w
    return total + fan_in * n_out


def size(spec: Any, input_shape: tuple[int, ...], n_out: int) -> tuple[int, int, int]:
    params = 0
    fan_in = math.prod(input_shape)
    act = fan_in
    for w in spec.hidden:
        params += fan_in * w + w + 4 * w  # weight, bias; norm affine + running stats
        act += 6 * w  # weight out, norm in/out, noise, pre-activation, activation
        fan_in = w
    params += fan_in * n_out + n_out
    return params, act + 2 * n_out, 1


def describe(spec: Any, input_shape: tuple[int, ...], n_out: int) -> str:
    runs: list[list[int]] = []  # [width, count]: hidden 100, 100, 100 reads 100×3
    for w in spec.hidden:
        if runs and runs[-1][0] == w:
            runs[-1][1] += 1
        else:
            runs.append([w, 1])
    hidden = ", ".join(f"{w}×{n}" if n > 1 else str(w) for w, n in runs)
    return f"mlp in {math.prod(input_shape)} → hidden {hidden} → out {n_out} ({spec.activation})"


def build(spec: Any, arm: Any, input_shape: tuple[int, ...], n_out: int) -> Any:
    from torch import nn

    from bncli.models.base import Block, Net

    blocks = []
    fan_in = math.prod(input_shape)
    for i, width in enumerate(spec.hidden):
        lin = nn.Linear(fan_in, width, bias=spec.bias)
        blocks.append(Block(lin, width, False, spec.activation, arm, i))
        fan_in = width
    head = nn.Linear(fan_in, n_out, bias=spec.bias)
    return Net(blocks, head, flatten_input=True)
