"""RMSNorm: y = x / sqrt(mean(x²) + ε) · γ per example over the layer's units (conv: C x H x W,
γ per channel). torch is imported when a layer is built."""

from __future__ import annotations

from typing import Any


def build_rms(arm: Any, width: int, conv: bool) -> Any:
    """The registry's builder: (arm, width, conv) -> nn.Module."""
    import torch
    from torch import nn

    class RMSNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.eps = arm.eps
            if arm.affine:
                self.weight = nn.Parameter(torch.ones(width))
            else:
                self.register_parameter("weight", None)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            dims = tuple(range(1, x.dim()))
            y = x * torch.rsqrt(x.pow(2).mean(dim=dims, keepdim=True) + self.eps)
            if self.weight is not None:
                y = y * self.weight.view(1, -1, *([1] * (x.dim() - 2)))
            return y

    return RMSNorm()


def rms_note(a: Any) -> list[str]:
    """C2's note: what RMSNorm fixes by construction at the nonlinearity's input."""
    gamma = " (times γ)" if a.has_affine else ""
    return [f"on {a.name} (RMSNorm) each example's root mean square across the layer's units is ≈ 1{gamma} "
            "by construction; nothing is centred and no unit's distribution over the batch is fixed"]
