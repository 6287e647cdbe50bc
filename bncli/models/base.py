"""The network every family builds: Blocks (weight, normalization point, activation) named
layer1..layerK in forward order, a head, and build_model(model_spec, arm, ...) -> Net."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from bncli.norms import build_norm, norm_info, reparametrize_weight
from bncli.spec import ArmSpec, ModelSpec, NoiseSpec

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "linear": nn.Identity,
}


class NoiseInjection(nn.Module):
    """Santurkar et al. 2018 (App. A.2.1) time-varying noise: a <- s * a + m, training mode only.

    The draw is a pure function of `seed` (set by the training loop once per step) and the input's
    shape, so every forward pass of one step - the real one and any measurement pass - sees the
    same noise, and drawing never touches the global RNG. The last draw is cached, which also
    lets torch.func transforms reuse it without random ops inside them.
    """

    def __init__(self, params: NoiseSpec, layer_index: int) -> None:
        super().__init__()
        self.p = params
        self.layer_index = layer_index
        self.seed: int | None = None
        self._cache: tuple[tuple, torch.Tensor, torch.Tensor] | None = None

    def draw(self, shape: torch.Size, device: torch.device, dtype: torch.dtype):
        key = (self.seed, tuple(shape), str(device), dtype)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1], self._cache[2]
        gen = torch.Generator(device="cpu").manual_seed(
            (int(self.seed) * 1_000_003 + self.layer_index) % (1 << 63)
        )
        c = shape[1]
        # conv maps: height x width count as batch (one draw per example *and* position)
        rows = shape[0] if len(shape) == 2 else shape[0] * math.prod(shape[2:])
        p = self.p
        mu = (torch.rand(c, generator=gen) * 2 - 1) * p.n_mu
        sigma = 1 + torch.rand(c, generator=gen) * (p.n_sigma - 1)
        m = mu + (torch.rand(rows, c, generator=gen) * 2 - 1) * p.r_mu
        s = sigma + torch.randn(rows, c, generator=gen) * p.r_sigma
        if len(shape) > 2:
            spatial = tuple(shape[2:])
            m = m.reshape(shape[0], *spatial, c).movedim(-1, 1)
            s = s.reshape(shape[0], *spatial, c).movedim(-1, 1)
        s = s.to(device=device, dtype=dtype).contiguous()
        m = m.to(device=device, dtype=dtype).contiguous()
        self._cache = (key, s, m)
        return s, m

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        if not self.training or self.seed is None:
            return a
        s, m = self.draw(a.shape, a.device, a.dtype)
        return s * a + m


def _bn_call(m: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """nn.BatchNorm{1,2}d.forward without the module call: the same F.batch_norm call with the
    same running-statistics update, so the same numbers. The tensors are bound now (the lean
    pass is set up at the start of each run). With a fixed momentum the counter
    num_batches_tracked does not enter the maths: its increments are counted here and added when
    the taps come back on (Net.set_taps(True), at the end of the run), one add instead of one per
    step; with momentum None (a cumulative average) it is kept step by step."""
    rm, rv, w, b, eps, momentum = m.running_mean, m.running_var, m.weight, m.bias, m.eps, m.momentum
    nbt = m.num_batches_tracked

    if momentum is None:
        def cumulative(x: torch.Tensor) -> torch.Tensor:
            if m.training:
                nbt.add_(1)
                return F.batch_norm(x, rm, rv, w, b, True, 1.0 / float(nbt), eps)
            return F.batch_norm(x, rm, rv, w, b, False, 0.0, eps)

        return cumulative

    def bn(x: torch.Tensor) -> torch.Tensor:
        if m.training:
            bn.untracked += 1  # type: ignore[attr-defined]
            return F.batch_norm(x, rm, rv, w, b, True, momentum, eps)
        return F.batch_norm(x, rm, rv, w, b, False, 0.0, eps)

    def flush() -> None:
        if bn.untracked:  # type: ignore[attr-defined]
            nbt.add_(bn.untracked)  # type: ignore[attr-defined]
            bn.untracked = 0  # type: ignore[attr-defined]

    bn.untracked = 0  # type: ignore[attr-defined]
    bn.flush = flush  # type: ignore[attr-defined]
    return bn


def _functional(m: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The lean forward's call for one module: the torch function it runs for the plain module
    types of a Block (no Module.__call__, no hooks: the lean pass has none), else the module."""
    kind = type(m)
    if kind is nn.Linear:
        weight, bias = m.weight, m.bias
        return lambda x: F.linear(x, weight, bias)
    if kind in (nn.BatchNorm1d, nn.BatchNorm2d) and m.track_running_stats and m.running_mean is not None:
        return _bn_call(m)
    if kind is nn.Sigmoid:
        return torch.sigmoid
    if kind is nn.Tanh:
        return torch.tanh
    if kind is nn.ReLU and not m.inplace:
        return F.relu
    return m


