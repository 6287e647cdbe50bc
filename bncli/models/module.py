"""Your own nn.Module: `model: {kind: module, factory: "pkg.mod:build"}`.

The contract: bncli imports `pkg.mod` (from the installed packages or the current folder) and calls
`build(point, input_shape, n_out) -> nn.Module`. `point(weight_module, width, conv=True,
activation="relu", pool=False)` returns a normalization point: weight_module (a Conv2d or Linear
with `width` outputs) -> the arm's normalization (batch, layer, none, ...) -> activation (relu,
sigmoid, tanh, linear) -> optional 2x2 max-pool. Call it once per point, in forward order; the
points are named layer1..layerK in that order, and every arm gets the same module with its own
normalization. The module's forward(x) takes a batch of inputs and returns the logits (or
regression outputs). Everything else (residual sums, pooling, the head) is yours. The points
are not assumed to form a chain: analyses that rerun part of a net run yours whole.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from bncli.errors import SpecError

_BUILT: dict[str, list[int]] = {}  # factory -> the widths of its points, once built in this process

LAYERS_FIELD = "model.factory"
CONV = True  # per-channel norms on conv points; a Linear point gets the 1-D form (Block decides)
WIDTHS_KNOWN = False


ALLOW_ENV = "BNCLI_ALLOW_CODE"  # consent to import and run a spec's model.factory (as --allow-code)
_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def code_allowed() -> bool:
    """Whether a spec's own code may run: --allow-code or BNCLI_ALLOW_CODE=1 (true, yes, on)."""
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@contextmanager
def code_consent(allow: bool) -> Iterator[None]:
    """--allow-code for one command: set in the environment, so the worker processes (and a private
    local Ray) it starts inherit it; put back as it was afterwards."""
    if not allow:
        yield
        return
    before = os.environ.get(ALLOW_ENV)
    os.environ[ALLOW_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ALLOW_ENV, None)
        else:
            os.environ[ALLOW_ENV] = before


def load_factory(ref: str) -> Any:
    """`pkg.mod:name` -> the callable (SpecError naming model.factory when it can't be found).

    Importing a module runs its code, so nothing is imported without consent (--allow-code or
    BNCLI_ALLOW_CODE=1): checking a spec someone shared must not run code from it, as
    torch.load(weights_only=True) refuses a pickle's code by default."""
    mod_name, _, attr = ref.partition(":")
    if not mod_name or not attr:
        raise SpecError(f"model.factory: {ref!r}: write it as package.module:function")
    if not _DOTTED.fullmatch(mod_name) or not attr.isidentifier() or attr.startswith("_"):
        raise SpecError(f"model.factory: {ref!r}: write it as package.module:function (a public function)")
    if not code_allowed():
        raise SpecError(f"model.factory: {ref!r} would import module {mod_name!r} and run its code; "
                        f"if you trust it, pass --allow-code (or set {ALLOW_ENV}=1)")
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise SpecError(f"model.factory: cannot import {mod_name!r} ({exc})") from None
    finally:
        if added:
            sys.path.remove(os.getcwd())
    fn = getattr(mod, attr, None)
    if not callable(fn):
        raise SpecError(f"model.factory: {mod_name} has no function {attr!r}")
    return fn


def build(spec: Any, arm: Any, input_shape: tuple[int, ...], n_out: int) -> Any:
    from torch import nn

    from bncli.models.base import _ACTIVATIONS, Block, ModuleNet

    blocks: list[Block] = []

    def point(weight_module: nn.Module, width: int, conv: bool = True, activation: str = "relu",
              pool: bool = False) -> Block:
        if activation not in _ACTIVATIONS:
            raise SpecError(f"model.factory: point(activation={activation!r}): use one of "
                            f"{', '.join(_ACTIVATIONS)}")
        blk = Block(weight_module, int(width), conv, activation, arm, len(blocks), pool=pool)
        blk.norm_width = int(width)
        blocks.append(blk)
        return blk

    body = _call_factory(spec.factory, point, tuple(input_shape), n_out)
    if not isinstance(body, nn.Module):
        raise SpecError(f"model.factory: {spec.factory} returned {type(body).__name__}, not an nn.Module")
    if not blocks:
        raise SpecError(f"model.factory: {spec.factory} made no normalization points (call point())")
    _BUILT[spec.factory] = [int(b.norm_width) for b in blocks]
    return ModuleNet(blocks, body)


def _call_factory(ref: str, point: Any, input_shape: tuple[int, ...], n_out: int) -> Any:
    """factory(point, input_shape, n_out); a callable that takes other arguments (`os:system`,
    a class of another contract) is a SpecError, not a TypeError from deep inside."""
    import inspect

    fn = load_factory(ref)
    try:
        inspect.signature(fn).bind(point, input_shape, n_out)
    except TypeError as exc:
        raise SpecError(f"model.factory: {ref} cannot be called as build(point, input_shape, n_out): {exc}") from None
    except ValueError:  # a builtin without a signature: the call below says
        pass
    try:
        return fn(point, input_shape, n_out)
    except TypeError as exc:
        if exc.__traceback__ is not None and exc.__traceback__.tb_next is None:  # the call itself
            raise SpecError(f"model.factory: {ref} cannot be called as build(point, input_shape, n_out): "
                            f"{exc}") from None
        raise


@lru_cache(maxsize=16)
def _profile(factory: str, input_shape: tuple[int, ...], n_out: int) -> tuple[int, int, int, int]:
    """(parameters, multiply-adds, activations, largest map) of one example, measured once."""
    import torch
    from torch import nn

    from bncli.spec import ArmSpec, ModelSpec

    net = build(ModelSpec(kind="module", factory=factory), ArmSpec(name="_size"), input_shape, n_out)
    macs, act, positions = 0, 0, 1

    def hook(m: nn.Module, _i: Any, out: Any) -> None:
        nonlocal macs, act, positions
        if isinstance(out, torch.Tensor):
            act += out[0].numel()
            if isinstance(m, nn.Conv2d):
                positions = max(positions, math.prod(out.shape[2:]))
                macs += out[0].numel() * m.in_channels // m.groups * math.prod(m.kernel_size)
            elif isinstance(m, nn.Linear):
                macs += m.in_features * m.out_features

    handles = [m.register_forward_hook(hook) for m in net.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            net.eval()
            net(torch.zeros(1, *input_shape))
    finally:
        for h in handles:
            h.remove()
    params = sum(p.numel() for p in net.parameters()) + sum(b.numel() for b in net.buffers())
    return params, macs, act, positions


def widths(spec: Any) -> list[int]:
    """Known once the model was built in this process (every run builds it before its probes);
    before that, [] (WIDTHS_KNOWN = False: spec checks of layer names wait)."""
    return list(_BUILT.get(spec.factory or "", []))


def macs_per_example(spec: Any, input_shape: tuple[int, ...], n_out: int) -> int:
    return _profile(spec.factory, tuple(input_shape), n_out)[1]


def size(spec: Any, input_shape: tuple[int, ...], n_out: int) -> tuple[int, int, int]:
    params, _macs, act, positions = _profile(spec.factory, tuple(input_shape), n_out)
    return params, 2 * act, positions


def describe(spec: Any, input_shape: tuple[int, ...], n_out: int) -> str:
    return f"module {spec.factory} on {tuple(input_shape)} → {n_out}"
