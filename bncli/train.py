"""The ONE training loop, with the probe contract every analysis subcommand attaches through.

Probe contract
--------------
A probe has `every` (its schedule) and may implement any of these hooks:

- ``on_start(run)``: once, before the first step (step 0 state, the initial weights).
- ``before_update(ctx)``: on a due step, after forward/backward on the step's batch, before
  ``optimizer.step()``. Gradients hold ∇L(θ_t); ``ctx.buffers_before`` holds the BN buffers
  as they were before this step's forward pass.
- ``after_update(ctx)``: on a due step, right after ``optimizer.step()`` (θ_{t+1}).
- ``on_end(run)``: once after the last step (or after divergence / interruption:
  ``run.diverged_at`` / ``run.interrupted`` say which). No probe runs at or after a divergence
  step: every pending loss is checked before a due step's measurements.
- ``result()``: plain data (floats, lists, dicts) for the results.

Probes must leave parameters, optimizer state, BN buffers and the RNG exactly as they found
them (see ``bncli.probes.base.measuring``); the loop's own work never depends on a probe.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from bncli.data import Dataset, batch_indices
from bncli.models import Net, loss_fn_for
from bncli.runtime import derive_seed
from bncli.schedule import lr_at, scheduled
from bncli.spec import ArmSpec, TrainSpec


@dataclass
class RunContext:
    """What a probe may look at during a run (read-only by contract)."""

    model: Net
    optimizer: Any  # LeanSGD (SGD on the CPU) or a torch.optim optimizer; None in a fused group
    loss_fn: Callable[..., torch.Tensor]
    data: Dataset
    arm: ArmSpec
    lr: float
    seed: int
    train: TrainSpec
    device: torch.device
    steps: int
    diverged_at: int | None = None  # set before on_end when the run diverged
    interrupted: bool = False  # set before on_end when the run was cut short


@dataclass
class StepContext:
    """One due step: its batch, its loss, and the BN buffers from before its forward pass."""

    run: RunContext
    step: int  # number of updates done before this one (0 for the first)
    x: torch.Tensor
    y: torch.Tensor
    loss: torch.Tensor
    noise_seed: int | None
    buffers_before: dict[str, torch.Tensor]
    lr: float | None = None  # this step's learning rate (the schedule's; None: run.lr)


class Probe(Protocol):
    name: str
    every: int

    def result(self) -> Any: ...


@dataclass
class History:
    """Per-eval-point curves; step = number of updates done."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # mean batch loss since last point
    train_eval_loss: list[float] = field(default_factory=list)  # eval mode, on train examples
    train_acc: list[float | None] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float | None] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)  # the lr of the last update (step 0: the first)


@dataclass
class TrainOutcome:
    history: History
    diverged_at: int | None
    divergence_reason: str | None
    steps_done: int
    wall_s: float
    interrupted: bool = False
    step_losses: list[float] = field(default_factory=list)


