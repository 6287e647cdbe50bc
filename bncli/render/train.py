"""Rendering for `bncli train` (C1): the summary table, BN-minus-plain lines, history CSV, curves."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from bncli.io import atomic_write_text
from bncli.render import compact
from bncli.render.common import fmt
from bncli.results import ArmSummary, RunRecord
from bncli.spec import Spec


def last_interval(spec: Spec) -> int:
    """Steps in the last evaluation interval: what the final train loss is the mean over."""
    steps, every = spec.train.steps, spec.train.eval_every
    return steps % every or min(every, steps)


def train_loss_header(spec: Spec) -> str:
    return f"final train loss (mean, last {last_interval(spec)} steps)"


def train_table(spec: Spec, summary: Sequence[ArmSummary], classification: bool,
                detail: bool = True) -> Table:
    """Rows = learning rate x arm; mean±std over seeds. The final held-out value with `detail`."""
    n_seeds = spec.seeds
    any_diverged = any(s.n_diverged for s in summary)
    title = (f"{spec.name}: training" + (f", mean±std over {n_seeds} seeds" if n_seeds > 1 else "")
             + ("" if any_diverged or not summary else ", no run diverged"))
    t = compact.table(title)
    t.add_column("lr", justify="right", no_wrap=True)
    t.add_column("arm")
    t.add_column(train_loss_header(spec), justify="right")
    what = "acc" if classification else "MSE"
    if detail:
        t.add_column(f"final held-out {what}", justify="right")
    t.add_column(f"best held-out {what}", justify="right")
    if classification:
        target = spec.train.target_accuracy
        t.add_column(f"steps to acc≥{target:g}" if target else "steps to target", justify="right")
    else:
        target = spec.train.target_loss
        t.add_column(f"steps to MSE≤{target:g}" if target else "steps to target", justify="right")
    if any_diverged:
        t.add_column("diverged")
    for s in summary:
        if s.n_reached_target:
            reach = compact.pm(s.steps_to_target, 4)
            if s.n_reached_target < s.n_seeds:
                reach += f" ({s.n_reached_target}/{s.n_seeds} reached)"
        else:
            reach = "not reached" if target else "-"
        div = "no"
        if s.n_diverged:
            at = ", ".join(str(d) for d in s.diverged_at if d is not None)
            div = (f"[red]at step {at}[/red]" if s.n_seeds == 1
                   else f"[red]{s.n_diverged}/{s.n_seeds} (steps {at})[/red]")
        row = [compact.num(s.lr), s.arm, compact.pm(s.final_train_loss)]
        final, best = ((s.final_test_acc, s.best_test_acc) if classification
                       else (s.final_test_loss, s.best_test_loss))
        row += [compact.pm(final), compact.pm(best)] if detail else [compact.pm(best)]
        t.add_row(*row, reach, *([div] if any_diverged else []))
    return t


def comparison_lines(spec: Spec, summary: Sequence[ArmSummary], classification: bool) -> list[str]:
    """One line per learning rate and BN arm: BN minus the baseline arm."""
    from bncli.verdicts import comparison_pairs

    by = {(s.arm, s.lr): s for s in summary}
    lines = []
    for lr in spec.train.lr:
        for arm, base in comparison_pairs(spec):
            a, b = by.get((arm, lr)), by.get((base, lr))
            if a is None or b is None:
                continue
            if a.n_diverged == a.n_seeds or b.n_diverged == b.n_seeds:
                who = [x.arm for x in (a, b) if x.n_diverged == x.n_seeds]
                lines.append(f"lr={fmt(lr)}: {arm} - {base}: {' and '.join(who)} diverged")
                continue
            dl = a.final_train_loss[0] - b.final_train_loss[0]
            if classification:
                da = a.best_test_acc[0] - b.best_test_acc[0]
                lines.append(
                    f"lr={fmt(lr)}: {arm} - {base}: final train loss {dl:+.4f}, "
                    f"best held-out acc {da * 100:+.2f} points"
                )
            else:
                dm = a.best_test_loss[0] - b.best_test_loss[0]
                lines.append(
                    f"lr={fmt(lr)}: {arm} - {base}: final train loss {dl:+.4g}, "
                    f"best held-out MSE {dm:+.4g}"
                )
    return lines


def history_csv(records: Sequence[RunRecord]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["arm", "lr", "seed", "step", "train_loss", "train_eval_loss", "train_acc",
                "test_loss", "test_acc", "diverged_at"])
    for r in records:
        for i, step in enumerate(r.steps):
            w.writerow([r.arm, r.lr, r.seed, step, r.train_loss[i], r.train_eval_loss[i],
                        "" if r.train_acc[i] is None else r.train_acc[i], r.test_loss[i],
                        "" if r.test_acc[i] is None else r.test_acc[i],
                        "" if r.diverged_at is None else r.diverged_at])
    return buf.getvalue()


def write_history_csv(records: Sequence[RunRecord], path: Path) -> Path:
    atomic_write_text(path, history_csv(records))
    return path


def render_train(spec: Spec, result, detail: bool = False) -> list:
    """What `bncli train` prints: the training table and the short C1 claims table; with
    `detail` also the final held-out column, the arm-minus-baseline lines and the claims' notes."""
    from bncli.render.norms import norm_word

    classification = result.task == "classification"
    out: list = [train_table(spec, result.summary, classification, detail)]
    lines = comparison_lines(spec, result.summary, classification) if detail else []
    if lines:
        out.append("\n".join(lines))
    out.append(compact.claims_output(result, f"C1: does {norm_word(spec)} train faster / tolerate "
                                             "larger lr?", detail))
    return out


render = render_train
