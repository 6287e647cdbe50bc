"""The `train` analysis (claim C1): training curves only, no probes; the C1 verdict."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bncli.analyses.base import Analysis, DataInfo, Summary, no_probes
from bncli.claims import ClaimInfo
from bncli.results import Claim, RunRecord
from bncli.spec import Spec
from bncli.stats import finite_mean
from bncli.verdict_stats import binomial_floor
from bncli.verdicts import MetricInput, claim_pairs, make_claim, seeds_of

# losses closer than this are equal (float32 noise of a mean loss)
LOSS_FLOOR = 1e-6
# an error rate's resolution when the held-out size is unknown (one error in a thousand)
ERROR_FLOOR = 1e-3
C1_STATEMENT = "BN speeds training and tolerates larger learning rates (Ioffe & Szegedy 2015 §4.1)"


def c1_claims(spec: Spec, records: Sequence[RunRecord], n_test: int | None = None) -> list[Claim]:
    """C1 per learning rate and BN arm, paired by seed: final train loss, best held-out error (or
    MSE), steps to target.

    A run that never reaches the target counts as needing all its steps (censored; said in the
    note). If exactly one arm diverged at every seed, that alone decides (decided_by: divergence).
    The held-out error's noise floor is binomial over the `n_test` held-out examples.
    """
    cfg = spec.verdict
    classification = any(r.test_acc and r.test_acc[0] is not None for r in records)
    # a run that never reaches the target counts one evaluation beyond the budget, so that
    # "reached at the last evaluation" and "never reached" differ
    horizon = spec.train.steps + spec.train.eval_every

    def to_target(rs: list[RunRecord]) -> list[float]:
        return [math.nan if r.diverged else
                float(r.steps_to_target if r.steps_to_target is not None else horizon) for r in rs]

    out = []
    for lr, arm, base, a, b, _ in claim_pairs(spec, records):
        metrics = [
            MetricInput("final train loss", "lower",
                        [r.final_train_loss for r in a], [r.final_train_loss for r in b],
                        LOSS_FLOOR, "final"),
        ]
        if classification:
            ea, eb = [1 - r.best_test_acc for r in a], [1 - r.best_test_acc for r in b]
            floor = binomial_floor(finite_mean(ea), finite_mean(eb), n_test) if n_test else ERROR_FLOOR
            metrics.append(MetricInput("best held-out error", "lower", ea, eb, floor, "best"))
        else:
            metrics.append(MetricInput(
                "best held-out MSE", "lower",
                [r.best_test_loss for r in a], [r.best_test_loss for r in b], LOSS_FLOOR, "best"))
        has_target = (spec.train.target_accuracy is not None if classification
                      else spec.train.target_loss is not None)
        if has_target:
            # a difference below half an evaluation interval is below what was measured
            metrics.append(MetricInput("steps to target", "lower", to_target(a), to_target(b),
                                       spec.train.eval_every / 2, "first reached"))
        a_div = sum(r.diverged for r in a) / len(a)
        b_div = sum(r.diverged for r in b) / len(b)
        missed = sum(r.steps_to_target is None and not r.diverged for r in [*a, *b]) if has_target else 0
        # said only when a run did miss it (a note about censoring nothing misleads)
        override, decided = None, None
        note = f"runs that never reach the target count as {horizon} steps" if missed else ""
        if a_div or b_div:
            note += (f"{'; ' if note else ''}diverged: {arm} {sum(r.diverged for r in a)}/{len(a)} seeds, {base} "
                     f"{sum(r.diverged for r in b)}/{len(b)} (a diverged run counts against its arm)")
        if a_div == 0 and b_div == 1:
            override, decided = "supported", "divergence"
            note = (f"decided by divergence, not by the metrics: {base} diverged at every seed, {arm} "
                    "trained (BN tolerates this learning rate); the metrics compare nothing")
        elif a_div == 1 and b_div == 0:
            override, decided = "refuted", "divergence"
            note = f"decided by divergence, not by the metrics: {arm} diverged at every seed, {base} trained"
        elif a_div == 1 and b_div == 1:
            note = "both arms diverged"
        out.append(make_claim("C1", C1_STATEMENT, lr, arm, base, metrics, cfg, note, override,
                              decided, seeds=seeds_of(a), runs=(a, b)))
    return out


HELP = """Train every arm (same init, same batches) at every learning rate and seed; test claim C1.

Prints a table per learning rate x arm (final train loss, held-out accuracy or MSE, steps to
the target, divergence), BN-minus-plain lines, and a C1 verdict per learning rate and BN arm.

Verdict rule (SCIENCE.md, Verdicts), per seed BN arm vs plain (same init and batches): the
final train loss, the best held-out error (or MSE; binomial noise floor over the held-out
examples), the steps to the target (a run that never reaches it counts one evaluation past
the budget; floor: half an evaluation interval); a diverged run counts against its arm. Per seed
the log ratio ln((BN + f)/(plain + f)); supported when every metric favours the BN arm beyond the
margin (default 10%, verdict.margin) by one-sided paired t-tests, p Holm-adjusted across the
command's claims < 0.05; refuted likewise the other way; else inconclusive. Fewer than 3
paired seeds: exploratory (the direction only). If exactly one arm diverged at every seed, that
alone decides, and the verdict says "decided by divergence"."""


def summarize(spec: Spec, records: Sequence[RunRecord], data: DataInfo) -> Summary:
    return Summary(c1_claims(spec, records, data.n_test))


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
    budgeted=True,
    exit_codes="Exit codes: 0 done (diverged arms are reported), 1 run failed, 2 bad spec or usage,\n"
               "130 interrupted (finished runs are still reported).",
)


# its claims: what render, report, plot files and batch expectations read (bncli.claims)
CLAIMS = (
    ClaimInfo("C1", C1_STATEMENT, "train", figure="bncli.render.figures:c1_figure", plot_name="training",
              caption="Mean over seeds, band ±1 std; a seed's curve ends where it diverged (✕)."),
)
