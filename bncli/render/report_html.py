"""report.html: one self-contained page (figures as data URIs, inline CSS from the one palette, a
print stylesheet whose chips fit their words), from the model bncli.render.report builds."""

from __future__ import annotations

import base64
import re
from typing import Any

from bncli.render.palette import EXPECTATION_MARKS, VERDICTS, expectation_counts, expectation_state, verdict_symbol
from bncli.render.report import EVIDENCE, Doc, Report, Verdict, metric_text, no_verdict_reason
from bncli.render.report_text import (
    METRIC_HEAD,
    SYMBOL,
    VIEWS_HEADING,
    _e,
    headline,
    metric_rows,
    prov_rows,
    run_rows,
    short_decided,
)
from bncli.stats import fmt

_EXP_CLASS = {"met": "ok", "known": "known", "unmet": "bad"}


def _verdict_css() -> str:
    """The verdict chips' colours, from the one palette (render/palette.py)."""
    return "".join(f".v-{k.replace(' ', '-')}{{background:{fill};color:{ink}}}"
                   for k, (fill, ink, _, _) in VERDICTS.items()) + (
        f".ok{{color:{VERDICTS['supported'][0]};font-weight:700}}.bad{{color:{VERDICTS['refuted'][0]};font-weight:700}}"
        f".known{{color:{EXPECTATION_MARKS['known'][0]};font-weight:700}}"
        f".problems li{{color:{VERDICTS['refuted'][0]}}}")


CSS = """
:root{--ink:#1b1b1b;--mute:#5b5b5b;--line:#d6d6d6}
*{box-sizing:border-box;-webkit-print-color-adjust:exact;print-color-adjust:exact}
body{margin:0;color:var(--ink);background:#fff;font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",
Arial,"Noto Sans","DejaVu Sans",sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:34px 0 8px;padding-top:8px;border-top:2px solid var(--line)}
h3{font-size:15px;margin:22px 0 6px}.sub{color:var(--mute);margin:0 0 14px}
nav{font-size:13px;margin:8px 0 4px}nav a{margin-right:12px;white-space:nowrap}
a{color:#0b5d99}table{border-collapse:collapse;margin:6px 0 12px;font-size:12.5px}
th,td{border:1px solid var(--line);padding:3px 7px;vertical-align:top;text-align:left}
th{background:#f3f3f3;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto;max-width:100%}
table.grid td.cell{padding:2px;min-width:100px;max-width:165px}
table.grid td.empty{min-width:0;color:#aaa;text-align:center}
.v{display:block;padding:3px 6px;margin:1px 0;border-radius:3px;font-weight:600;cursor:help}
.vw{white-space:nowrap}
.v small{display:block;font-weight:400;font-size:11px;opacity:.92;white-space:normal;overflow-wrap:normal;
word-break:normal;hyphens:manual}
.v-exploratory,.v-no-verdict{border:1px solid #9a9a9a}
.key span{display:inline-block;margin-right:10px}.key .v{display:inline-block;margin-right:4px}
figure{margin:8px 0 6px}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:var(--mute);font-size:12.5px;max-width:900px}
.note{background:#fff8d6;border-left:3px solid #c9a400;padding:4px 8px;margin:4px 0;font-size:12.5px}
details{margin:6px 0}summary{cursor:pointer;color:#0b5d99}
pre{background:#f6f6f6;border:1px solid #e3e3e3;padding:8px;font-size:11.5px;overflow-x:auto;white-space:pre}
dl.prov{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:13px}
dl.prov dt{font-weight:600}dl.prov dd{margin:0}
@media print{
 @page{size:A4;margin:12mm}
 body{font-size:10pt}main{max-width:none;padding:0}nav{display:none}
 h2{break-after:avoid;break-inside:avoid;border-top:1px solid #999}h3{break-after:avoid;break-inside:avoid}
 .views{break-inside:avoid}
 figure,table,.note,pre{break-inside:avoid}figure img{max-height:235mm;border:0}
 .scroll{overflow:visible}a{color:inherit;text-decoration:none}table{font-size:8.5pt}
 table.grid td.cell{min-width:0;max-width:none}.v{padding:2px 4px}.v small{font-size:7pt}
 table.grid{table-layout:auto;width:auto;max-width:100%;font-size:7pt;break-inside:auto}
 table.grid tr{break-inside:avoid}table.grid td,table.grid th{overflow-wrap:normal;word-break:normal;hyphens:manual}
 table.grid .v{padding:1px 3px;font-size:6.5pt}table.grid .v .vw{white-space:nowrap}
 table.grid .v small{font-size:6pt;white-space:normal}
 figure.regimes img{max-width:100%}
 pre{white-space:pre-wrap}details pre{column-count:2;column-gap:8mm;font-size:7.5pt;break-inside:auto}
}
"""

