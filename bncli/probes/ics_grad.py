"""Gradient ICS (C3, Santurkar Def. 2.1): G' for every layer in one vmapped pass, and its probe."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch.func import functional_call, grad, vmap

from bncli.models import Net
from bncli.probes.base import ProbeBase, measuring
from bncli.train import RunContext, StepContext

Tensor = torch.Tensor
LossFn = Callable[..., Tensor]


@contextmanager
def noise_seed(model: Net, seed: int | None) -> Iterator[None]:
    """Set every NoiseInjection's seed for a measurement and put the previous seeds back."""
    mods = model.noise_modules()
    saved = [m.seed for m in mods]
    try:
        for m in mods:
            m.seed = seed
        yield
    finally:
        for m, s in zip(mods, saved, strict=True):
            m.seed = s


def layer_position(param_name: str, order: Sequence[str]) -> int:
    """Forward position of a parameter: k for layers.layer{k+1}.*, len(order) for the head."""
    parts = param_name.split(".")
    if parts[0] == "layers" and len(parts) > 1 and parts[1] in order:
        return list(order).index(parts[1])
    return len(order)


def mixed_params(
    old: dict[str, Tensor], new: dict[str, Tensor], order: Sequence[str], layer: str
) -> dict[str, Tensor]:
    """Santurkar's mix for `layer`: parameters of earlier layers at θ_{t+1}, the rest at θ_t."""
    cut = list(order).index(layer)
    return {n: (new[n] if layer_position(n, order) < cut else v) for n, v in old.items()}


def _buffer_copies(buffers: dict[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in buffers.items()}


def _prime_noise(
    model: Net, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor
) -> None:
    # NoiseInjection caches its draw per (seed, shape); one plain forward fills the cache so the
    # vmapped passes reuse this step's draw instead of calling a random op inside vmap.
    if model.noise_modules():
        with torch.no_grad():
            functional_call(model, (params, _buffer_copies(buffers)), (x,))


def gprime_batched(
    model: Net,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    old: dict[str, Tensor],
    new: dict[str, Tensor],
    buffers: dict[str, Tensor],
    layers: Sequence[str],
) -> dict[str, Tensor]:
    """G'_i = ∇_{W_i} L(earlier layers at θ_{t+1}, layer i and later at θ_t) for each layer i.

    All mixes run as one batched forward/backward: torch.func.vmap over stacked parameter mixes,
    with per-mix copies of the BN buffers (BN in training mode updates running statistics in
    place; a batched buffer absorbs that update instead of the model's real one).
    """
    order = model.point_names
    wnames = model.weight_param_names()
    sel = sorted(layers, key=order.index)
    cuts = [order.index(layer) for layer in sel]
    k = len(sel)

    def stacked(name: str) -> Tensor:
        pos = layer_position(name, order)
        return torch.stack([new[name] if pos < c else old[name] for c in cuts])

    arg_names = [wnames[layer] for layer in sel]
    weights = {n: stacked(n) for n in arg_names}
    # parameters that differ between mixes are batched; the rest (the last layers, the head)
    # are shared by every mix and stay unbatched
    varying = {n: stacked(n) for n in old
               if n not in weights and layer_position(n, order) < max(cuts)}
    fixed = {n: v for n, v in old.items() if n not in weights and n not in varying}
    bufs = {n: v.detach().unsqueeze(0).expand(k, *v.shape).clone() for n, v in buffers.items()}

    def loss_of(w: dict[str, Tensor], var: dict[str, Tensor], bb: dict[str, Tensor]) -> Tensor:
        out = functional_call(model, ({**fixed, **var, **w}, bb), (x,))
        return loss_fn(out, y)

    with measuring(model, x.device):
        _prime_noise(model, old, buffers, x)
        grads = vmap(grad(loss_of), in_dims=(0, 0, 0), randomness="error")(weights, varying, bufs)
    return {layer: grads[wnames[layer]][i].detach() for i, layer in enumerate(sel)}


def gprime_loop(
    model: Net,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    old: dict[str, Tensor],
    new: dict[str, Tensor],
    buffers: dict[str, Tensor],
    layers: Sequence[str],
) -> dict[str, Tensor]:
    """The same G' one layer at a time (one forward/backward per layer): the speed baseline."""
    order = model.point_names
    wnames = model.weight_param_names()
    out: dict[str, Tensor] = {}
    with measuring(model, x.device):
        for layer in layers:
            params = mixed_params(old, new, order, layer)
            w = params[wnames[layer]].detach().clone().requires_grad_(True)
            params[wnames[layer]] = w
            loss = loss_fn(functional_call(model, (params, _buffer_copies(buffers)), (x,)), y)
            (out[layer],) = torch.autograd.grad(loss, w)
    return out


def compare_grads(g: Tensor, gp: Tensor) -> dict[str, float]:
    """‖G‖, ‖G − G'‖₂ (Frobenius over W_i), ‖G − G'‖/‖G‖ and cos(G, G')."""
    g64, gp64 = g.double().flatten(), gp.double().flatten()
    gn, gpn = float(g64.norm()), float(gp64.norm())
    diff = float((g64 - gp64).norm())
    cos = float(g64 @ gp64) / (gn * gpn) if gn > 0 and gpn > 0 else math.nan
    return {
        "g_norm": gn,
        "diff_norm": diff,
        "rel_diff": diff / gn if gn > 0 else math.nan,
        "cos": cos,
    }


class GradientIcsProbe(ProbeBase):
    """Per due step and layer: G from the real backward, G' from the real optimizer update."""

    name = "ics_grad"
    METRICS = ("g_norm", "diff_norm", "rel_diff", "cos")

    def __init__(
        self, every: int, layers: Sequence[str] | None = None, batched: bool = True
    ) -> None:
        super().__init__(every)
        self.requested = list(layers) if layers else None
        self.batched = batched
        self.layers: list[str] = []
        self.steps: list[int] = []
        self.series: dict[str, dict[str, list[float]]] = {}
        self._old: dict[str, Tensor] | None = None
        self._g: dict[str, Tensor] = {}

    def on_start(self, run: RunContext) -> None:
        names = run.model.point_names
        self.layers = [n for n in names if self.requested is None or n in self.requested]
        self.series = {layer: {m: [] for m in self.METRICS} for layer in self.layers}

    def before_update(self, ctx: StepContext) -> None:
        model = ctx.run.model
        wnames = model.weight_param_names()
        self._g = {}
        for layer in self.layers:
            g = model.get_parameter(wnames[layer]).grad
            if g is None:  # nothing flowed back: no G to compare
                self._g = {}
                self._old = None
                return
            # .grad holds ∇L(θ_t) on this step's batch with this step's noise: exactly G
            self._g[layer] = g.detach().clone()
        self._old = {n: p.detach().clone() for n, p in model.named_parameters()}

    def after_update(self, ctx: StepContext) -> None:
        if self._old is None or not self._g:
            return
        model = ctx.run.model
        new = {n: p.detach() for n, p in model.named_parameters()}
        compute = gprime_batched if self.batched else gprime_loop
        with noise_seed(model, ctx.noise_seed):
            gp = compute(model, ctx.run.loss_fn, ctx.x, ctx.y, self._old, new,
                         ctx.buffers_before, self.layers)
        self.steps.append(ctx.step)
        for layer in self.layers:
            for m, v in compare_grads(self._g[layer], gp[layer]).items():
                self.series[layer][m].append(v)
        self._old, self._g = None, {}

    def result(self) -> dict[str, Any]:
        return {"steps": list(self.steps), "layers": list(self.layers), "per_layer": self.series}
