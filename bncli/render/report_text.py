"""The report as text: report.md (GitHub-flavoured Markdown, figures linked from report_files/) and
report.html (one self-contained page: figures as data URIs, inline CSS, a print stylesheet)."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterator
from typing import Any

from bncli.render.md import _Markup, _md  # noqa: F401  (the one escaping; render/regimes uses it too)
from bncli.render.palette import EXPECTATION_MARKS, expectation_counts, expectation_state, verdict_symbol
from bncli.render.report import (
    EVIDENCE,
    FILES_DIR,
    Doc,
    Report,
    Verdict,
    no_verdict_reason,
    rel_text,
)
from bncli.results import Claim
from bncli.stats import fmt

SYMBOL = {v: verdict_symbol(v) for v in ("supported", "refuted", "inconclusive", "exploratory")}
# Markdown can't colour: the nearest emoji to each palette colour, always beside the symbol and the word
EMOJI = {"supported": "🔵", "refuted": "🟠", "inconclusive": "🟡", "exploratory": "⚪"}


def short_decided(v: Verdict) -> str:
    """The line under a verdict's chip: the number that decided it, in words that agree with the
    verdict ("neither way" only under an inconclusive one; an override names itself)."""
    from bncli.render.report import deciding_metric

    c = v.claim
    m = deciding_metric(c)
    by = c.decided_by or "metrics"
    if m is None:
        return ""
    name = re.split(r"\s*[(,]", m.name, maxsplit=1)[0]
    finite = any(isinstance(x, (int, float)) and math.isfinite(x) for x in (m.arm_mean, m.baseline_mean))
    values = f"{name} {fmt(m.arm_mean, 3)} vs {fmt(m.baseline_mean, 3)}" if finite else f"{name}: not finite"
    if by not in ("metrics", "maths-check"):  # divergence, non-finite, ...: the chip says "[by …]"; the values
        return values if finite else ""
    if by == "maths-check":
        return f"check: {values}"
    lean = c.leaning if c.verdict == "exploratory" else c.verdict
    if m.points == "neither":
        if lean == "inconclusive":  # within the margin: a relative difference would read as a strong effect
            return f"{values}, neither way"
        return values + (", no worse" if m.test == "non-inferiority" and lean == "supported" else "")
    if c.baseline not in {r.arm for r in v.doc.result.runs}:  # a tolerance, not an arm: the value
        return values
    return f"{name} {rel_text(m)}"


def headline(r: Report) -> str:
    if r.batch is not None:
        counts = r.batch.get("counts", {})
        outcomes = r.batch.get("expectations", [])
        exp = (f"; {len(outcomes)} expectations: {expectation_counts(outcomes)}" if outcomes
               else f"; expectations {counts.get('expectations_passed', 0)}/{counts.get('expectations', 0)} met"
               if counts.get("expectations") else "")
        text = (f"Batch {r.batch.get('batch_file', '')}: {len(r.batch.get('comparisons', []))} comparison(s) × "
                f"command, {counts.get('jobs', '?')} job(s), exit code {r.batch.get('exit_code', '?')}{exp}.")
        return text + (" Interrupted: the results cover the finished jobs only." if r.batch.get("interrupted") else "")
    res = r.docs[0].result
    arms = list(dict.fromkeys(x.arm for x in res.runs))
    text = (f"`bncli {res.command}` on spec {r.docs[0].group}: {len(res.runs)} run(s) ({', '.join(arms)}; "
            f"{res.task}).")
    return text + (" Interrupted: the results cover the finished runs only." if res.interrupted else "")


def metric_rows(c: Claim) -> Iterator[list[str]]:
    for i, m in enumerate(c.metrics):
        from bncli.render.compact import ci_text, stability_text, verdict_label

        head = (f"{verdict_label(c)} ({c.n_seeds} seed(s), {stability_text(c)} beyond)" if i == 0 else "")
        yield [fmt(c.lr) if i == 0 else "", f"{c.arm} vs {c.baseline}" if i == 0 else "",
               head, m.name, "no worse (non-inferiority)" if m.test == "non-inferiority" else m.better,
               fmt(m.arm_mean), fmt(m.baseline_mean), ci_text(m),
               "-" if m.p_adj is None else f"{m.p_adj:.3g}", m.points]


METRIC_HEAD = ["η", "arm vs baseline", "verdict", "metric", "claimed", "arm", "baseline", "Δ [95% CI]",
               "p (Holm)", "points"]


def run_rows(docs: list[Doc]) -> tuple[list[str], list[list[str]]]:
    """One row per result x learning rate x arm: mean ± std over seeds of the training outcome."""

    def pm(pair: Any) -> str:
        m, s = pair
        if m is None or (isinstance(m, float) and math.isnan(m)):
            return "-"
        return fmt(m) if not s or math.isnan(s) else f"{fmt(m)} ± {fmt(s, 2)}"

    tasks = {d.result.task == "classification" for d in docs}
    best_head = {frozenset({True}): "best held-out acc", frozenset({False}): "best held-out MSE"}.get(
        frozenset(tasks), "best held-out acc or (MSE)")
    head = ["result", "η", "arm", "seeds", "final train loss", best_head, "steps to target", "diverged"]
    rows = []
    for doc in docs:
        cls = doc.result.task == "classification"
        for k, s in enumerate(doc.result.summary):
            div = "no" if not s.n_diverged else (f"{s.n_diverged}/{s.n_seeds} at step "
                                                 + ", ".join(str(d) for d in s.diverged_at if d is not None))
            reach = pm(s.steps_to_target) + (f" ({s.n_reached_target}/{s.n_seeds})" if s.n_reached_target else "")
            best = pm(s.best_test_acc) if cls else (pm(s.best_test_loss) if len(tasks) == 1
                                                    else f"({pm(s.best_test_loss)})")
            rows.append([doc.label if k == 0 else "", fmt(s.lr), s.arm, str(s.n_seeds), pm(s.final_train_loss),
                         best, reach if s.n_reached_target else "not reached", div])
    return head, rows


def prov_rows(r: Report) -> list[tuple[str, str]]:
    p = r.provenance
    mb = p["made_by"]
    rows = [
        ("report made", f"{mb['at']} by bncli {mb['bncli']}, Python {mb['python']}, torch {mb['torch']}, "
                        f"numpy {mb['numpy']}, matplotlib {mb['matplotlib']} on {mb['platform']}"),
        ("results made by", "bncli " + ", ".join(p["results_bncli"])),
        ("device", ", ".join(p["devices"])),
        ("threads", ", ".join(p["threads"])),
        ("seeds", ", ".join(str(s) for s in p["seeds"]) or "-"),
        ("runs", f"{p['n_runs']}, {p['run_wall_s']:.1f} s of training in all (sum of runs' wall time)"),
    ]
    if p["batch_file"]:
        rows.append(("batch file", str(p["batch_file"])))
    if p["batch_wall_s"] is not None:
        rows.append(("batch wall time", f"{p['batch_wall_s']:.1f} s"))
    for k, prev in enumerate(p.get("batch_previous") or []):  # the runs before a --resume
        wall = prev.get("wall_s")
        text = (f"{wall:.1f} s" if isinstance(wall, (int, float)) else "?") + (
            ", interrupted" if prev.get("interrupted") else "") + (
            f": {prev['command_line']}" if prev.get("command_line") else "")
        rows.append((f"earlier run {k + 1} (before --resume)", text))
    rows.append(("command line", " ; ".join(p["command_lines"]) if p["command_lines"]
                 else "not stored in the document (rerun with the spec below)"))
    return rows


# ------------------------------------------------------------------ Markdown


def _md_line(text: Any) -> str:
    """Text from the results (names, matrix values, file names) inside a Markdown line: one line,
    no raw HTML, no code span, link or table cell it could open or close, no heading or quote it
    could start — only the text."""
    s = _md(str(text))
    return "\\" + s if s[:1] in ("#", ">", "-", "+", "=") else s


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in `text` (so the text can't close it)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    """A table; every cell escaped here, once (callers pass plain text, or _Markup)."""
    out = ["| " + " | ".join(_md(h) for h in head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    return out + [""]


def _md_anchor(text: str) -> str:
    """GitHub's heading anchor."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


