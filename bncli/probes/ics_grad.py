"""Gradient ICS (C3, Santurkar Def. 2.1): G' for every layer in one vmapped pass, and its probe."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch.func import functional_call, grad, vmap

from bncli.models import Net
from bncli.probes.base import ProbeBase, buffer_copies, cos64, measuring, norm64, stacked_buffer_copies
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


def _prime_noise(
    model: Net, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor
) -> None:
    # NoiseInjection caches its draw per (seed, shape); one plain forward fills the cache so the
    # vmapped passes reuse this step's draw instead of calling a random op inside vmap.
    if model.noise_modules():
        with torch.no_grad():
            functional_call(model, (params, buffer_copies(buffers)), (x,))


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
    place; a batched buffer absorbs that update instead of the model's real one). A reference
    for tests and benchmarks: the probe uses gprime_shared.
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
    bufs = stacked_buffer_copies(buffers, k)

    def loss_of(w: dict[str, Tensor], var: dict[str, Tensor], bb: dict[str, Tensor]) -> Tensor:
        out = functional_call(model, ({**fixed, **var, **w}, bb), (x,))
        return loss_fn(out, y)

    with measuring(model, x.device):
        _prime_noise(model, old, buffers, x)
        grads = vmap(grad(loss_of), in_dims=(0, 0, 0), randomness="error")(weights, varying, bufs)
    return {layer: grads[wnames[layer]][i].detach() for i, layer in enumerate(sel)}


def _sub(src: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in src.items() if k.startswith(prefix)}


def gprime_shared(
    model: Net,
    loss_fn: LossFn,
    x: Tensor,
    y: Tensor,
    old: dict[str, Tensor],
    new: dict[str, Tensor],
    buffers: dict[str, Tensor],
    layers: Sequence[str],
) -> dict[str, Tensor]:
    """The same G' as gprime_batched, batched over mixes with the shared prefix computed once.

    Mix i runs layers < i at θ_{t+1} and layers >= i at θ_t, so its input to layer i is the
    updated network's activation there (computed once for all mixes), and from layer i on every
    live mix uses the same θ_t: one stacked call per layer (vmap over mixes only for BN's
    per-mix batch statistics and buffer copies). Only the mix that starts at layer i gets a
    differentiable W_i, so each backward step and weight gradient is done once. About half the
    work of one full forward/backward per mix. Follows Net.forward (flatten, blocks, head);
    the deep-copy reference test guards that.
    """
    order = model.point_names
    wnames = model.weight_param_names()
    wanted = set(layers)
    last = max(order.index(layer) for layer in layers)
    leaves: dict[str, Tensor] = {}
    h_new = x.flatten(1) if model.flatten_input else x
    stacked: Tensor | None = None
    with measuring(model, x.device):
        for name in order[: last + 1]:
            blk = model.layers[name]
            prefix = f"layers.{name}."
            p_old = _sub(old, prefix)
            b = _sub(buffers, prefix)
            with torch.no_grad():  # the updated network's next input; also fills the noise cache
                h_next = functional_call(blk, (_sub(new, prefix), buffer_copies(b)), (h_new,))
            outs = []
            if stacked is not None:
                n = stacked.shape[0]
                bb = stacked_buffer_copies(b, n)

                def run(h: Tensor, bufs: dict[str, Tensor], _blk=blk, _p=p_old) -> Tensor:
                    return functional_call(_blk, (_p, bufs), (h,))

                outs.append(vmap(run, randomness="error")(stacked, bb))
            if name in wanted:
                w = p_old[wnames[name][len(prefix):]].detach().clone().requires_grad_(True)
                leaves[name] = w
                p = {**p_old, wnames[name][len(prefix):]: w}
                outs.append(functional_call(blk, (p, buffer_copies(b)), (h_new,)).unsqueeze(0))
            stacked = torch.cat(outs) if len(outs) > 1 else (outs[0] if outs else None)
            h_new = h_next
        assert stacked is not None
        rest = order[last + 1:]
        head_p = _sub(old, "head.")

        def tail(h: Tensor, bufs: dict[str, Tensor]) -> Tensor:
            for name in rest:
                h = functional_call(model.layers[name], (_sub(old, f"layers.{name}."),
                                                         _sub(bufs, f"layers.{name}.")), (h,))
            return loss_fn(functional_call(model.head, head_p, (h.flatten(1),)), y)

        n = stacked.shape[0]
        tail_b = stacked_buffer_copies(
            {k: v for k, v in buffers.items() if any(k.startswith(f"layers.{r}.") for r in rest)}, n)
        if rest:  # prime the noise cache of the remaining layers outside vmap
            with torch.no_grad():
                h = h_new
                for name in rest:
                    h = functional_call(model.layers[name], (_sub(old, f"layers.{name}."),
                                        buffer_copies(_sub(buffers, f"layers.{name}."))), (h,))
        loss = vmap(tail, randomness="error")(stacked, tail_b).sum()
        grads = torch.autograd.grad(loss, [leaves[layer] for layer in layers])
    return {layer: g.detach() for layer, g in zip(layers, grads, strict=True)}


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
    """The same G' one layer at a time (one forward/backward per layer): the slow, obvious
    reference and the speed baseline for tests and benchmarks; the probe uses gprime_shared."""
    order = model.point_names
    wnames = model.weight_param_names()
    out: dict[str, Tensor] = {}
    with measuring(model, x.device):
        for layer in layers:
            params = mixed_params(old, new, order, layer)
            w = params[wnames[layer]].detach().clone().requires_grad_(True)
            params[wnames[layer]] = w
            loss = loss_fn(functional_call(model, (params, buffer_copies(buffers)), (x,)), y)
            (out[layer],) = torch.autograd.grad(loss, w)
    return out


def compare_grads(g: Tensor, gp: Tensor) -> dict[str, float]:
    """‖G‖, ‖G − G'‖₂ (Frobenius over W_i), ‖G − G'‖/‖G‖ and cos(G, G')."""
    gn = norm64(g)
    diff = norm64(g.double() - gp.double())
    return {
        "g_norm": gn,
        "diff_norm": diff,
        "rel_diff": diff / gn if gn > 0 else math.nan,
        "cos": cos64(g, gp),
    }


SHARED_MIN_MIXES = 4  # fewer layers to mix than this: the plain loop is faster


GROUP_POINT_BYTES = 1 << 28  # (member, mix) points per stacked G′ pass, at most: its memory
GROUP_MAX_LAYERS = 8  # deeper: each member's gprime_shared (see GradientIcsProbe.grouped)


def gprime_group(g: Any, old: dict[str, Tensor], order: Sequence[str], layers: Sequence[str]) -> dict[str, Tensor]:
    """G′ of each layer for every member of g.members, on the stacked model (θ_{t+1}: its params
    now; old: θ_t, [M, ...]): every (member, layer) mix as one point of a stacked functional
    forward/backward (earlier layers at θ_{t+1}, the rest at θ_t, its own copy of its member's
    BN buffers from before the step), in chunks of members. {layer: [M, ...] in the stacked
    model's layout}; the same definition as gprime_loop."""
    model = g.model
    idx = g.index()
    new = {n: p.detach().index_select(0, idx) for n, p in model.params.items()}
    cuts = [list(order).index(layer) for layer in layers]
    n_mix = len(layers)
    pos = {n: layer_position(n, order) for n in new}
    x, y = g.x.index_select(0, idx), g.y.index_select(0, idx)
    width = sum(t[0].numel() for t in new.values()) * 3 + x[0].numel() * 4 * len(order)
    per_chunk = max(1, GROUP_POINT_BYTES // max(1, width * x.element_size() * n_mix))
    out: dict[str, list[Tensor]] = {layer: [] for layer in layers}
    for c in range(0, len(idx), per_chunk):
        sl = slice(c, c + per_chunk)
        k = new[next(iter(new))][sl].shape[0]
        with torch.enable_grad():
            leaves = {}
            for n, t in new.items():
                use_new = torch.tensor([pos[n] < cut for cut in cuts], device=t.device)
                mix = torch.where(use_new.view(1, n_mix, *([1] * (t.dim() - 1))), t[sl].unsqueeze(1),
                                  old[n][sl].unsqueeze(1))
                leaves[n] = mix.reshape(k * n_mix, *t.shape[1:]).requires_grad_(True)
            bufs = g.buffer_copies(idx[sl], repeat=n_mix)
            losses = g.loss_of(model.functional(leaves, bufs, x[sl].repeat_interleave(n_mix, 0), True),
                               y[sl].repeat_interleave(n_mix, 0))
            wn = [f"layers.{layer}.fc.weight" for layer in layers]
            got = torch.autograd.grad(losses.sum(), [leaves[w] for w in dict.fromkeys(wn)])
        by_name = dict(zip(dict.fromkeys(wn), got, strict=True))
        for i, (layer, w) in enumerate(zip(layers, wn, strict=True)):
            out[layer].append(by_name[w].view(k, n_mix, *by_name[w].shape[1:])[:, i])
    return {layer: torch.cat(v) for layer, v in out.items()}


class GradientIcsProbe(ProbeBase):
    """Per due step and layer: G from the real backward, G' from the real optimizer update.

    G' comes from gprime_shared (batched) for deep nets and from gprime_loop for a few layers,
    whichever is faster; gprime_batched computes the same numbers and stays as a reference for
    the tests and benchmarks/bench_ics.py.
    """

    name = "ics_grad"
    METRICS = ("g_norm", "diff_norm", "rel_diff", "cos")

    def __init__(self, every: int, layers: Sequence[str] | None = None) -> None:
        super().__init__(every)
        self.requested = list(layers) if layers else None
        self.layers: list[str] = []
        self.steps: list[int] = []
        self.series: dict[str, dict[str, list[float]]] = {}
        self._old: dict[str, Tensor] | None = None
        self._g: dict[str, Tensor] = {}
        self._first = ""
        self._group: Any = None  # the group form's (index, stacked G and θ_t) between its two calls

    def on_start(self, run: RunContext) -> None:
        names = run.model.point_names
        self._first = names[0]
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
        # the first layer has no earlier parameters, so by definition G' = G there: skip its pass
        first = model.point_names[0]
        todo = [layer for layer in self.layers if layer != first]
        gp = {first: self._g[first]} if first in self._g else {}
        if todo:
            # with few mixes the batched form's fixed cost exceeds what it saves (measured by
            # benchmarks/bench_ics.py: 2 mixes ~0.7x the loop's speed, 23 mixes ~2x)
            # gprime_shared follows a chain of blocks; a residual net or a user's module takes the
            # loop (one whole forward/backward per layer, the same definition)
            shared = len(todo) >= SHARED_MIN_MIXES and model.is_chain
            gprime = gprime_shared if shared else gprime_loop
            with noise_seed(model, ctx.noise_seed):
                gp.update(gprime(model, ctx.run.loss_fn, ctx.x, ctx.y, self._old, new,
                                 ctx.buffers_before, todo))
        self.steps.append(ctx.step)
        for layer in self.layers:
            for m, v in compare_grads(self._g[layer], gp[layer]).items():
                self.series[layer][m].append(v)
        self._old, self._g = None, {}

    def grouped(self) -> bool:
        # the group form runs one whole forward/backward per mix (~L² layer passes per member);
        # a deep chain is cheaper per member with gprime_shared's shared prefixes (~L²/2), which
        # wins once the arithmetic outweighs the per-member overhead (bench_group_probes.py: 25
        # layers of 10 units, batch 1,000: group 0.85x)
        return len(self.layers) <= GROUP_MAX_LAYERS

    @staticmethod
    def group_before_update(probes: Sequence[GradientIcsProbe], g: Any) -> None:
        """before_update for every due member of a fused group: G of each layer and θ_t, stacked."""
        idx = g.index()
        wnames = {n: f"layers.{n}.fc.weight" for n in probes[0].layers}
        grads = {n: g.model.params[w].grad for n, w in wnames.items()}
        if any(t is None for t in grads.values()):
            return
        state = ({n: t.index_select(0, idx) for n, t in grads.items()},
                 {n: p.detach().index_select(0, idx) for n, p in g.model.params.items()})
        for j, p in enumerate(probes):
            p._group = (j, state)

    @staticmethod
    def group_after_update(probes: Sequence[GradientIcsProbe], g: Any) -> None:
        """after_update for every due member of a fused group: G′ of every member and layer from
        stacked forward/backward passes (gprime_group), compared with G as the per-member form does."""
        first = probes[0]
        if getattr(first, "_group", None) is None:
            return
        _, (gs, old) = first._group
        order = [pre[len("layers."):] for pre, *_ in g.model.static]
        todo = [layer for layer in first.layers if layer != order[0]]
        gp = gprime_group(g, old, order, todo) if todo else {}
        for j, p in enumerate(probes):
            p.steps.append(g.step)
            for layer in p.layers:
                gl = gs[layer][j]
                for m, v in compare_grads(gl, gp[layer][j] if layer in gp else gl).items():
                    p.series[layer][m].append(v)
            p._group = None

    def result(self) -> dict[str, Any]:
        # first_layer: G' = G there by definition, so summaries leave it out of C3
        return {"steps": list(self.steps), "layers": list(self.layers), "per_layer": self.series,
                "first_layer": self._first}