PRINT_JS = ("window.addEventListener('beforeprint',function(){document.querySelectorAll('details')"
            ".forEach(function(d){d.open=true})});")


def _html_table(head: list[str], rows: list[list[str]], cls: str = "", numeric: tuple[int, ...] = ()) -> str:
    out = [f'<div class="scroll"><table class="{cls}"><thead><tr>'
           + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr></thead><tbody>"]
    for row in rows:
        out.append("<tr>" + "".join(f'<td class="num">{_e(_unbroken_numbers(c))}</td>' if i in numeric
                                    else f"<td>{_e(_unbroken_numbers(c))}</td>"
                                    for i, c in enumerate(row)) + "</tr>")
    return "".join(out) + "</tbody></table></div>"


def _breakable(text: Any) -> str:
    """Escaped text that may wrap after _ . / → (names like relu_lr1 or exploratory→supported)
    and at spaces, never inside a word."""
    return re.sub(r"([_/→.])(?=\S)", r"\1<wbr>", _e(text))


def _verdict_div(v: Verdict) -> str:
    from bncli.claim_text import verdict_label

    c = v.claim
    tip = "\n".join([f"{c.claim} · {v.doc.label} · η={fmt(c.lr)} · {c.arm} vs {c.baseline}: {c.verdict}",
                     f"decided by {v.decided_by}", *(metric_text(m) + f" → {m.points}" for m in c.metrics),
                     *([f"note: {c.note}"] if c.note else [])])
    word, _, by = verdict_label(c).partition(" [")
    return (f'<span class="v v-{_e(c.verdict.replace(" ", "-"))}" title="{_e(tip)}">'
            f'<span class="vw">{_e(verdict_symbol(c.verdict))}\u00a0{_breakable(word)}</span>'
            + (f" <span class=\"vw\">[{_e(by)}</span>" if by else "")
            + f"<small>{_e(_unbroken_numbers(short_decided(v)))}</small></span>")


def _unbroken_numbers(text: str) -> str:
    """Minus signs as U+2212 inside numbers ('2.8e−07', '−75.8%'): a browser may wrap after an
    ASCII hyphen, which would cut a number in two."""
    text = re.sub(r"(\d)e-(\d)", "\\1e\u2212\\2", text)
    return re.sub(r"(^|[\s(\[,])-(\d)", "\\1\u2212\\2", text)


def grid_html(r: Any) -> str:
    if not r.regimes:
        return "<p>No verdicts: the results hold no complete pair of arms to compare.</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in ["comparison" if r.kind == "batch" else "spec", "η", "arm",
                                                   *r.claim_ids])
    rows = []
    for g in r.regimes:
        cells = []
        for cid in r.claim_ids:
            vs = g.cells.get(cid, [])
            cells.append(f'<td class="cell">{"".join(_verdict_div(v) for v in vs)}</td>' if vs
                         else '<td class="cell empty" title="not judged here">·</td>')
        rows.append(f'<tr><td>{_breakable(g.group)}</td><td class="num">{_e(fmt(g.lr))}</td>'
                    f"<td>{_breakable(g.arm)}</td>" + "".join(cells) + "</tr>")
    key = ('<p class="key">' + "".join(f'<span><span class="v v-{k}">{SYMBOL[k]} {k}</span></span>'
                                        for k in SYMBOL)
           + "<span>· not judged here.</span> Each verdict compares the arm with its baseline at that learning "
             "rate; under it, the number that decided it (hover for every number).</p>")
    return (f'<div class="scroll"><table class="grid"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
            f"</tbody></table></div>{key}")


def _views_html(doc: Doc) -> str:
    from bncli.render.report_views import NOTE, numeric_columns, view_rows

    got = view_rows(doc.result)
    if got is None:
        return ""
    head, rows = got
    return (f'<div class="views"><h3>{_e(VIEWS_HEADING)} · {_e(doc.label)}</h3>'
            + _html_table(head, rows, cls="views", numeric=numeric_columns(head))
            + f'<p class="sub">{_e(NOTE)}</p></div>')