class Block(nn.Module):
    """One normalization point: weight layer -> [norm] -> [noise] -> preact tap -> activation.

    Taps (identity modules that hooks can attach to): `bn_in` is the input of the normalization
    (also present on plain arms), `preact` is the input of the nonlinearity.
    With position 'post' the order is weight -> activation -> norm -> noise.
    Weight norm has no module after the weight: the weight module itself is reparametrized
    (build_model does it after init), `norm` stays an Identity and `bn_in` is `preact`'s tensor.
    """

    def __init__(
        self,
        weight_module: nn.Module,
        width: int,
        conv: bool,
        activation: str,
        arm: ArmSpec,
        layer_index: int,
        pool: bool = False,
    ) -> None:
        super().__init__()
        self.is_conv = conv
        if conv:
            self.conv = weight_module
        else:
            self.fc = weight_module
        self.position = arm.position
        self.norm_kind = arm.norm  # the arm's registry name: none, batch, layer, group, weight, lp
        self.bn_in = nn.Identity()
        self.norm: nn.Module = build_norm(arm, width, conv)  # nn.Identity when arm.norm is none
        self.noise: nn.Module = (
            NoiseInjection(arm.noise_params, layer_index) if arm.noisy else nn.Identity()
        )
        self.preact = nn.Identity()
        self.act = _ACTIVATIONS[activation]()
        self.pool: nn.Module = nn.MaxPool2d(2) if pool else nn.Identity()
        # lean forward (Net.set_taps(False)): only the modules that compute, no identity taps;
        # a plain tuple attribute (not registered: parameters and state_dict are unchanged)
        self.taps = True
        self._lean: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = ()

    @property
    def weight_module(self) -> nn.Module:
        return self.conv if self.is_conv else self.fc

    @property
    def weight_reparametrized(self) -> bool:
        """The weight is a parametrization (weight norm: W = g·v/‖v‖), not a plain parameter."""
        return parametrize.is_parametrized(self.weight_module, "weight")

    @property
    def weight_param_suffix(self) -> str:
        """The name, inside the weight module, of the trainable W_i: `weight`, or weight norm's
        direction v (`parametrizations.weight.original1`; g is `original0`)."""
        return "parametrizations.weight.original1" if self.weight_reparametrized else "weight"

    @property
    def weight(self) -> nn.Parameter:
        """W_i, the trainable weight that feeds the normalization point: for weight norm the
        direction v, whose scale the layer ignores (the effective W is weight_module.weight)."""
        return self.weight_module.get_parameter(self.weight_param_suffix)

    @property
    def normalized(self) -> bool:
        return norm_info(self.norm_kind).normalizes

    def lean_modules(self) -> tuple[nn.Module, ...]:
        """The modules the forward pass computes with, in order, identities left out: the same
        maths as forward() without the taps (which are identities unless a hook is attached)."""
        order = ([self.norm, self.noise, self.act] if self.position == "pre"
                 else [self.act, self.norm, self.noise])
        mods = [self.weight_module, *order, self.pool]
        return tuple(m for m in mods if type(m) is not nn.Identity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.taps:
            for f in self._lean:
                x = f(x)
            return x
        z = self.weight_module(x)
        if self.position == "pre":
            z = self.noise(self.norm(self.bn_in(z)))
            a = self.act(self.preact(z))
        else:
            a = self.act(self.preact(z))
            a = self.noise(self.norm(self.bn_in(a)))
        return self.pool(a)


class Net(nn.Module):
    """The network of one arm. `layers` maps layer1..layerK to Blocks; `head` is the output layer.

    `is_chain`: forward is flatten (optional) -> the blocks in order -> head. Probes that rerun
    part of the net from one block on use that; subclasses whose points are not a chain
    (ResidualNet, a user's module) set it False and the probes run the whole net instead."""

    is_chain = True

    def __init__(self, blocks: list[Block], head: nn.Module, flatten_input: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleDict({f"layer{i + 1}": b for i, b in enumerate(blocks)})
        self.head = head
        self.flatten_input = flatten_input
        self._flat: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = ()  # set_taps(False)

    @property
    def point_names(self) -> list[str]:
        return list(self.layers.keys())

    def block(self, name: str) -> Block:
        return self.layers[name]  # type: ignore[return-value]

    def weight_param_names(self) -> dict[str, str]:
        """layerK -> the qualified name of the weight W_K that feeds its normalization point."""
        out = {}
        for name, blk in self.layers.items():
            sub = "conv" if blk.is_conv else "fc"
            out[name] = f"layers.{name}.{sub}.{blk.weight_param_suffix}"
        return out

    def set_taps(self, on: bool) -> None:
        """Taps on (the default): every Block calls its identity tap modules, so hooks on `bn_in`
        / `preact` fire. Off: the lean forward pass (bncli.train uses it when no probe runs);
        hooks on the taps then do not fire. Numbers are bitwise the same either way.

        The lean pass binds the current parameter and buffer tensors: set it up after the
        weights are in place (train_run does, at the start of each run) and don't reassign them
        while it is on. On a chain net it is one flat sequence of torch calls (no Block calls)."""
        for blk in self.layers.values():
            for f in blk._lean:
                if hasattr(f, "flush"):
                    f.flush()  # the deferred num_batches_tracked increments
            blk.taps = on
            blk._lean = tuple(_functional(m) for m in blk.lean_modules()) if not on else ()
        self._flat: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = ()
        if not on and type(self).forward is Net.forward:
            steps: list[Callable[[torch.Tensor], torch.Tensor]] = []
            if self.flatten_input:
                steps.append(lambda x: x.flatten(1))
            for blk in self.layers.values():
                if blk.is_conv:  # the head's flatten(1) matters after conv blocks: keep the Blocks
                    steps = []
                    break
                steps.extend(blk._lean)
            if steps:
                if not self.flatten_input:  # 2-D after the blocks only if it came in 2-D
                    steps.append(lambda x: x.flatten(1))
                self._flat = (*steps, _functional(self.head))

    def noise_modules(self) -> list[NoiseInjection]:
        return [m for m in self.modules() if isinstance(m, NoiseInjection)]

    def set_noise_seed(self, seed: int | None) -> None:
        for m in self.noise_modules():
            m.seed = seed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._flat:  # the lean pass of a chain of fully-connected blocks (set_taps(False))
            for f in self._flat:
                x = f(x)
            return x
        if self.flatten_input:
            x = x.flatten(1)
        for blk in self.layers.values():
            x = blk(x)
        return self.head(x.flatten(1))


class ResidualNet(Net):
    """Residual blocks over the named points: layer1 is the stem; each block (a, b, shortcut)
    computes act(b(a(h)) + shortcut(h)) (shortcut None: h itself); global average pool, head.
    The points keep a forward order (their names) but are not a chain: probes that would rerun
    the net from one block on run it whole (Net.is_chain)."""

    is_chain = False

    def __init__(self, blocks: list[Block], head: nn.Module,
                 residual: list[tuple[str, str, str | None]], activation: str) -> None:
        super().__init__(blocks, head, flatten_input=False)
        self.residual = list(residual)
        self.out_act = _ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.layers["layer1"](x)
        for a, b, sc in self.residual:
            out = self.layers[b](self.layers[a](h))
            h = self.out_act(out + (h if sc is None else self.layers[sc](h)))
        return self.head(F.adaptive_avg_pool2d(h, 1).flatten(1))


class _PointRef(nn.Module):
    """Where a user's module held a point: calls the Block registered in ModuleNet.layers without
    registering it a second time (torch.func.functional_call mishandles a module registered under
    two names: it leaves a plain tensor where the parameter was)."""

    def __init__(self, block: Block) -> None:
        super().__init__()
        object.__setattr__(self, "_block", block)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._block(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_block"], name)


class ModuleNet(Net):
    """A user's module (bncli.models.module): `body` computes the output; its normalization points
    live in `layers` (parameters named layers.layerK.*), the body calls them through _PointRef."""

    is_chain = False

    def __init__(self, blocks: list[Block], body: nn.Module) -> None:
        super().__init__(blocks, nn.Identity(), flatten_input=False)
        ids = {id(b) for b in blocks}
        for parent in list(body.modules()):
            for name, child in list(parent._modules.items()):
                if child is not None and id(child) in ids:
                    parent._modules[name] = _PointRef(child)  # type: ignore[assignment]
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _init_weights(module: nn.Module, spec: ModelSpec) -> None:
    if spec.init == "default" or not isinstance(module, (nn.Linear, nn.Conv2d)):
        return
    w = module.weight
    if spec.init == "xavier":
        nn.init.xavier_normal_(w)
    elif spec.init == "kaiming":
        nn.init.kaiming_normal_(w, nonlinearity="relu")
    else:
        nn.init.normal_(w, 0.0, spec.init_std)
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def build_model(
    spec: ModelSpec, arm: ArmSpec, input_shape: tuple[int, ...], n_out: int
) -> Net:
    """Build the arm's network (its family's blocks, bncli.models.registry), then the init and the
    weight reparametrization. Initial values come from the global RNG: seed before calling."""
    from bncli.models.registry import get_family

    net = get_family(spec.kind).build(spec, arm, tuple(input_shape), n_out)
    for m in net.modules():
        _init_weights(m, spec)
    # after the init: weight norm starts from the initialized W (g = ‖W‖ per unit, v = W)
    for blk in net.layers.values():
        reparametrize_weight(arm, blk.weight_module)
    return net


def loss_fn_for(task: str):
    """Cross-entropy for classes, mean squared error for regression."""
    return F.cross_entropy if task == "classification" else F.mse_loss


def _parametrized(module: nn.Module) -> dict[str, tuple[nn.Module, str, str]]:
    """`prefix.weight` -> (its module, "weight", the state-dict prefix of its originals) for every
    parametrized tensor (weight norm)."""
    out = {}
    for name, mod in module.named_modules():
        if parametrize.is_parametrized(mod):
            for t in mod.parametrizations:
                pre = f"{name}." if name else ""
                out[f"{pre}{t}"] = (mod, t, f"{pre}parametrizations.{t}.original")
    return out


def copy_shared_state(src: nn.Module, dst: nn.Module) -> list[str]:
    """Copy every parameter/buffer both modules share (same name and shape); return the names.

    A parametrized tensor counts by its plain name with its value: when `dst` has weight norm on
    `layers.layer1.fc.weight` and `src` a plain weight there, dst's weight is set to src's value
    through the parametrization's right inverse (weight norm: v = W, g = ‖W‖ per output unit, so
    g·v/‖v‖ = W up to rounding); the other way round, dst gets src's effective weight.
    """
    src_state = dict(src.state_dict())
    src_par = _parametrized(src)
    with torch.no_grad():
        src_state.update({k: getattr(m, t).detach() for k, (m, t, _) in src_par.items()})
    dst_state = dst.state_dict()
    shared = [k for k in dst_state if k in src_state and src_state[k].shape == dst_state[k].shape]
    with torch.no_grad():
        for k in shared:
            dst_state[k].copy_(src_state[k])
        for key, (mod, t, originals) in _parametrized(dst).items():
            if any(k.startswith(originals) for k in shared):
                continue  # parametrized the same way on both sides: the originals were copied
            value = src_state.get(key)
            if value is not None and value.shape == getattr(mod, t).shape:
                setattr(mod, t, value.clone())
                shared.append(key)
    return shared
