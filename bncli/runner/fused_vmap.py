"""VmapStack: K Nets of one architecture as one batched model through torch.func — the first
member's Net called with `functional_call` under `vmap` over stacked parameters and buffers.

The conv families (cnn, vgg, resnet) train fused with it (bncli.runner.fused.train_fused picks it;
MLPs keep the hand-written StackedMLP). Any Net forward works: vmap turns each member's conv into
one grouped conv and the residual sums, activations and pools into batched ops; BN and max-pool
get rules of their own that work on [B, K·C, ...] as the grouped conv leaves it (StackedMLP's flat
BN; torch.func's rules copy the members to the front and apply BN's affine in separate ops). The
maths per member is its single run's (tests/test_fused_conv.py: float64 records equal single ones
to 1e-10; grouped and single convolutions round differently, ~1e-13 after a few steps).
The plan fuses these families on a GPU only (their registry entries' fuses_on): on the CPU a grouped
convolution is slower than its K single ones.

BN buffers are stacked [K, ...] and batched too, so BN's in-place running-statistic updates land
in each member's own slice, num_batches_tracked included (each slice counts its own training
forwards, what a single run's counter holds); `materialize` and `buffers_of` copy them as they are.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap


def _flat(t: torch.Tensor | None, d: int | None, k: int) -> torch.Tensor | None:
    """A per-channel tensor of K members as one [K·C] vector (member-major)."""
    if t is None:
        return None
    return t.repeat(k) if d is None else t.movedim(d, 0).reshape(-1)


def _channels_of_k(x: torch.Tensor, d: int, k: int) -> tuple[torch.Tensor, torch.Size]:
    """A batched [B, C, ...] member view (physical batch dim d) as one [B, K·C, ...] tensor."""
    xp = x.movedim(d, 1)
    shape = xp.shape
    return xp.reshape(shape[0], k * shape[2], *shape[3:]), shape


class _BatchNormK(torch.autograd.Function):
    """F.batch_norm whose vmap rule is StackedMLP's: one batch norm over [B, K·C, ...] with the
    members' affine parameters and running statistics flattened to [K·C] (the statistics are
    views: the in-place update lands in each member's slice). torch.func's own rule normalizes
    without the affine and applies it in separate ops: about twice the time on the CPU. Only
    ever called under vmap; autograd differentiates the ops of the rule."""

    @staticmethod
    def forward(x, rm, rv, w, b, training, momentum, eps):  # type: ignore[override]
        return F.batch_norm(x, rm, rv, w, b, training, momentum, eps)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:  # never used: the vmap rule's ops are recorded
        raise RuntimeError("_BatchNormK is only differentiated under vmap")

    @staticmethod
    def vmap(info: Any, in_dims: Any, x, rm, rv, w, b, training, momentum, eps):  # type: ignore[override]
        xd, rmd, rvd, wd, bd = in_dims[:5]
        k = info.batch_size
        if xd is None or rmd != 0 or rvd != 0:
            raise RuntimeError("_BatchNormK needs a batched input and stacked running statistics")
        flat, shape = _channels_of_k(x, xd, k)
        out = F.batch_norm(flat, rm.view(-1), rv.view(-1), _flat(w, wd, k), _flat(b, bd, k),
                           training, momentum, eps)
        return out.view(shape), 1


class _MaxPool2dK(torch.autograd.Function):
    """F.max_pool2d whose vmap rule pools [B, K·C, H, W] as it lies (each channel alone: the
    same maxima), where torch.func's rule first copies the members to the front. Only ever
    called under vmap."""

    @staticmethod
    def forward(x, kernel, stride, padding, dilation, ceil_mode):  # type: ignore[override]
        return F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        pass

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:
        raise RuntimeError("_MaxPool2dK is only differentiated under vmap")

    @staticmethod
    def vmap(info: Any, in_dims: Any, x, kernel, stride, padding, dilation, ceil_mode):  # type: ignore[override]
        if in_dims[0] is None:
            return F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode), None
        if x.dim() != 5:  # unbatched [C, H, W] members: pool them as a batch
            return F.max_pool2d(x.movedim(in_dims[0], 0), kernel, stride, padding, dilation, ceil_mode), 0
        flat, shape = _channels_of_k(x, in_dims[0], info.batch_size)
        out = F.max_pool2d(flat, kernel, stride, padding, dilation, ceil_mode)
        return out.view(shape[0], shape[1], shape[2], *out.shape[2:]), 1


def _bn_forward(m: nn.modules.batchnorm._BatchNorm) -> Any:
    """nn.BatchNorm's forward (fixed momentum, running statistics tracked) through _BatchNormK."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        if m.training:
            m.num_batches_tracked.add_(1)  # type: ignore[operator, union-attr]
        return _BatchNormK.apply(x, m.running_mean, m.running_var, m.weight, m.bias, m.training,
                                 m.momentum, m.eps)

    return forward


def _pool_forward(m: nn.MaxPool2d) -> Any:
    def forward(x: torch.Tensor) -> torch.Tensor:
        return _MaxPool2dK.apply(x, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)

    return forward


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
        if (isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
                and m.momentum is not None and type(m) in (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.forward = _bn_forward(m)  # type: ignore[method-assign]
        elif type(m) is nn.MaxPool2d and not m.return_indices:
            m.forward = _pool_forward(m)  # type: ignore[method-assign]
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
        named = [(dict(m.named_parameters()), dict(m.named_buffers())) for m in nets]  # walked once per Net
        with torch.no_grad():
            self.params = {n: torch.stack([p[n].detach() for p, _ in named])
                           .contiguous().requires_grad_() for n in self.names}
            self.buffers = {n: torch.stack([b[n].detach() for _, b in named]).contiguous()
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