def to_html(r: Report) -> str:
    body = [f"<h1>{_e(r.title)}</h1>", f'<p class="sub">{_e(headline(r).replace("`", ""))}</p>']
    toc = [("verdicts", "Verdicts")]
    if r.batch is not None:
        toc.append(("expectations", "Expectations"))
    toc += [(sec.claim.lower(), sec.claim) for sec in r.sections] + [("runs", "Runs"), ("provenance", "Provenance")]
    body.append("<nav>" + "".join(f'<a href="#{a}">{_e(t)}</a>' for a, t in toc) + "</nav>")
    from bncli.render.regimes import regimes_html

    body += ['<section id="verdicts"><h2>Verdicts</h2>', grid_html(r), regimes_html(r), "</section>"]
    if r.batch is not None:
        exps = r.batch.get("expectations", [])
        body.append('<section id="expectations"><h2>Expectations</h2>')
        if exps:
            rows = "".join(
                f'<tr><td class="{_EXP_CLASS[expectation_state(e)]}">'
                f"{EXPECTATION_MARKS[expectation_state(e)][1]}</td>"
                f"<td>{_e(e.get('comparison'))} · {_e(e.get('command'))}</td><td>{_e(e.get('description', ''))}</td>"
                f"<td>{_e(e.get('detail', ''))}</td></tr>" for e in exps)
            body.append(f"<p>{len(exps)} expectations: {expectation_counts(exps)}.</p>"
                        '<div class="scroll"><table><thead><tr><th></th>'
                        f"<th>comparison</th><th>expectation</th><th>numbers</th></tr></thead><tbody>{rows}"
                        "</tbody></table></div>")
        else:
            body.append("<p>The batch file states no expectations.</p>")
        body.append("</section>")
    if r.problems:
        body.append('<h2>Problems</h2><ul class="problems">' + "".join(f"<li>{_e(p)}</li>" for p in r.problems)
                    + "</ul>")
    for sec in r.sections:
        body.append(f'<section id="{_e(sec.claim.lower())}"><h2>{_e(sec.claim)}'
                    + (f": {_e(sec.statement)}" if sec.statement else "") + "</h2>")
        last = {id(doc): k for k, (doc, _, _) in enumerate(sec.items)}
        for k, (doc, fig, claims) in enumerate(sec.items):
            if k and sec.claim == "C4" and last[id(sec.items[k - 1][0])] == k - 1:
                body.append(_views_html(sec.items[k - 1][0]))
            evidence = fig is not None and fig.claim == EVIDENCE
            body.append(f"<h3>{_e(fig.claim if evidence else sec.claim)} · {_e(doc.label)}</h3>")
            if fig is not None and fig.html_data is not None:
                data = base64.b64encode(fig.html_data).decode("ascii")
                size = f' style="width:{fig.width_in:.2f}in"' if fig.width_in else ""  # print size
                body.append(f'<figure id="{_e(fig.anchor)}"><img src="data:{fig.html_mime};base64,{data}"{size} '
                            f'alt="{_e(sec.claim)} · {_e(doc.label)}"><figcaption>{_e(fig.caption)}</figcaption>'
                            "</figure>")
            if fig is not None:
                body += [f'<p class="note">note: {_e(n)}</p>' for n in fig.notes]
            if claims:
                body.append(_html_table(METRIC_HEAD, [row for c in claims for row in metric_rows(c)],
                                        numeric=(0, 5, 6, 7, 8)))
                body += [f'<p class="note">η={_e(fmt(c.lr))}, {_e(c.arm)}: {_e(c.note)}</p>' for c in claims if c.note]
            elif not evidence:
                body.append(f"<p>{_e(no_verdict_reason(doc, sec.claim))}</p>")
        if sec.claim == "C4" and sec.items:
            body.append(_views_html(sec.items[-1][0]))
        body.append("</section>")
    head, rows = run_rows(r.docs)
    body += ['<section id="runs"><h2>Runs</h2><p class="sub">Mean ± std over seeds; final train loss: the mean '
             "over the last evaluation interval.</p>", _html_table(head, rows, numeric=(1, 3, 4, 5, 6)), "</section>"]
    body.append('<section id="provenance"><h2>Provenance</h2><dl class="prov">'
                + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in prov_rows(r)) + "</dl>")
    for labels, text in r.provenance["specs"]:
        body.append(f"<details><summary>Resolved spec: {_e(', '.join(labels))}</summary><pre>{_e(text)}</pre>"
                    "</details>")
    rules = list(dict.fromkeys(v.claim.rule for v in r.verdicts if v.claim.rule))
    if rules:
        body.append(f"<p class=\"sub\">How verdicts are made: {_e(' '.join(rules))}</p>")
    body.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(r.title)}</title><style>{CSS}{_verdict_css()}</style></head>\n<body><main>\n"
            + "\n".join(body) + f"\n</main><script>{PRINT_JS}</script></body></html>\n")
