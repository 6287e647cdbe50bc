"""scale-check (C6): the scale-invariance probe (static check at start and end, ‖W‖ in training)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from bncli.data import Dataset
from bncli.errors import SpecError
from bncli.models import loss_fn_for
from bncli.probes.base import ProbeBase
from bncli.probes.scale_static import static_check
from bncli.spec import ScaleSpec, Spec, TrainSpec

SERIES_KEYS = ("norm", "eff_step", "grad_norm", "cos_grad_w", "dnorm2", "pred", "cross")


class ScaleProbe(ProbeBase):
    """Static check at on_start and on_end; every N steps ‖W_t‖, η/‖W_t‖² and ‖W_{t+1}‖² − ‖W_t‖².

    The norm identity is measured in float64 as Δ = 2⟨W_t, d⟩ + ‖d‖² with d = W_{t+1} − W_t, which
    is exactly ‖W_{t+1}‖² − ‖W_t‖² but does not lose the small difference to cancellation.
    Under plain SGD d = −η g, so Δ = η²‖g‖² − 2η⟨W_t, g⟩ ("cross" is the second term).
    """

    name = "scale"

    def __init__(self, cfg: ScaleSpec, train: TrainSpec, lr: float, data: Dataset, layers: Sequence[str]) -> None:
        super().__init__(cfg.every)
        self.cfg = cfg
        self.lr = float(lr)
        self.layers = list(layers)
        self.x, self.y = data.probe_batch(cfg.probe_size)
        self.loss_fn = loss_fn_for(data.task)
        self.identity_applies = train.optimizer == "sgd" and train.momentum == 0 and train.weight_decay == 0
        self.static: dict[str, Any] = {}
        self.steps: list[int] = []
        self.series: dict[str, dict[str, list[float]]] = {n: {k: [] for k in SERIES_KEYS} for n in self.layers}
        self.final_norm: dict[str, float] = {}
        self._before: tuple[int, dict[str, tuple[torch.Tensor, torch.Tensor]]] | None = None

    def _check(self, run: Any) -> dict[str, Any]:
        return static_check(
            run.model,
            self.x,
            self.y,
            self.loss_fn,
            self.cfg.alphas,
            self.layers,
            self.cfg.tolerance,
            run.device,
        )

    def _weights(self, model: Any) -> dict[str, torch.Tensor]:
        named = dict(model.named_parameters())
        wn = model.weight_param_names()
        return {n: named[wn[n]] for n in self.layers}

    def on_start(self, run: Any) -> None:
        self.static["init"] = self._check(run)

    def before_update(self, ctx: Any) -> None:
        snap = {}
        for n, p in self._weights(ctx.run.model).items():
            # read .grad, never write it: the optimizer step still needs it
            g = torch.zeros_like(p, dtype=torch.float64) if p.grad is None else p.grad.detach().double()
            snap[n] = (p.detach().double().clone(), g.clone())
        self._before = (ctx.step, snap)

    def after_update(self, ctx: Any) -> None:
        if self._before is None or self._before[0] != ctx.step:
            return
        step, snap = self._before
        self._before = None
        self.steps.append(step)
        for n, p in self._weights(ctx.run.model).items():
            w0, g = snap[n]
            d = p.detach().double() - w0
            w2, g2, wg = float((w0 * w0).sum()), float((g * g).sum()), float((w0 * g).sum())
            s = self.series[n]
            s["norm"].append(math.sqrt(w2))
            s["eff_step"].append(self.lr / w2 if w2 > 0 else math.inf)
            s["grad_norm"].append(math.sqrt(g2))
            s["cos_grad_w"].append(wg / math.sqrt(w2 * g2) if w2 > 0 and g2 > 0 else math.nan)
            s["dnorm2"].append(float(2 * (w0 * d).sum() + (d * d).sum()))
            s["pred"].append(self.lr**2 * g2)
            s["cross"].append(-2 * self.lr * wg)

    def on_end(self, run: Any) -> None:
        with torch.no_grad():
            self.final_norm = {n: float(p.detach().double().norm()) for n, p in self._weights(run.model).items()}
        if getattr(run, "diverged_at", None) is None:  # a diverged net's scale check means nothing
            self.static["end"] = self._check(run)

    def result(self) -> dict[str, Any]:
        return {
            "layers": self.layers,
            "lr": self.lr,
            "identity_applies": self.identity_applies,
            "static": self.static,
            "steps": self.steps,
            "series": self.series,
            "final_norm": self.final_norm,
        }


def scale_layers(spec: Spec) -> list[str]:
    """The layers whose W feeds a normalization point (analysis.scale.layers, default all)."""
    from bncli.models.registry import point_names

    names = point_names(spec.model)
    wanted = spec.analysis.scale.layers
    if not wanted:
        return names
    missing = [n for n in wanted if n not in names]
    if missing:
        raise SpecError(
            f"analysis.scale.layers: no normalization point named {', '.join(missing)} "
            f"(this model has {', '.join(names)})"
        )
    return [n for n in names if n in wanted]


def make_probe(spec: Spec, arm: Any, lr: float, seed: int, data: Dataset) -> ScaleProbe:
    """The C6 scale probe (registry: scale)."""
    return ScaleProbe(spec.analysis.scale, spec.train, lr, data, scale_layers(spec))
