"""C6 static check: scale one weight W_i by alpha (nothing else); measure output, loss, gradient."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from bncli.models import Block, Net
from bncli.norms import norm_info
from bncli.probes.base import cos64, forward_hooks, measuring, norm64

# torch refuses eps = 0 in training mode; 1e-30 is zero next to any float32 variance above ~1e-23,
# so this variant shows what is left of invariance once the eps term is gone (float32 roundoff).
EPS_OFF = 1e-30

LossFn = Callable[..., torch.Tensor]




def expected_invariance(block: Block, has_bias: bool) -> tuple[bool, str]:
    """Whether theory says the loss cannot depend on the scale of this block's W (α > 0), and why.

    The scaling is of W_i, the whole weight that feeds the normalization (Block.weight); for
    weight norm that is the direction v of W = g·v/‖v‖, which the layer ignores by construction.
    BN and ℓp normalize with batch statistics per unit, so b_i cancels; LN and GN normalize each
    example across units, where a bias that differs between units does not cancel.
    """
    kind = block.norm_kind
    if not block.normalized:
        return False, "no normalization after W"
    info = norm_info(kind)  # what it subtracts (the entry's bias_cancels, over) decides
    if info.reparametrize is not None:
        return True, info.invariance or f"{info.in_prose}: scaling the reparametrized weight changes nothing"
    name = info.short
    cancels = info.bias_cancels
    over = info.bias_note or f"per example over {info.over}"
    if block.position == "pre" or isinstance(block.act, nn.Identity):
        where = "right after W" if block.position == "pre" else "after a linear activation"
        if info.reference:  # BN's own wording
            pre = block.position == "pre"
            return True, "BN right after W (bias cancels)" if pre else "BN after a linear activation"
        if cancels:
            return True, f"{name} {where}, scaling W (the per-unit batch mean removes b)"
        if not has_bias:
            return True, f"{name} {where}, scaling W ({over}; no bias)"
        return False, (f"{name} {where}: scaling W but not b, b does not cancel ({over}); "
                       "invariant only with b = 0")
    if isinstance(block.act, nn.ReLU):
        if not has_bias:
            return True, "BN after ReLU, no bias" if info.reference else f"{name} after ReLU, no bias"
        return False, f"{name} after ReLU(Wx + b): only while b = 0"
    return False, f"{name} after {type(block.act).__name__}: not homogeneous"


def eps_modules(net: Net) -> list[nn.Module]:
    """The normalization modules of `net` that add an ε (BN, LN, GN, ℓp; not weight norm)."""
    return [blk.norm for blk in net.layers.values() if blk.normalized and hasattr(blk.norm, "eps")]


def eps_effect(var: torch.Tensor, eps: float, alpha: float) -> float:
    """Closed form, worst unit: |1 - sqrt((σ² + ε) / (σ² + ε/α²))|, BN output change from ε alone.

    Train-mode BN of αz is α(z - μ)/sqrt(α²σ² + ε) = (z - μ)/sqrt(σ² + ε/α²); reference: α = 1.
    Units with zero variance are skipped: their BN output is 0 whatever α is.
    """
    v = var[var > 0].double()
    if v.numel() == 0:
        return 0.0
    r = 1.0 - torch.sqrt((v + eps) / (v + eps / alpha**2))
    return float(r.abs().max())


def eps_break_alpha(var: torch.Tensor, eps: float, tol: float) -> tuple[float, float]:
    """(α below which ε alone moves BN's output by more than tol, the large-α floor ε/2σ²-ish).

    From eps_effect = tol for the smallest-variance unit: α = sqrt(ε / ((σ²+ε)/(1-tol)² - σ²)).
    The floor is |1 - sqrt((σ²+ε)/σ²)|: the change as α -> ∞ (the α = 1 reference carries ε too).
    """
    v = var[var > 0].double()
    if v.numel() == 0:
        return math.nan, math.nan
    s = float(v.min())
    denom = (s + eps) / (1.0 - tol) ** 2 - s
    low = math.sqrt(eps / denom) if denom > 0 else math.inf
    floor = abs(1.0 - math.sqrt((s + eps) / s))
    return low, floor


def _rel(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(max |a - b|, max |a - b| / max |b|) in float64."""
    d = float((a.double() - b.double()).abs().max())
    scale = float(b.double().abs().max())
    return d, d / scale if scale > 0 else math.inf


def _unit_var(z: torch.Tensor) -> torch.Tensor:
    """Biased batch variance per unit (conv: per channel over batch × height × width), as BN."""
    dims = [0] + list(range(2, z.dim()))
    return z.detach().double().var(dim=dims, unbiased=False)


def _run_from(net: Net, h: torch.Tensor, start: int = 0, inputs: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """Net.forward from block `start` on (the same operations), recording each block's input.
    A net whose points are not a chain (a ResNet, a user's module) runs whole from its input
    (`start` 0 only; nothing recorded)."""
    if not net.is_chain:
        assert start == 0
        return net(h)
    names = net.point_names
    if start == 0 and net.flatten_input:
        h = h.flatten(1)
    for n in names[start:]:
        if inputs is not None:
            inputs[n] = h.detach()
        h = net.layers[n](h)
    return net.head(h.flatten(1))


def _sweep(
    net: Net,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    alphas: Sequence[float],
    layers: Sequence[str],
    grads: bool,
    capture_var: bool = False,
) -> dict[str, Any]:
    """Per (layer, α): W_i ← αW_i on the scratch copy `net`, one forward from block i on (the
    blocks before i do not see W_i, so their output is reused) and one backward for W_i only."""
    weights = {n: net.block(n).weight for n in layers}
    originals = {n: w.detach().clone() for n, w in weights.items()}
    variances: dict[str, torch.Tensor] = {}

    def hook(name: str, _m: nn.Module, inputs: Any, _o: Any) -> None:
        variances[name] = _unit_var(inputs[0])

    taps = [(n, net.block(n).bn_in) for n in layers] if capture_var else []
    block_in: dict[str, torch.Tensor] = {}
    with torch.set_grad_enabled(grads), forward_hooks(taps, hook):
        out1 = _run_from(net, x, 0, block_in)
        loss1 = loss_fn(out1, y)
    g1 = dict(zip(layers, torch.autograd.grad(loss1, [weights[n] for n in layers]), strict=True)) if grads else {}
    out1, loss1 = out1.detach(), float(loss1.detach())
    res: dict[str, Any] = {"loss": loss1, "out": out1, "g1": g1, "var": variances, "layers": {}}
    for n in layers:
        w, start = weights[n], net.point_names.index(n)
        rows: dict[str, list[float]] = {k: [] for k in ("out_abs", "out_rel", "loss_abs", "ratio_x_alpha", "grad_err")}
        n1 = norm64(g1[n]) if grads else math.nan
        try:
            for a in alphas:
                with torch.no_grad():
                    w.copy_(originals[n] * a)
                with torch.set_grad_enabled(grads):
                    # a chain reruns from block i; other nets from the input
                    out = _run_from(net, block_in[n], start) if net.is_chain else net(x)
                    loss = loss_fn(out, y)
                d_abs, d_rel = _rel(out.detach(), out1)
                rows["out_abs"].append(d_abs)
                rows["out_rel"].append(d_rel)
                rows["loss_abs"].append(abs(float(loss.detach()) - loss1))
                if grads:
                    (ga,) = torch.autograd.grad(loss, [w])  # ∇ at αW: W's slot now holds αW
                    rows["ratio_x_alpha"].append(a * norm64(ga) / n1 if n1 > 0 else math.nan)
                    rows["grad_err"].append(norm64(a * ga.double() - g1[n].double()) / n1 if n1 > 0 else math.nan)
        finally:
            with torch.no_grad():
                w.copy_(originals[n])
        res["layers"][n] = rows
    return res


def static_check(
    model: Net,
    x: torch.Tensor,
    y: torch.Tensor,
    loss_fn: LossFn,
    alphas: Sequence[float],
    layers: Sequence[str],
    tol: float,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Scale each W_i by each α and measure, with BN in training mode (batch statistics).

    All work happens on a deep copy of the model (its parameters and BN buffers are copies), so
    the model itself is only read; `measuring` guards it anyway. Three passes: eval mode (running
    statistics, which were gathered for the unscaled W: not invariant), training mode with BN's
    own ε, and training mode with ε -> 1e-30 (what is left is float32 roundoff).
    """
    t0 = time.perf_counter()
    with measuring(model, device):
        net = copy.deepcopy(model)
        # eval first: the training-mode passes below move the copy's running statistics
        net.eval()
        ev = _sweep(net, x, y, loss_fn, alphas, layers, False)
        net.train()
        main = _sweep(net, x, y, loss_fn, alphas, layers, True, capture_var=True)
        # every normalization with an ε (BN, LN, GN, ℓp); weight norm has none
        norms = eps_modules(net)
        eps0 = None
        if norms:
            for m in norms:
                m.eps = EPS_OFF
            eps0 = _sweep(net, x, y, loss_fn, alphas, layers, True)
            for m, orig in zip(norms, eps_modules(model), strict=True):
                m.eps = orig.eps
        out_layers: dict[str, Any] = {}
        for n in layers:
            blk = net.block(n)
            bias = blk.weight_module.bias
            expected, why = expected_invariance(blk, bias is not None)
            bias_rel = None
            if bias is not None:
                # BN subtracts each unit's batch mean, so a per-unit constant bias should cancel
                saved = bias.detach().clone()
                with torch.no_grad():
                    bias.zero_()
                    out_nb = _run_from(net, x)
                    bias.copy_(saved)
                bias_rel = _rel(out_nb, main["out"])[1]
            var = main["var"][n]
            eps = float(blk.norm.eps) if blk.normalized and hasattr(blk.norm, "eps") else None
            # the closed form of ε's effect is BN's (per-unit batch variance); other norms: None
            closed = eps is not None and norm_info(blk.norm_kind).eps_closed_form
            low, floor = eps_break_alpha(var, eps, tol) if closed else (None, None)
            w = blk.weight.detach()
            row = dict(main["layers"][n])
            row.update(
                expected_invariant=expected,
                why=why,
                has_bias=bias is not None,
                bias_cancel_rel=bias_rel,
                eps=eps,
                var_min=float(var.min()),
                var_median=float(var.median()),
                alpha_eps_low=low,
                eps_floor=floor,
                eps_pred=[eps_effect(var, eps, a) for a in alphas] if closed else None,
                weight_norm=norm64(w),
                grad_norm=norm64(main["g1"][n]),
                cos_grad_w=cos64(main["g1"][n], w),
                eps0_out_rel=eps0["layers"][n]["out_rel"] if eps0 and eps is not None else None,
                eps0_ratio_x_alpha=eps0["layers"][n]["ratio_x_alpha"] if eps0 and eps is not None else None,
                eps0_grad_err=eps0["layers"][n]["grad_err"] if eps0 and eps is not None else None,
                eval_out_rel=ev["layers"][n]["out_rel"],
            )
            out_layers[n] = row
        del net
    return {
        "alphas": [float(a) for a in alphas],
        "mode": "train (batch statistics)",
        "n_examples": int(x.shape[0]),
        "loss": main["loss"],
        "layers": out_layers,
        "wall_s": time.perf_counter() - t0,
    }
