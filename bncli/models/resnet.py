"""Residual nets: the CIFAR ResNets of He et al. 2016 (§4.2: depth 20 or 56 = 6n + 2, stages of
16/32/64 channels) and ResNet-18 (stages of 64..512, two basic blocks each, a 3x3 stem for 32x32
inputs). A normalization point after every conv, the 1x1 projection shortcuts included; the
points are named layer1..layerK in forward order (stem; per block conv1, conv2, then its
shortcut). Not a chain: see ResidualNet."""

from __future__ import annotations

from typing import Any

from bncli.models.registry import require_image

LAYERS_FIELD = "model.width"
CONV = True
DEPTHS = (20, 56, 18)
DEFAULT_DEPTH = 20


def _depth(spec: Any) -> int:
    return spec.depth or DEFAULT_DEPTH


def _stages(spec: Any) -> list[tuple[int, int, int]]:
    """(channels, blocks, stride of its first block) per stage."""
    d = _depth(spec)
    if d == 18:
        w = spec.width or 64
        return [(w, 2, 1), (2 * w, 2, 2), (4 * w, 2, 2), (8 * w, 2, 2)]
    n = (d - 2) // 6
    w = spec.width or 16
    return [(w, n, 1), (2 * w, n, 2), (4 * w, n, 2)]


def _units(spec: Any) -> tuple[int, list[tuple[int, int, int, bool]]]:
    """The stem's channels and (c_in, c_out, stride, projection) per residual block."""
    stages = _stages(spec)
    c = stages[0][0]
    out = []
    for ch, n, stride in stages:
        for b in range(n):
            s = stride if b == 0 else 1
            out.append((c, ch, s, s != 1 or c != ch))
            c = ch
    return stages[0][0], out


def widths(spec: Any) -> list[int]:
    stem, units = _units(spec)
    out = [stem]
    for _ci, co, _s, proj in units:
        out += [co, co] + ([co] if proj else [])
    return out


def _maps(spec: Any, input_shape: tuple[int, ...]):
    """(c_in, c_out, h, w after the block's stride, kernel) for every conv, in point order."""
    c, h, w = input_shape if len(input_shape) == 3 else (input_shape[0], 1, 1)
    stem, units = _units(spec)
    yield c, stem, h, w, 3
    for ci, co, s, proj in units:
        h2, w2 = -(-h // s), -(-w // s)
        yield ci, co, h2, w2, 3
        yield co, co, h2, w2, 3
        if proj:
            yield ci, co, h2, w2, 1
        h, w = h2, w2


def macs_per_example(spec: Any, input_shape: tuple[int, ...], n_out: int) -> int:
    total = sum(ci * co * k * k * h * w for ci, co, h, w, k in _maps(spec, input_shape))
    return total + _stages(spec)[-1][0] * n_out


def size(spec: Any, input_shape: tuple[int, ...], n_out: int) -> tuple[int, int, int]:
    params, act, positions = 0, 0, 0
    for ci, co, h, w, k in _maps(spec, input_shape):
        params += ci * co * k * k + co + 4 * co
        act += 7 * co * h * w  # the block's tensors plus the residual sum
        positions = max(positions, h * w)
    c = _stages(spec)[-1][0]
    return params + c * n_out + n_out, act + 2 * n_out, positions


def describe(spec: Any, input_shape: tuple[int, ...], n_out: int) -> str:
    return (f"resnet{_depth(spec)} width {_stages(spec)[0][0]} ({len(widths(spec))} conv points, "
            f"{spec.activation}) on {tuple(input_shape)} → {n_out}")


def build(spec: Any, arm: Any, input_shape: tuple[int, ...], n_out: int) -> Any:
    from torch import nn

    from bncli.models.base import Block, ResidualNet

    require_image("resnet", input_shape)
    blocks: list[Any] = []

    def point(ci: int, co: int, k: int, stride: int, activation: str) -> int:
        conv = nn.Conv2d(ci, co, k, stride=stride, padding=k // 2, bias=spec.bias)
        blocks.append(Block(conv, co, True, activation, arm, len(blocks)))
        return len(blocks)  # its name is layer{this}

    stem, units = _units(spec)
    point(input_shape[0], stem, 3, 1, spec.activation)
    residual = []
    for ci, co, s, proj in units:
        a = point(ci, co, 3, s, spec.activation)
        # the second conv's nonlinearity comes after the sum (ResidualNet.forward)
        b = point(co, co, 3, 1, "linear")
        sc = point(ci, co, 1, s, "linear") if proj else None
        residual.append((f"layer{a}", f"layer{b}", None if sc is None else f"layer{sc}"))
    head = nn.Linear(_stages(spec)[-1][0], n_out, bias=spec.bias)
    return ResidualNet(blocks, head, residual, spec.activation)
