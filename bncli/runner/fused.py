"""FusedRunner: the runs of one arm that differ only in seed and learning rate train as ONE batched
model (weights stacked [K, out, in], one `baddbmm` per layer, BN as one `F.batch_norm` over a
[B, K·U] view, per-member learning rates as a tensor, one foreach update).

Each member keeps what its single run has: its initial weights (built exactly as run_job builds
them), its batch order, its learning rate, its divergence (detected at the same flush points as
bncli.train; a diverged member's lr becomes 0 and its record ends at its divergence step), its
evaluation points and its probes. A probe with a group form (bncli.probes.group: the landscape line
search and Hessian extremes, the BN-Jacobian check, the gradient ICS G′, the layer-input
distributions of measure-ics) measures every due member at
once on the stacked model; any other probe sees a per-member `Net` with copied weights, gradients
and BN buffers on its due steps only (`materialize`), so its code is the single path's.

The numbers are the single path's maths in batched kernels: equal to single runs to ~1e-14 in
float64 (tests/test_fused.py), to rounding in float32 (plain nets ~1e-6; BN nets drift further on
long horizons at large lrs: float32 rounding amplified by the dynamics). Records say
`numerics: fused` and jobs are keyed apart from single ones (bncli.plan), so `--resume` never mixes
them.

Fused: MLP families, arms with norm none, batch or lp (ℓp normalization: p 1, 2 or inf, scope
layer or unit, with LpNorm's maths per member; pre or post, affine or not, no noise), SGD
(momentum, weight decay) and Adam, probes whose registry entry says `fusable`; the conv families
(cnn, vgg, resnet, norm none or batch) likewise on a GPU, through torch.func
(bncli.runner.fused_vmap.VmapStack). Anything else is planned `numerics: single` and trained by
run_job."""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bncli.plan import RunJob, canonical, fusable  # noqa: F401
from bncli.probes.group import GroupStep, member_losses
from bncli.results import RunRecord
from bncli.runner.base import Progress
from bncli.runner.fused_mlp import StackedMLP
from bncli.runner.fused_vmap import VmapStack

_ADAM_BETAS = (0.9, 0.999)  # torch.optim.Adam's defaults (what make_optimizer uses)
_ADAM_EPS = 1e-8


def fused_group_key(job: RunJob) -> str:
    """Jobs that may train together: same analysis, probes and spec except seed and lr."""
    doc = json.loads(job.spec_json)
    doc.pop("seed", None)
    doc["train"].pop("lr", None)
    material = canonical({"analysis": job.analysis, "probes": list(job.probes), "spec": doc})
    return "fused:" + hashlib.sha256(material.encode()).hexdigest()[:24]


class FusedRunner:
    """Groups fused jobs by `fused_group_key`; single jobs are their own group (run_job)."""

    name = "fused"

    def group_key(self, job: RunJob) -> str:
        return fused_group_key(job) if job.numerics == "fused" else job.key

    def run(self, jobs: Sequence[RunJob], data: Any = None, progress: Progress | None = None) -> list[RunRecord]:
        from bncli.runner.cache import job_data
        from bncli.runner.single import run_job
        from bncli.runtime import precision

        if all(j.numerics == "fused" for j in jobs):
            data = data if data is not None else job_data(jobs[0].spec)
            size = max_members(jobs[0].spec, data)
            out: list[RunRecord] = []
            with precision(jobs[0].spec.precision):  # the stack, its probes and copies: the spec's dtype
                for i in range(0, len(jobs), size):  # a group too big for memory: in chunks, one by one
                    out.extend(train_fused(list(jobs[i:i + size]), data, progress))
            return out
        return [run_job(j, data, None, progress) for j in jobs]


MAX_MEMBERS = 256  # a fused group's largest chunk whatever the memory (progress stays granular)


