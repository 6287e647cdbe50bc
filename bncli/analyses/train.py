"""The `train` analysis (claim C1): training curves only, no probes; the C1 verdict."""

from __future__ import annotations

from collections.abc import Sequence

from bncli.analyses.base import Analysis, DataInfo, Summary, no_probes
from bncli.results import Claim, RunRecord
from bncli.spec import Spec
from bncli.verdicts import MetricInput, by_arm_lr, comparison_pairs, make_claim

C1_STATEMENT = "BN speeds training and tolerates larger learning rates (Ioffe & Szegedy 2015 §4.1)"


def c1_claims(spec: Spec, records: Sequence[RunRecord]) -> list[Claim]:
    """C1 per learning rate and BN arm: final train loss, best held-out error (or MSE), steps to target.

    A run that never reaches the target counts as needing all its steps (censored; said in the
    note). If exactly one arm diverged at this learning rate, that alone decides the verdict.
    """
    groups = by_arm_lr(records)
    cfg = spec.verdict
    classification = any(r.test_acc and r.test_acc[0] is not None for r in records)
    # a run that never reaches the target counts one evaluation beyond the budget, so that
    # "reached at the last evaluation" and "never reached" differ
    horizon = spec.train.steps + spec.train.eval_every

    def to_target(rs: list[RunRecord]) -> list[float]:
        return [float(r.steps_to_target if r.steps_to_target is not None else horizon)
                for r in rs if not r.diverged]

    out = []
    for lr in spec.train.lr:
        for arm, base in comparison_pairs(spec):
            a, b = groups.get((arm, lr), []), groups.get((base, lr), [])
            if not a or not b:
                continue

            metrics = [
                MetricInput("final train loss", "lower",
                            [r.final_train_loss for r in a], [r.final_train_loss for r in b]),
            ]
            if classification:
                metrics.append(MetricInput(
                    "best held-out error", "lower",
                    [1 - r.best_test_acc for r in a], [1 - r.best_test_acc for r in b]))
            else:
                metrics.append(MetricInput(
                    "best held-out MSE", "lower",
                    [r.best_test_loss for r in a], [r.best_test_loss for r in b]))
            has_target = (spec.train.target_accuracy is not None if classification
                          else spec.train.target_loss is not None)
            if has_target:
                metrics.append(MetricInput("steps to target", "lower", to_target(a), to_target(b)))
            a_div = sum(r.diverged for r in a) / len(a)
            b_div = sum(r.diverged for r in b) / len(b)
            missed = sum(r.steps_to_target is None and not r.diverged for r in [*a, *b]) if has_target else 0
            # said only when a run did miss it (a note about censoring nothing misleads)
            override, note = None, f"runs that never reach the target count as {horizon} steps" if missed else ""
            if a_div or b_div:
                metrics.append(MetricInput("diverged (fraction of seeds)", "lower",
                                           [float(r.diverged) for r in a], [float(r.diverged) for r in b]))
                note += (f"{'; ' if note else ''}diverged: {arm} {sum(r.diverged for r in a)}/{len(a)} seeds, {base} "
                         f"{sum(r.diverged for r in b)}/{len(b)} (diverged runs are left out of the metrics)")
            if a_div == 0 and b_div == 1:
                override = "supported"
                note = f"{base} diverged at every seed, {arm} trained: BN tolerates this learning rate"
            elif a_div == 1 and b_div == 0:
                override = "refuted"
                note = f"{arm} diverged at every seed, {base} trained"
            elif a_div == 1 and b_div == 1:
                note = "both arms diverged"
            out.append(make_claim("C1", C1_STATEMENT, lr, arm, base, metrics, cfg, note, override))
    return out


HELP = """Train every arm (same init, same batches) at every learning rate and seed; test claim C1.

Prints a table per learning rate x arm (final train loss, held-out accuracy or MSE, steps to
the target, divergence), BN-minus-plain lines, and a C1 verdict per learning rate and BN arm.

Verdict rule: the metrics are the final train loss, the best held-out error (or MSE), the
steps to the target (a run that never reaches it counts one evaluation past the budget) and,
when any run diverged, the fraction of seeds that diverged. Supported when every metric
favours the BN arm by more than the margin (default 10%, verdict.margin), refuted when every
metric favours the plain arm by the margin, else inconclusive; with >= 3 seeds each metric
must also pass Welch's t-test (p < 0.05). If exactly one arm diverged at every seed, that
alone decides.

Exit codes: 0 done (diverged arms are reported), 1 run failed, 2 bad spec or usage,
130 interrupted (finished runs are still reported)."""


def summarize(spec: Spec, records: Sequence[RunRecord], data: DataInfo) -> Summary:
    return Summary(c1_claims(spec, records))


ANALYSIS = Analysis(
    name="train",
    command="train",
    claims=("C1",),
    section=None,
    options=(),
    plan_probes=no_probes,
    summarize=summarize,
    render="bncli.render.train",
    help=HELP,
)