class LeanSGD:
    """SGD (momentum, weight decay) as torch.optim.SGD computes it on the CPU (its single-tensor
    path: the same ops in the same order, so bitwise the same weights), in foreach calls and
    without torch.optim's per-step bookkeeping (and its torch._dynamo import at construction)."""

    def __init__(self, params: Any, lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.param_groups = [{"params": self.params, "lr": lr, "momentum": momentum,
                              "weight_decay": weight_decay}]
        self.momentum, self.weight_decay = momentum, weight_decay  # the lr: param_groups (schedules set it)
        self.buffers: list[torch.Tensor] | None = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        params = [p for p in self.params if p.grad is not None]
        grads = [p.grad for p in params]
        if not params:
            return
        if self.weight_decay:
            grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
        if self.momentum:
            if self.buffers is None or len(params) != len(self.params):
                self._momentum_slow(params, grads)
                return
            torch._foreach_mul_(self.buffers, self.momentum)
            torch._foreach_add_(self.buffers, grads, alpha=1.0)
            grads = self.buffers
        torch._foreach_add_(params, grads, alpha=-self.param_groups[0]["lr"])

    def _momentum_slow(self, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """First step (buffers from the gradients), or parameters without gradients: per tensor."""
        state = getattr(self, "_state", {})
        self._state = state
        for p, g in zip(params, grads):
            buf = state.get(id(p))
            if buf is None:
                buf = torch.clone(g).detach()
                state[id(p)] = buf
            else:
                buf.mul_(self.momentum).add_(g, alpha=1.0)
            p.add_(buf, alpha=-self.param_groups[0]["lr"])
        if all(id(p) in state for p in self.params):
            self.buffers = [state[id(p)] for p in self.params]


def make_optimizer(model: nn.Module, spec: TrainSpec, lr: float) -> Any:
    if spec.optimizer == "sgd":
        if next(model.parameters()).device.type == "cpu":
            return LeanSGD(model.parameters(), lr=lr, momentum=spec.momentum, weight_decay=spec.weight_decay)
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=spec.momentum, weight_decay=spec.weight_decay
        )
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=spec.weight_decay)


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: str, chunk: int = 4096,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[float, float | None]:
    """Mean loss and accuracy (classification) in eval mode; restores the previous mode.
    `prepare` turns stored examples into inputs chunk by chunk (uint8 images: Dataset.prepare)."""
    was_training = model.training
    model.eval()
    loss_fn = loss_fn_for(task)
    total, correct = 0.0, 0
    n = x.shape[0]
    for i in range(0, n, chunk):
        xc = x[i : i + chunk]
        out = model(xc if prepare is None else prepare(xc))
        yb = y[i : i + chunk]
        per_example = 1 if task == "classification" else yb[0].numel()
        total += float(loss_fn(out, yb, reduction="sum")) / per_example
        if task == "classification":
            correct += int((out.argmax(1) == yb).sum())
    model.train(was_training)
    mean = total / n
    return mean, (correct / n if task == "classification" else None)


def buffer_snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_buffers()}


