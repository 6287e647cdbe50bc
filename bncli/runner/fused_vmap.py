"""VmapStack: K Nets of one architecture as one batched model through torch.func — the first
member's Net called with `functional_call` under `vmap` over stacked parameters and buffers.

The conv families (cnn, vgg, resnet) train fused with it (bncli.runner.fused.train_fused picks it;
MLPs keep the hand-written StackedMLP). Any Net forward works: vmap turns each member's conv into
one grouped conv, its BN into one batch norm over K·C channels, the residual sums and pools into
batched ops; the maths per member is its single run's (tests/test_fused_conv.py: float64 records
equal single ones to 1e-10).

BN buffers are stacked [K, ...] and batched too, so BN's in-place running-statistic updates land
in each member's own slice, num_batches_tracked included (each slice counts its own training
forwards, what a single run's counter holds); `materialize` and `buffers_of` copy them as they are.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch.func import functional_call, vmap


def _template(net: torch.nn.Module) -> torch.nn.Module:
    """A hook-free copy of a member's Net on the meta device: only its code and structure are
    used (functional_call supplies every parameter and buffer), and probes may hook the member's
    own Net (those hooks must not fire on the batched forward)."""
    t = copy.deepcopy(net).to("meta")
    if hasattr(t, "set_taps"):
        t.set_taps(True)  # the module forward (the lean pass binds its own tensors)
    for m in t.modules():
        m._forward_hooks.clear()
        m._forward_pre_hooks.clear()
        m._backward_hooks.clear()
        m._backward_pre_hooks.clear()
    return t


class VmapStack:
    """K Nets of one architecture as stacked tensors: parameters [K, ...] (leaves with grads),
    buffers [K, ...]; `forward(x, training)` with x [K, B, ...] (training: per-member batches) or
    [N, ...] (eval: one input for every member) -> [K, B, C]. The interface of StackedMLP."""

    transposed: set[str] = set()  # parameters are stored as the Net holds them

    def __init__(self, nets: Sequence[Any]) -> None:
        first = nets[0]
        self.k = len(nets)
        self.names = [n for n, _ in first.named_parameters()]
        self.buffer_names = [n for n, _ in first.named_buffers()]
        with torch.no_grad():
            self.params = {n: torch.stack([dict(m.named_parameters())[n].detach() for m in nets])
                           .contiguous().requires_grad_() for n in self.names}
            self.buffers = {n: torch.stack([dict(m.named_buffers())[n].detach() for m in nets]).contiguous()
                            for n in self.buffer_names}
        self.forwards = 0  # training-mode forward passes (StackedMLP's counter; kept for the loop)
        self._net = _template(first)
        self._training: bool | None = None

        def call(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                 x: torch.Tensor) -> torch.Tensor:
            return functional_call(self._net, (params, buffers), (x,))

        self._train_fn = vmap(call, in_dims=(0, 0, 0))
        self._eval_fn = vmap(call, in_dims=(0, 0, None))

    def parameters(self) -> list[torch.Tensor]:
        return [self.params[n] for n in self.names]

    def forward(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        if self._training is not training:
            self._net.train(training)
            self._training = training
        fn = self._train_fn if training else self._eval_fn
        return fn(self.params, self.buffers, x)

    @torch.no_grad()
    def materialize(self, k: int, net: Any, grads: bool = False) -> None:
        """Member k's current weights (and gradients, BN buffers) into its own Net."""
        for n, p in net.named_parameters():
            p.copy_(self.params[n][k])
            if grads:
                g = self.params[n].grad
                p.grad = None if g is None else g[k].clone(memory_format=torch.contiguous_format)
        for n, b in net.named_buffers():
            b.copy_(self.buffers[n][k])

    def buffers_of(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's BN buffers as a state snapshot (bncli.train.buffer_snapshot's form)."""
        return {n: self.buffers[n][k].clone() for n in self.buffer_names}

    def keep_counters(self) -> None:
        """Nothing to keep: each member's num_batches_tracked slice counts its own forwards."""