VIEWS_HEADING = "Landscape views (evidence beside C4, not judged)"


def _views_md(doc: Doc) -> list[str]:
    """The views' numbers of a lipschitz result, after its C4 figures; nothing without views."""
    from bncli.render.report_views import NOTE, view_rows

    got = view_rows(doc.result)
    if got is None:
        return []
    return [f"### {VIEWS_HEADING} · {_md_line(doc.label)}", "", *_md_table(*got), f"*{_md_line(NOTE)}*", ""]


def to_markdown(r: Report) -> str:
    out = [f"# {_md_line(r.title)}", "", _md_line(headline(r)), ""]
    out += ["## Verdicts", ""]
    if r.regimes:
        head = ["comparison" if r.kind == "batch" else "spec", "η", "arm", *r.claim_ids]
        rows = []
        for g in r.regimes:
            cells = []
            for cid in r.claim_ids:
                vs = g.cells.get(cid, [])
                cells.append(_Markup(" ".join(f"{EMOJI.get(v.claim.verdict, '')} {SYMBOL.get(v.claim.verdict, '')} "
                                              f"{_md_line(v.claim.verdict)}"
                                              f"[^v{v.note_id}]" for v in vs) or "·"))
            rows.append([g.group, fmt(g.lr), g.arm, *cells])
        out += _md_table(head, rows)
        out += ["🔵 ✓ supported · 🟠 ✗ refuted · 🟡 ? inconclusive · ⚪ ~ exploratory (fewer than 3 paired seeds) · "
                "`·` not judged here. Each verdict compares the arm with its baseline at that learning rate; its "
                "footnote gives the number that decided it.", ""]
        from bncli.render.regimes import regimes_markdown

        out += regimes_markdown(r, FILES_DIR)
    else:
        out += ["No verdicts: the results hold no complete pair of arms to compare.", ""]
    if r.batch is not None:
        exps = r.batch.get("expectations", [])
        out += ["## Expectations", ""]
        if exps:
            out += [f"{len(exps)} expectations: {expectation_counts(exps)}.", ""]
            out += _md_table(["", "comparison", "expectation", "numbers"],
                             [[EXPECTATION_MARKS[expectation_state(e)][1],
                               f"{e.get('comparison')} · {e.get('command')}",
                               e.get("description", ""), e.get("detail", "")] for e in exps])
        else:
            out += ["The batch file states no expectations.", ""]
    if r.problems:
        out += ["## Problems", ""] + [f"- {_md(p)}" for p in r.problems] + [""]
    for sec in r.sections:
        out += [f"## {_md_line(sec.claim)}" + (f": {_md_line(sec.statement)}" if sec.statement else ""), ""]
        last = {id(doc): k for k, (doc, _, _) in enumerate(sec.items)}
        for k, (doc, fig, claims) in enumerate(sec.items):
            if k and sec.claim == "C4" and last[id(sec.items[k - 1][0])] == k - 1:
                out += _views_md(sec.items[k - 1][0])
            evidence = fig is not None and fig.claim == EVIDENCE
            out += [f"### {_md_line(fig.claim if evidence else sec.claim)} · {_md_line(doc.label)}", ""]
            if fig is not None and fig.data is not None:
                link = f"[{sec.claim} · {_md_line(doc.label)}]({FILES_DIR}/{fig.filename})"
                shown = link + " (PDF)" if fig.filename.endswith(".pdf") else "!" + link
                out += [shown, "", f"*{_md_line(fig.caption)}*", ""]
            if fig is not None:
                out += [f"> note: {_md(n)}" for n in fig.notes] + ([""] if fig.notes else [])
            if claims:
                out += _md_table(METRIC_HEAD, [row for c in claims for row in metric_rows(c)])
                out += [f"- η={fmt(c.lr)}, {_md_line(c.arm)}: {_md(c.note)}" for c in claims if c.note] + [""]
            elif not evidence:
                out += [no_verdict_reason(doc, sec.claim), ""]
        if sec.claim == "C4" and sec.items:
            out += _views_md(sec.items[-1][0])
    out += ["## Runs", "", "Mean ± std over seeds; final train loss: the mean over the last evaluation interval.", ""]
    out += _md_table(*run_rows(r.docs))
    out += ["## Provenance", ""] + [f"- **{_md(k)}**: {_md(v)}" for k, v in prov_rows(r)] + [""]
    for labels, text in r.provenance["specs"]:
        fence = _fence(text)
        out += [f"<details><summary>Resolved spec: {html.escape(' '.join(', '.join(labels).split()))}</summary>",
                "", f"{fence}yaml", text.rstrip(), fence, "", "</details>", ""]
    rules = list(dict.fromkeys(v.claim.rule for v in r.verdicts if v.claim.rule))
    if rules:
        out += ["How verdicts are made: " + " ".join(rules), ""]
    for v in r.verdicts:
        c = v.claim
        out.append(f"[^v{v.note_id}]: " + _md_line(f"{c.claim} · {v.doc.label}, η={fmt(c.lr)}, {c.arm} vs "
                                                   f"{c.baseline}: {c.verdict}, decided by {v.decided_by}"))
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------ HTML (render/report_html.py)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)