def member_bytes(spec: Any, data: Any) -> int:
    """What one more member costs a fused group (generous, as bncli.budget): its parameters,
    gradients, optimizer state and a copy, its training batch's activations and gradients, and
    its share of a stacked evaluation chunk (every member's outputs on the same inputs)."""
    from bncli.budget import EVAL_CHUNK, F32, _model_size

    params, act, _ = _model_size(spec.model, data.input_shape, data.n_out)
    n_eval = min(EVAL_CHUNK, max(int(data.x_test.shape[0]), min(spec.train.eval_train_examples, data.n_train)))
    return params * F32 * 6 + (2 * spec.train.batch_size + n_eval) * act * F32


def max_members(spec: Any, data: Any, available: int | None = None) -> int:
    """The most members one fused chunk may have: a quarter of the free memory of the group's
    device (other workers and the data need the rest), at most MAX_MEMBERS, at least 1."""
    from bncli.budget import available_bytes

    if available is None:
        available = available_bytes(data.x_train.device if data.x_train.is_cuda else None)
    if available is None:
        return MAX_MEMBERS
    return max(1, min(MAX_MEMBERS, int(available // 4 // max(1, member_bytes(spec, data)))))


# --------------------------------------------------------------------------- the batched model


class _Member:
    """One member's bookkeeping: its single-path state (bncli.train's locals), its Net view."""

    def __init__(self, job: RunJob, net: Any, probes: list[Any]) -> None:
        from bncli.train import History

        self.job = job
        self.net = net
        self.probes = probes
        self.hist = History()
        self.first_loss: float | None = None
        self.all_losses: list[float] = []
        self.since_eval: list[float] = []
        self.diverged: tuple[int, str] | None = None
        self.run: Any = None


def _lr_view(lr: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return lr.view(-1, *([1] * (p.dim() - 1)))


class FusedOptimizer:
    """SGD (momentum, weight decay) and Adam over stacked parameters with a per-member lr, as
    torch.optim's single-tensor maths, in foreach ops (one call per op for every tensor)."""

    def __init__(self, params: list[torch.Tensor], lrs: torch.Tensor, train: Any) -> None:
        self.params = params
        self.lrs = lrs
        self.kind = train.optimizer
        self.momentum = train.momentum
        self.wd = train.weight_decay
        self.lr_views = [_lr_view(lrs, p) for p in params]
        self.neg_lrs = -lrs
        self.neg_lr_views = [_lr_view(self.neg_lrs, p) for p in params]
        self.state: list[torch.Tensor] | None = None
        self.state2: list[torch.Tensor] | None = None
        self.t = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        if self.wd:
            grads = torch._foreach_add(grads, self.params, alpha=self.wd)
        self.t += 1
        if self.kind == "sgd":
            if self.momentum:
                if self.state is None:
                    self.state = [g.detach().clone() for g in grads]
                else:
                    torch._foreach_mul_(self.state, self.momentum)
                    torch._foreach_add_(self.state, grads)
                grads = self.state
            torch._foreach_addcmul_(self.params, grads, self.neg_lr_views)
            return
        b1, b2 = _ADAM_BETAS
        if self.state is None:
            self.state = [torch.zeros_like(p) for p in self.params]
            self.state2 = [torch.zeros_like(p) for p in self.params]
        assert self.state2 is not None
        torch._foreach_lerp_(self.state, grads, 1 - b1)
        torch._foreach_mul_(self.state2, b2)
        torch._foreach_addcmul_(self.state2, grads, grads, 1 - b2)
        bc1 = 1 - b1 ** self.t
        bc2_sqrt = math.sqrt(1 - b2 ** self.t)
        denom = torch._foreach_sqrt(self.state2)
        torch._foreach_div_(denom, bc2_sqrt)
        torch._foreach_add_(denom, _ADAM_EPS)
        upd = torch._foreach_div(self.state, denom)
        torch._foreach_mul_(upd, [v / bc1 for v in self.lr_views])
        torch._foreach_sub_(self.params, upd)


# --------------------------------------------------------------------------- the loop


def _grouped(probe: Any) -> bool:
    """Whether a probe measures a fused group at once (its group form applies to its settings)."""
    return bool(getattr(probe, "grouped", None) and probe.grouped())


def _losses(out: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    """Per-member mean loss [K] of out [K, B, C] against y [K, B, ...]: bncli.models.loss_fn_for's."""
    return member_losses(out, y, task)


EVAL_ELEMENTS = 1 << 20  # activations per eval chunk (members x examples x units): ~4 MB in float32


def _eval_chunk(model: Any) -> int:
    """Examples per eval chunk: a chunk's widest activation (K members x examples x units) stays
    about EVAL_ELEMENTS, which a core's caches hold (measured, 16 members of the 3 x 100 digits
    MLP: 4,096 examples at once 47-75 ms per eval point, 512 at a time 33-38 ms); 4,096 for
    models without a width (the conv stack)."""
    width = getattr(model, "width", None)
    if not width:
        return 4096
    return max(64, EVAL_ELEMENTS // (model.k * width))


@torch.no_grad()
def _evaluate(model: StackedMLP, x: torch.Tensor, y: torch.Tensor, task: str,
              chunk: int | None = None, prepare: Any = None) -> tuple[list[float], list[float | None]]:
    """bncli.train.evaluate for every member: mean loss and accuracy in eval mode."""
    k = model.k
    chunk = chunk or _eval_chunk(model)
    total = torch.zeros(k, dtype=torch.float64, device=x.device)
    correct = torch.zeros(k, dtype=torch.long, device=x.device)
    n = x.shape[0]
    for i in range(0, n, chunk):
        xc = x[i : i + chunk]
        out = model.forward(xc if prepare is None else prepare(xc), training=False)
        yb = y[i : i + chunk]
        # per member, as bncli.train.evaluate sums (the same reduction: the same rounding)
        per_example = 1 if task == "classification" else yb[0].numel()
        fn = F.cross_entropy if task == "classification" else F.mse_loss
        sums = torch.stack([fn(out[j], yb, reduction="sum") for j in range(k)])
        total += sums.double() / per_example
        if task == "classification":
            correct += (out.argmax(2) == yb).sum(1)
    losses = (total / n).tolist()
    accs: list[float | None] = ((correct.double() / n).tolist() if task == "classification" else [None] * k)
    return losses, accs


def train_fused(jobs: list[RunJob], data: Any = None, progress: Progress | None = None,
                group_probes: bool = True) -> list[RunRecord]:
    """Train a fused group (jobs equal but for seed and lr) as one batched model; one record per
    job, equal to its single run's up to rounding (see the module docstring). Probes with a group
    form measure every due member at once (bncli.probes.group); group_probes=False: each member
    on its own Net (the per-member form, for tests and benchmarks)."""
    from bncli.data.base import group_batch_indices
    from bncli.models import loss_fn_for
    from bncli.probes.registry import make_probes
    from bncli.runner.build import build_arm_model, initial_model, record_of
    from bncli.runner.cache import job_data
    from bncli.runtime import configure_threads, resolve_threads
    from bncli.schedule import lr_at, scheduled
    from bncli.train import RunContext, StepContext, TrainOutcome, _first_bad

    spec = jobs[0].spec
    data = data if data is not None else job_data(spec)
    configure_threads(resolve_threads(spec, data.input_shape, data.n_out, data.n_train))
    train = spec.train
    arm = spec.arms[0]
    device = data.x_train.device
    loss_fn = loss_fn_for(data.task)
    members: list[_Member] = []
    for job in jobs:
        js = job.spec
        net = build_arm_model(js, js.arms[0], initial_model(js, data, job.seed), data, job.seed)
        net.train()
        probes = make_probes(job.probes, js, arm, job.lr, job.seed, data)
        m = _Member(job, net, probes)
        m.run = RunContext(net, None, loss_fn, data, arm, job.lr, job.seed, train, device,  # type: ignore[arg-type]
                           train.steps)
        members.append(m)
    nets = [m.net for m in members]
    model = StackedMLP(nets, batch=train.batch_size) if spec.model.kind == "mlp" else VmapStack(nets)
    model.keep_counters()
    dtype = model.params[model.names[0]].dtype
    lrs = torch.tensor([j.lr for j in jobs], dtype=dtype, device=device)
    opt = FusedOptimizer(model.parameters(), lrs, train)
    k = len(jobs)
    has_schedule = scheduled(train)
    x_all, y_all = data.x_train, data.y_train
    n_eval_train = min(train.eval_train_examples, data.n_train)
    x_tr_eval, y_tr_eval = x_all[:n_eval_train], y_all[:n_eval_train]
    any_probes = any(m.probes for m in members)
    batches = group_batch_indices(data.n_train, train.batch_size, [j.seed for j in jobs], device)
    group_forms = group_probes and isinstance(model, StackedMLP)  # the group forms read a StackedMLP

    def active() -> list[int]:
        return [i for i, m in enumerate(members) if m.diverged is None]

    def record_eval(step: int) -> None:
        te_loss, te_acc = _evaluate(model, data.x_test, data.y_test, data.task, prepare=data.prepare)
        tr_loss, tr_acc = _evaluate(model, x_tr_eval, y_tr_eval, data.task, prepare=data.prepare)
        for i in active():
            m = members[i]
            w = m.since_eval
            m.hist.step.append(step)
            m.hist.train_loss.append(sum(w) / len(w) if w else tr_loss[i])
            m.hist.train_eval_loss.append(tr_loss[i])
            m.hist.train_acc.append(tr_acc[i])
            m.hist.test_loss.append(te_loss[i])
            m.hist.test_acc.append(te_acc[i])
            m.hist.lr.append(lr_at(train, m.job.lr, max(0, step - 1)) if has_schedule else m.job.lr)
            m.since_eval.clear()

    pending: list[torch.Tensor] = []

    def flush(done: int) -> None:
        """bncli.train's flush for every member: one sync; a member whose losses went bad is cut
        at its divergence step, its lr set to 0 and its Net left at this point's weights."""
        chunk_start = done - len(pending)
        values = torch.stack(pending).T.tolist()  # [K][n]
        n_active = 0
        pending.clear()
        for i in active():
            m = members[i]
            vals = values[i]
            n_active += 1
            if m.first_loss is None:
                m.first_loss = max(abs(vals[0]), 1e-12) if math.isfinite(vals[0]) else math.inf
            m.all_losses.extend(vals)
            m.since_eval.extend(vals)
            bad = _first_bad(vals, chunk_start, m.first_loss, train.divergence_factor)
            if bad is not None:
                m.diverged = bad
                lrs[i] = 0.0
                opt.neg_lrs[i] = 0.0
                model.materialize(i, m.net)  # what the single run holds when it stops
        if progress is not None:
            progress(len(values[0]) * n_active if values else 0)

    for m in members:
        for p in m.probes:
            if hasattr(p, "on_start"):
                p.on_start(m.run)

    t0 = time.perf_counter()
    record_eval(0)
    step = 0
    interrupted = False
    try:
        for step in range(train.steps):
            idx = next(batches)  # [K, B]
            if getattr(data, "transform", None) is None:
                flat = idx.reshape(-1)
                xb = x_all.index_select(0, flat).view(k, -1, *x_all.shape[1:])
                yb = y_all.index_select(0, flat).view(k, -1, *y_all.shape[1:])
            else:  # stored uint8 images: each member's batch normalized (and augmented) as alone
                xb = torch.stack([data.batch(idx[i], m.job.seed, step)[0] for i, m in enumerate(members)])
                yb = y_all[idx]
            step_lrs = None
            if has_schedule:  # this update's lr per member (a diverged member's stays 0)
                step_lrs = [lr_at(train, m.job.lr, step) for m in members]
                now = torch.tensor([v if m.diverged is None else 0.0 for v, m in zip(step_lrs, members)],
                                   dtype=dtype, device=device)
                lrs.copy_(now)
                opt.neg_lrs.copy_(-now)
            due_any = any_probes and any(step % p.every == 0 or step == train.steps - 1
                                         for m in members for p in m.probes)
            if due_any and pending:
                flush(step)
                if not active():
                    break
            due: dict[int, list[Any]] = {}  # per member, its due probes measured on its own Net
            group_due: dict[str, list[tuple[int, Any]]] = {}  # per probe, the members it measures at once
            before: dict[int, dict[str, torch.Tensor]] = {}
            before_all: dict[str, torch.Tensor] = {}
            if due_any:
                for i in active():
                    d = [p for p in members[i].probes if step % p.every == 0 or step == train.steps - 1]
                    own = [p for p in d if not (group_forms and _grouped(p))]
                    for p in d:
                        if p not in own:
                            group_due.setdefault(p.name, []).append((i, p))
                    if own:
                        due[i] = own
                        before[i] = model.buffers_of(i)
                if group_due:
                    before_all = {n: b.clone() for n, b in model.buffers.items()}
            out = model.forward(xb, training=True)
            model.forwards += 1
            losses = _losses(out, yb, data.task)
            opt.zero_grad()
            losses.sum().backward()
            ctxs: dict[int, Any] = {}
            gstep: GroupStep | None = None
            if due or group_due:
                lv = losses.detach().tolist()
                fine = set()  # not: the divergence check marks this step
                for i in {*due, *(i for items in group_due.values() for i, _ in items)}:
                    m = members[i]
                    limit = train.divergence_factor * m.first_loss if m.first_loss is not None else math.inf
                    if math.isfinite(lv[i]) and lv[i] <= limit:
                        fine.add(i)
                due = {i: d for i, d in due.items() if i in fine}
                group_due = {n: [(i, p) for i, p in items if i in fine] for n, items in group_due.items()}
                group_due = {n: items for n, items in group_due.items() if items}
                if group_due:
                    gstep = GroupStep(model, step, [], xb, yb, losses.detach(), before_all,
                                      step_lrs if step_lrs is not None else [m.job.lr for m in members],
                                      data.task)
                    for items in group_due.values():
                        gstep.members = [i for i, _ in items]
                        probe = items[0][1]
                        if hasattr(probe, "group_before_update"):
                            probe.group_before_update([p for _, p in items], gstep)
                for i, d in due.items():
                    m = members[i]
                    model.materialize(i, m.net, grads=True)
                    ctx = StepContext(m.run, step, xb[i], yb[i], losses[i].detach(), None, before[i],
                                      step_lrs[i] if step_lrs is not None else m.job.lr)
                    ctxs[i] = ctx
                    for p in d:
                        if hasattr(p, "before_update"):
                            p.before_update(ctx)
            opt.step()
            if gstep is not None:
                for items in group_due.values():
                    gstep.members = [i for i, _ in items]
                    probe = items[0][1]
                    if hasattr(probe, "group_after_update"):
                        probe.group_after_update([p for _, p in items], gstep)
            for i, d in due.items():
                m = members[i]
                model.materialize(i, m.net, grads=True)
                for p in d:
                    if hasattr(p, "after_update"):
                        p.after_update(ctxs[i])
            pending.append(losses.detach())
            done = step + 1
            if done % train.eval_every == 0 or done == train.steps or step == 0 or len(pending) >= 25:
                flush(done)
                if not active():
                    break
                if done % train.eval_every == 0 or done == train.steps:
                    record_eval(done)
    except KeyboardInterrupt:
        interrupted = True
    wall = time.perf_counter() - t0
    records = []
    for i, m in enumerate(members):
        if m.diverged is None:
            model.materialize(i, m.net)
        m.net.zero_grad(set_to_none=True)
        m.run.diverged_at = m.diverged[0] if m.diverged else None
        m.run.interrupted = interrupted
        for p in m.probes:
            if hasattr(p, "on_end"):
                p.on_end(m.run)
        steps_done = m.diverged[0] if m.diverged else (step + 1 if not interrupted else step)
        outcome = TrainOutcome(m.hist, m.diverged[0] if m.diverged else None,
                               m.diverged[1] if m.diverged else None, steps_done, wall / k, interrupted,
                               m.all_losses)
        records.append(record_of(m.job.spec, m.job, outcome, m.probes, data.task, numerics="fused"))
    return records
