"""measure-ics (C2, C3): the layer-input distribution probe and the probe factory."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.func import functional_call

from bncli.data import Dataset
from bncli.models import Net
from bncli.probes.base import (
    ProbeBase,
    as_units,
    forward_hooks,
    measuring,
    params_and_buffers,
    spread_indices,
)
from bncli.probes.ics_grad import GradientIcsProbe, noise_seed
from bncli.probes.ics_stats import (
    PERCENTILES,
    shift_stats,
    stacked_moments,
    stacked_percentiles,
    stacked_shift_stats,
    unit_moments,
    unit_percentiles,
)
from bncli.spec import ArmSpec, Spec
from bncli.train import RunContext, StepContext

# `preact` is the input of the nonlinearity (BN's output after γ, β on BN arms): what C2 is about.
# `bn_in` is the input of the normalization (on a plain arm the same tensor as `preact`).
# `preact_eval` is `preact` in eval mode: running statistics, no noise (what the trained net uses).
SITES = ("preact", "bn_in", "preact_eval")


def next_noise_seed(seed: int | None) -> int | None:
    """The noise seed the training loop sets at the next step (it uses base + step mod 2^62)."""
    return None if seed is None else (seed + 1) % (1 << 62)


def _width(model: Net, layer: str) -> int:
    blk = model.block(layer)
    return int(blk.weight.shape[0])


class DistributionProbe(ProbeBase):
    """Per due step t: the distribution at θ_t and at θ_{t+1} on a fixed probe batch (train mode).

    The state at θ_t gives mean, variance and tracked-unit percentiles; the pair (θ_t, θ_{t+1})
    gives the one-step shift |Δμ|, |Δσ²| and W1. Each distribution is taken with the noise of its
    own step (θ_{t+1} with step t+1's draw), as the network would see it in training. BN uses the
    probe batch's statistics on buffer copies, so running statistics never move.
    """

    name = "ics_dist"

    def __init__(self, every: int, probe: tuple[torch.Tensor, torch.Tensor],
                 layers: Sequence[str] | None, tracked_units: int) -> None:
        super().__init__(every)
        self.x_probe = probe[0]
        self.requested = list(layers) if layers else None
        self.n_tracked = tracked_units
        self.layers: list[str] = []
        self.units: dict[str, list[int]] = {}
        self.steps: list[int] = []
        self.series: dict[str, dict[str, dict[str, Any]]] = {}
        self._before: dict[tuple[str, str], torch.Tensor] | None = None

    def on_start(self, run: RunContext) -> None:
        model = run.model
        wanted = self.requested
        self.layers = [n for n in model.point_names if wanted is None or n in wanted]
        self.units = {n: spread_indices(_width(model, n), self.n_tracked)
                      for n in self.layers}
        self.series = {
            layer: {
                site: {
                    "mean": [], "var": [], "d_mean": [], "d_var": [], "w1": [], "d_pct": [],
                    "percentiles": {f"p{round(q * 100)}": [[] for _ in self.units[layer]]
                                    for q in PERCENTILES},
                }
                for site in SITES
            }
            for layer in self.layers
        }

    def _capture(self, model: Net, seed: int | None) -> dict[tuple[str, str], torch.Tensor]:
        """Every site of every measured layer: training mode (batch statistics on buffer copies,
        this step's noise), then eval mode (running statistics, no noise)."""
        seen: dict[tuple[str, str], torch.Tensor] = {}
        for mode in ("train", "eval"):
            taps = []
            for layer in self.layers:
                blk = model.block(layer)
                if mode == "train":
                    taps += [((layer, "preact"), blk.preact), ((layer, "bn_in"), blk.bn_in)]
                else:
                    taps.append(((layer, "preact_eval"), blk.preact))

            def keep(key: Any, _m: Any, _i: Any, out: torch.Tensor) -> None:
                seen[key] = as_units(out.detach())

            with measuring(model, self.x_probe.device), noise_seed(model, seed), torch.no_grad():
                model.train(mode == "train")
                params, buffers = params_and_buffers(model)
                with forward_hooks([(k, m) for k, m in taps], keep):  # type: ignore[misc]
                    functional_call(model, (params, buffers), (self.x_probe,))
        return seen

    def before_update(self, ctx: StepContext) -> None:
        self._record_before(self._capture(ctx.run.model, ctx.noise_seed), ctx.step)

    def after_update(self, ctx: StepContext) -> None:
        if self._before is None:
            return
        self._record_after(self._capture(ctx.run.model, next_noise_seed(ctx.noise_seed)))

    # ---- the group form (bncli.probes.group): every due member of a fused MLP group at once

    def grouped(self) -> bool:
        return True  # fused groups hold no noise arm (plan.fusable); the group forms run on MLPs only

    @staticmethod
    def _group_capture(probes: Sequence[DistributionProbe], g: Any) -> dict[tuple[str, str], torch.Tensor]:
        """_capture for every member of g.members on the stacked model as it is now (θ_t before
        the update, θ_{t+1} after): training mode on copies of the members' buffers, then eval
        mode on their running statistics; each member on its own probe batch. Reads only. Every
        site stacked over the members, [K, N, C]."""
        model = g.model
        idx = g.index()
        params = {n: p.detach().index_select(0, idx) for n, p in model.params.items()}
        xs = torch.stack([p.x_probe for p in probes])
        layers = probes[0].layers
        seen: dict[tuple[str, str], torch.Tensor] = {}
        with torch.no_grad():
            for mode in ("train", "eval"):
                sites: dict[tuple[str, str], torch.Tensor] = {}
                bufs = {n: b.index_select(0, idx) for n, b in model.buffers.items()}  # copies
                model.functional(params, bufs, xs, mode == "train", sites=sites)
                for layer in layers:
                    if mode == "train":
                        seen[(layer, "preact")] = sites[(layer, "preact")]
                        seen[(layer, "bn_in")] = sites[(layer, "bn_in")]
                    else:
                        seen[(layer, "preact_eval")] = sites[(layer, "preact")]
        return seen

    @staticmethod
    def group_before_update(probes: Sequence[DistributionProbe], g: Any) -> None:
        """_record_before for every due member, each statistic taken for all of them at once."""
        seen = DistributionProbe._group_capture(probes, g)
        first = probes[0]
        stats = {}
        for (layer, site), a in seen.items():
            mu, var = stacked_moments(a)
            stats[(layer, site)] = (mu.mean(-1).tolist(), var.mean(-1).tolist(),
                                    stacked_percentiles(a, first.units[layer]).tolist())
        for j, p in enumerate(probes):
            p.steps.append(g.step)
            for (layer, site), (mus, vs, pct) in stats.items():
                s = p.series[layer][site]
                s["mean"].append(mus[j])
                s["var"].append(vs[j])
                for qi, q in enumerate(PERCENTILES):
                    cols = s["percentiles"][f"p{round(q * 100)}"]
                    for ui in range(len(p.units[layer])):
                        cols[ui].append(pct[qi][j][ui])
            p._before = {k: v[j] for k, v in seen.items()}

    @staticmethod
    def group_after_update(probes: Sequence[DistributionProbe], g: Any) -> None:
        """_record_after for every due member, each shift taken for all of them at once."""
        if any(p._before is None for p in probes):
            return
        seen = DistributionProbe._group_capture(probes, g)
        first = probes[0]
        for key, a in seen.items():
            before = torch.stack([p._before[key] for p in probes])
            for m, vals in stacked_shift_stats(before, a, first.units[key[0]]).items():
                for p, v in zip(probes, vals.tolist(), strict=True):
                    p.series[key[0]][key[1]][m].append(v)
        for p in probes:
            p._before = None

    def _record_before(self, acts: dict[tuple[str, str], torch.Tensor], step: int) -> None:
        self.steps.append(step)
        for (layer, site), a in acts.items():
            s = self.series[layer][site]
            mu, var = unit_moments(a)
            s["mean"].append(float(mu.mean()))
            s["var"].append(float(var.mean()))
            pct = unit_percentiles(a, self.units[layer])
            for qi, q in enumerate(PERCENTILES):
                for ui in range(len(self.units[layer])):
                    s["percentiles"][f"p{round(q * 100)}"][ui].append(float(pct[qi, ui]))
        self._before = acts

    def _record_after(self, acts: dict[tuple[str, str], torch.Tensor]) -> None:
        for key, a in acts.items():
            s = self.series[key[0]][key[1]]
            for m, v in shift_stats(self._before[key], a, self.units[key[0]]).items():
                s[m].append(v)
        self._before = None

    def result(self) -> dict[str, Any]:
        return {
            "steps": list(self.steps),
            "layers": list(self.layers),
            "tracked_units": self.units,
            "percentiles": [round(q * 100) for q in PERCENTILES],
            "per_layer": self.series,
        }


def ics_probes(spec: Spec, arm: ArmSpec, lr: float, seed: int, data: Dataset) -> list[ProbeBase]:
    """The probe factory run_experiment calls for every arm x learning rate x seed."""
    cfg = spec.analysis.ics
    probes: list[ProbeBase] = [
        DistributionProbe(cfg.every, data.probe_batch(cfg.probe_size), cfg.layers,
                          cfg.tracked_units)
    ]
    if cfg.gradient_ics:
        probes.append(GradientIcsProbe(cfg.every, cfg.layers))
    return probes


def make_distribution_probe(spec: Spec, arm: ArmSpec, lr: float, seed: int, data: Dataset) -> ProbeBase:
    """The C2 distribution probe (registry: ics_dist)."""
    cfg = spec.analysis.ics
    return DistributionProbe(cfg.every, data.probe_batch(cfg.probe_size), cfg.layers, cfg.tracked_units)


def make_gradient_probe(spec: Spec, arm: ArmSpec, lr: float, seed: int, data: Dataset) -> ProbeBase:
    """The C3 gradient-ICS probe (registry: ics_grad)."""
    cfg = spec.analysis.ics
    return GradientIcsProbe(cfg.every, cfg.layers)
