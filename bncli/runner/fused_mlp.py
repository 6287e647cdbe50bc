"""StackedMLP: K MLPs of one architecture as stacked tensors (the fused runner's hand-written
batched model: one `baddbmm` per layer — feature-major for narrow and BN layers and in eval, see
`_linear` — BN as one `F.batch_norm` over all members' units, ℓp per member), and its functional
form for probes measuring a whole fused group at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bncli.norm_layers import lp_block_forward, lp_normalize

_ACT = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "linear": None}


class StackedMLP:
    """K MLPs of one architecture as stacked tensors: parameters [K, ...] (leaves with grads),
    buffers [K, ...] (BN's as one flat [K·U] view each; ℓp's running_mean [K, U] and running_scale
    [K, U] or [K]); `forward(x)` with x [K, B, ...] (training: per-member batches) or
    [N, ...] (eval: one input for every member)."""

    def __init__(self, nets: Sequence[Any], batch: int | None = None) -> None:
        first = nets[0]
        self.k = len(nets)
        self.names = [n for n, _ in first.named_parameters()]
        self.buffer_names = [n for n, _ in first.named_buffers()]
        # each linear weight in the layout its training products read, so that the backward writes
        # its gradient contiguous (no transposed copies per step): a feature-major layer (_linear)
        # keeps the Net's [K, out, in]; a batch-major one is kept transposed, [K, in, out]
        named0 = dict(first.named_parameters())
        # the widest layer's units: the eval's chunk of examples is sized by it (_eval_chunk)
        self.width = max(int(named0[n].shape[0]) for n in self.names if n.endswith(".weight") and named0[n].dim() == 2)
        kinds = {f"layers.{name}.fc.weight": blk.norm_kind for name, blk in first.layers.items()}
        self.transposed = {n for n in self.names if n.endswith(".weight") and (n in kinds or n.startswith("head."))
                           and not _feature_major(named0[n].shape[0], kinds.get(n), batch)}
        # each Net's tensors by name, walked once per Net (a deep net's module tree is slow to walk)
        named = [(dict(m.named_parameters()), dict(m.named_buffers())) for m in nets]
        with torch.no_grad():
            self.params = {}
            for n in self.names:
                t = torch.stack([p[n].detach() for p, _ in named])
                if n in self.transposed:
                    t = t.transpose(1, 2)
                self.params[n] = t.contiguous().requires_grad_()
            self.buffers = {n: torch.stack([b[n].detach() for _, b in named]).contiguous()
                            for n in self.buffer_names}
        self.flat_buffers = {n: b.view(-1) for n, b in self.buffers.items()}
        self.forwards = 0  # training-mode forward passes (BN's num_batches_tracked)
        self._named_cache: dict[int, Any] = {}  # id(Net) -> (Net, named parameters, named buffers)
        # per layer: (prefix, norm kind, momentum, eps, ℓp's (p, per unit), position): the static
        # part; `bind` pairs it with a set of stacked tensors (the model's own, or a probe's)
        self.static = []
        for name, blk in first.layers.items():
            kind = blk.norm_kind if blk.norm_kind in ("batch", "lp") else None
            norm = blk.norm if kind is not None else None
            self.static.append((
                f"layers.{name}", kind,
                None if norm is None else float(norm.momentum), None if norm is None else float(norm.eps),
                (float(norm.p), norm.scope == "unit") if kind == "lp" else None, blk.position,
            ))
        self.act = _ACT[_activation_of(first)]
        self.layers, self.head = self.bind(self.params, self.buffers)

    def bind(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor] | None) -> tuple[list, tuple]:
        """The forward's per-layer tensors from stacked parameters [N, ...] (this model's layout:
        linear weights [N, in, out]) and stacked buffers [N, ...] (BN's taken as flat [N·U] views;
        ℓp's as they are); None: no buffers (training-mode BN then uses batch statistics only)."""
        layers = []
        for pre, kind, mom, eps, extra, position in self.static:
            rm = rv = None
            if kind is not None and buffers is not None:
                second = "running_var" if kind == "batch" else "running_scale"
                rm, rv = buffers[f"{pre}.norm.running_mean"], buffers[f"{pre}.norm.{second}"]
                if kind == "batch":  # F.batch_norm over the [B, N·U] view: flat buffers [N·U]
                    rm, rv = rm.view(-1), rv.view(-1)
            w = f"{pre}.fc.weight"
            layers.append((params[w], params.get(f"{pre}.fc.bias"), w not in self.transposed, kind,
                           params.get(f"{pre}.norm.weight"), params.get(f"{pre}.norm.bias"), rm, rv,
                           mom, eps, extra, position))
        return layers, (params["head.weight"], params.get("head.bias"), "head.weight" not in self.transposed)

    def parameters(self) -> list[torch.Tensor]:
        return [self.params[n] for n in self.names]

    def _bn(self, h: torch.Tensor, g: Any, b: Any, rm: Any, rv: Any, mom: Any, eps: Any,
            training: bool) -> torch.Tensor:
        k, n, u = h.shape
        gw, gb = None if g is None else g.reshape(-1), None if b is None else b.reshape(-1)
        if n > 1 and h.transpose(1, 2).is_contiguous():  # feature-major [K, U, B] memory (narrow layers)
            out = F.batch_norm(h.transpose(1, 2).reshape(1, k * u, n), rm, rv, gw, gb, training, mom, eps)
            return out.view(k, u, n).transpose(1, 2)
        flat = h.transpose(0, 1).reshape(n, k * u)  # [B, K·U]: one BN over every member's units
        out = F.batch_norm(flat, rm, rv, gw, gb, training, mom, eps)
        return out.view(n, k, u).transpose(0, 1)

    @staticmethod
    def _lp(h: torch.Tensor, g: Any, b: Any, rm: torch.Tensor, rs: torch.Tensor, mom: float, eps: float,
            p: float, unit: bool, training: bool, fast: bool = False) -> torch.Tensor:
        """bncli.norm_layers.LpNorm.forward for every member of h [K, B, U] (the same ops in the
        same order, reductions per member): per-unit batch mean, centred c, the member's scale
        (lp_scale: one per member; lp_unit_scale: one per member and unit), the running buffers
        (rm [K, U], rs [K] or [K, U]) updated in place (norm_layers.lp_block_forward); eval mode
        with the running estimates."""
        if training:
            # fast (the training step): one autograd node with its backward written out
            # (norm_layers.lp_normalize; once differentiable, so not for the probes' Hessians)
            if fast:
                y, mu, s = lp_normalize(h, g, b, p, unit, eps)
            else:
                y, mu, _, s, _, _ = lp_block_forward(h, g, b, p, unit, eps)
            rm.mul_(1.0 - mom).add_(mu.detach(), alpha=mom)
            rs.mul_(1.0 - mom).add_(s.detach(), alpha=mom)
            return y
        c = h - rm.unsqueeze(1)
        inv = 1.0 / (rs + eps)  # [K, U] or [K]
        if not unit:
            inv = inv.unsqueeze(1)  # [K, 1]: one scalar per member
        if g is None:
            return c * inv.unsqueeze(1)
        return torch.addcmul(b.unsqueeze(1), c, (g * inv).unsqueeze(1))

    def _norm(self, h: torch.Tensor, kind: Any, g: Any, b: Any, rm: Any, rv: Any, mom: Any, eps: Any, extra: Any,
              training: bool, fast: bool = False) -> torch.Tensor:
        if kind == "batch":
            return self._bn(h, g, b, rm, rv, mom, eps, training)
        return self._lp(h, g, b, rm, rv, mom, eps, extra[0], extra[1], training, fast)

    def forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        """The training step's forward (per-member batches) or the eval forward (one input)."""
        return self._run(self.layers, self.head, x, training, shared=not training, fast=training)

    def functional(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor] | None,
                   x: torch.Tensor, training: bool, taps: list | None = None,
                   sites: dict | None = None) -> torch.Tensor:
        """The forward with other stacked tensors: N points (members, or members x step lengths)
        of params [N, ...] on their own inputs x [N, B, ...] -> [N, B, C]. `buffers` [N, ...]
        are written by training-mode normalization (pass copies). `taps` (a list) receives each
        normalization's (input, output) [N, B, U], as a hook on the Net's norm module sees them;
        `sites` (a dict) receives {(point name, "bn_in" | "preact"): [N, B, U]}, the tensors the
        Net's Block passes its identity taps of those names."""
        layers, head = self.bind(params, buffers)
        return self._run(layers, head, x, training, shared=False, taps=taps, sites=sites)

    def _run(self, layers: list, head: tuple, x: torch.Tensor, training: bool, shared: bool,
             taps: list | None = None, sites: dict | None = None, fast: bool = False) -> torch.Tensor:
        # shared: one input [N, ...] for every member (eval); else per-member inputs [K, B, ...]
        h = x.flatten(1) if shared else x.flatten(2)
        # eval (shared): every layer feature-major, the first as one matrix product for all members
        fm_all = shared
        for li, (w, bias, out_in, kind, g, b, rm, rv, mom, eps, extra, position) in enumerate(layers):
            if shared:
                h = _shared_linear(h, w, bias, out_in)
                shared = False
            else:
                h = _linear(h, w, bias, out_in, out_in or fm_all)
            point = self.static[li][0][len("layers."):] if sites is not None else ""
            if position == "pre":  # Block: act(preact(norm(bn_in(z))))
                if sites is not None:
                    sites[(point, "bn_in")] = h
                if kind is not None:
                    h = self._tapped(h, kind, g, b, rm, rv, mom, eps, extra, training, taps, fast)
                if sites is not None:
                    sites[(point, "preact")] = h
                if self.act is not None:
                    h = self.act(h)
            else:  # Block: norm(bn_in(act(preact(z))))
                if sites is not None:
                    sites[(point, "preact")] = h
                if self.act is not None:
                    h = self.act(h)
                if sites is not None:
                    sites[(point, "bn_in")] = h
                if kind is not None:
                    h = self._tapped(h, kind, g, b, rm, rv, mom, eps, extra, training, taps, fast)
        w, bias, out_in = head
        if shared:
            return _shared_linear(h, w, bias, out_in)
        return _linear(h, w, bias, out_in, out_in or fm_all)

    def _tapped(self, h: torch.Tensor, kind: Any, g: Any, b: Any, rm: Any, rv: Any, mom: Any, eps: Any,
                extra: Any, training: bool, taps: list | None, fast: bool = False) -> torch.Tensor:
        out = self._norm(h, kind, g, b, rm, rv, mom, eps, extra, training, fast)
        if taps is not None:
            taps.append((h, out))
        return out

    def _named(self, net: Any) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
        """The Net's (name, parameter) and (name, buffer) lists, walked once per Net (a deep
        net's module tree is slow to walk on every due step; the tensors stay the same objects:
        probes restore them in place)."""
        got = self._named_cache.get(id(net))
        if got is None or got[0] is not net:
            got = (net, list(net.named_parameters()), list(net.named_buffers()))
            self._named_cache[id(net)] = got
        return got[1], got[2]

    @torch.no_grad()
    def materialize(self, k: int, net: Any, grads: bool = False) -> None:
        """Member k's current weights (and gradients, BN buffers) into its own Net."""
        named_params, named_buffers = self._named(net)
        for n, p in named_params:
            t = n in self.transposed
            p.copy_(self.params[n][k].T if t else self.params[n][k])
            if grads:
                g = self.params[n].grad
                p.grad = None if g is None else (g[k].T if t else g[k]).clone(memory_format=torch.contiguous_format)
        for n, b in named_buffers:
            if n.endswith("num_batches_tracked"):
                b.copy_(self._nbt0[n][k] + self.forwards)
            else:
                b.copy_(self.buffers[n][k])

    def buffers_of(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's BN buffers as a state snapshot (bncli.train.buffer_snapshot's form)."""
        out = {}
        for n in self.buffer_names:
            if n.endswith("num_batches_tracked"):
                out[n] = self._nbt0[n][k] + self.forwards
            else:
                out[n] = self.buffers[n][k].clone()
        return out

    def keep_counters(self) -> None:
        self._nbt0 = {n: b.clone() for n, b in self.buffers.items() if n.endswith("num_batches_tracked")}


NARROW = 16  # a layer with at most this many outputs (and a larger batch) runs feature-major


def _feature_major(out: int, kind: Any, batch: int | None) -> bool:
    """Whether a layer of `out` outputs (normalized by `kind`) trains feature-major at this batch
    size: narrow layers (out <= NARROW < batch) and BN layers (BN then reduces each unit's batch
    where it lies contiguous: its backward ~4x faster than over a [B, K·U] copy); None: unknown."""
    return batch is not None and batch > 1 and (out <= NARROW < batch or kind == "batch")


def _linear(h: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, out_in: bool,
            fm: bool) -> torch.Tensor:
    """h [K, B, in] @ the layer's weight (+ bias [K, out]) -> [K, B, out]; w is [K, out, in]
    (out_in) or [K, in, out]. fm (or a narrow layer, out <= NARROW < B): feature-major, (W h^T)^T,
    the output [K, out, B] in memory (seen as [K, B, out]), so narrow products are wide ones (2-4x
    faster than [B, in] @ [in, 10]) and BN normalizes each unit's batch where it lies contiguous
    (StackedMLP._bn); else batch-major, h W^T."""
    wf = w if out_in else w.transpose(1, 2)  # [K, out, in]
    n = h.shape[1]
    if n > 1 and (fm or wf.shape[1] <= NARROW < n):
        ht = h.transpose(1, 2)
        y = torch.bmm(wf, ht) if bias is None else torch.baddbmm(bias.unsqueeze(2), wf, ht)
        return y.transpose(1, 2)
    wb = wf.transpose(1, 2)  # [K, in, out]
    return torch.bmm(h, wb) if bias is None else torch.baddbmm(bias.unsqueeze(1), h, wb)


def _shared_linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None, out_in: bool) -> torch.Tensor:
    """One input x [N, in] through every member's first layer as a single matrix product,
    [K·out, in] @ [in, N]: the output [K, out, N] (feature-major) seen as [K, N, out]."""
    wf = w if out_in else w.transpose(1, 2)
    k, out = wf.shape[0], wf.shape[1]
    flat = wf.reshape(k * out, wf.shape[2])
    y = flat @ x.T if bias is None else torch.addmm(bias.reshape(k * out, 1), flat, x.T)
    return y.view(k, out, x.shape[0]).transpose(1, 2)


def _activation_of(net: Any) -> str:
    act = next(iter(net.layers.values())).act
    for name, fn in (("relu", torch.nn.ReLU), ("sigmoid", torch.nn.Sigmoid), ("tanh", torch.nn.Tanh)):
        if isinstance(act, fn):
            return name
    return "linear"