def _first_bad(losses: Sequence[float], start: int, ref: float, factor: float) -> tuple[int, str] | None:
    for i, v in enumerate(losses):
        if not math.isfinite(v):
            return start + i, "non-finite loss"
        if v > factor * ref:
            return start + i, f"loss {v:.3g} > {factor:g} x first loss {ref:.3g}"
    return None


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """The schedule's lr for this update (only called when a schedule or warmup is set)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_run(
    model: Net,
    data: Dataset,
    arm: ArmSpec,
    spec: TrainSpec,
    lr: float,
    seed: int,
    probes: Sequence[Any] = (),
    on_progress: Callable[[int], None] | None = None,
) -> TrainOutcome:
    """Train one arm at one learning rate and seed; probes attach by the contract above.

    Batch order depends only on `seed` (every arm sees the same batches); the noise draw of step t
    depends only on (seed, t). Divergence (non-finite loss, or loss above divergence_factor x the
    first loss) stops this run and is reported, not raised.
    """
    device = data.x_train.device
    model.train()
    # no probe: no hook can attach to the taps, so the forward pass skips them (bitwise the same)
    model.set_taps(bool(probes))
    optimizer = make_optimizer(model, spec, lr)
    loss_fn = loss_fn_for(data.task)
    run = RunContext(model, optimizer, loss_fn, data, arm, lr, seed, spec, device, spec.steps)
    noisy = bool(model.noise_modules())
    noise_base = derive_seed(seed, 7919)
    batches = batch_indices(data.n_train, spec.batch_size, seed, device)
    has_schedule = scheduled(spec)
    n_eval_train = min(spec.eval_train_examples, data.n_train)
    x_tr_eval, y_tr_eval = data.x_train[:n_eval_train], data.y_train[:n_eval_train]

    hist = History()
    all_losses: list[float] = []
    pending: list[torch.Tensor] = []
    diverged: tuple[int, str] | None = None
    interrupted = False
    first_loss: float | None = None

    def record_eval(step: int, window: list[float]) -> None:
        """One curve point: held-out and train-set metrics in eval mode, and the mean batch loss
        since the previous point (at step 0, before any batch, the eval-mode train loss)."""
        te_loss, te_acc = evaluate(model, data.x_test, data.y_test, data.task, prepare=data.prepare)
        tr_loss, tr_acc = evaluate(model, x_tr_eval, y_tr_eval, data.task, prepare=data.prepare)
        hist.step.append(step)
        hist.train_loss.append(sum(window) / len(window) if window else tr_loss)
        hist.train_eval_loss.append(tr_loss)
        hist.train_acc.append(tr_acc)
        hist.test_loss.append(te_loss)
        hist.test_acc.append(te_acc)
        hist.lr.append(lr_at(spec, lr, max(0, step - 1)) if has_schedule else lr)

    for p in probes:
        if hasattr(p, "on_start"):
            p.on_start(run)

    def flush(done: int) -> tuple[int, str] | None:
        """Move the pending batch losses to the host (one sync) and check them for divergence."""
        nonlocal first_loss
        chunk_start = done - len(pending)
        values = torch.stack(pending).tolist()
        pending.clear()
        if first_loss is None:  # a non-finite first loss is caught by _first_bad below
            first_loss = max(abs(values[0]), 1e-12) if math.isfinite(values[0]) else math.inf
        all_losses.extend(values)
        since_eval.extend(values)
        if on_progress is not None:
            on_progress(len(values))
        return _first_bad(values, chunk_start, first_loss, spec.divergence_factor)

    t0 = time.perf_counter()
    since_eval: list[float] = []  # batch losses since the last curve point
    record_eval(0, since_eval)
    step = 0
    try:
        for step in range(spec.steps):
            idx = next(batches)
            xb, yb = data.batch(idx, seed, step)
            step_lr = lr_at(spec, lr, step) if has_schedule else lr
            if has_schedule:
                _set_lr(optimizer, step_lr)
            noise_seed = None
            if noisy:
                noise_seed = (noise_base + step) % (1 << 62)
                model.set_noise_seed(noise_seed)
            due = [p for p in probes if step % p.every == 0 or step == spec.steps - 1]
            if due and pending:
                # measurements of a diverged net must never feed a verdict: check every loss so
                # far before measuring (one sync per due step, not per step)
                diverged = flush(step)
                if diverged is not None:
                    break
            buffers_before = buffer_snapshot(model) if due else {}
            out = model(xb)
            loss = loss_fn(out, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if due:
                lv = float(loss.detach())
                limit = spec.divergence_factor * first_loss if first_loss is not None else math.inf
                if not math.isfinite(lv) or lv > limit:
                    due = []  # the divergence check below marks this step
            if due:
                ctx = StepContext(run, step, xb, yb, loss.detach(), noise_seed, buffers_before,
                                  step_lr)
                for p in due:
                    if hasattr(p, "before_update"):
                        p.before_update(ctx)
            optimizer.step()
            if due:
                for p in due:
                    if hasattr(p, "after_update"):
                        p.after_update(ctx)
            pending.append(loss.detach())
            done = step + 1
            if done % spec.eval_every == 0 or done == spec.steps or step == 0 or len(pending) >= 25:
                diverged = flush(done)
                if diverged is not None:
                    break
                if done % spec.eval_every == 0 or done == spec.steps:
                    record_eval(done, since_eval)
                    since_eval.clear()
    except KeyboardInterrupt:
        interrupted = True
    wall = time.perf_counter() - t0
    model.set_taps(True)
    run.diverged_at = diverged[0] if diverged else None
    run.interrupted = interrupted
    for p in probes:
        if hasattr(p, "on_end"):
            p.on_end(run)
    steps_done = diverged[0] if diverged else (step + 1 if not interrupted else step)
    return TrainOutcome(
        history=hist,
        diverged_at=diverged[0] if diverged else None,
        divergence_reason=diverged[1] if diverged else None,
        steps_done=steps_done,
        wall_s=wall,
        interrupted=interrupted,
        step_losses=all_losses,
    )
