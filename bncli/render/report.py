"""`bncli report`: one page from a saved result folder (summary.json or batch.json) — the verdict
grid, each claim's figure, the numbers and the provenance — as report.md and report.html, without
training anything."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bncli.errors import SchemaError, UsageError
from bncli.render.claim_row import deciding_metric  # noqa: F401  (moved there; imported from here too)
from bncli.results import READABLE_VERSIONS, SCHEMA_VERSION, Claim, CommandResult, MetricComparison

FORMATS = ("md", "html")
FILES_DIR = "report_files"  # the PNGs report.md links to


@dataclass
class Doc:
    """One command's saved result: a subcommand's folder, or one comparison x command of a batch."""

    label: str  # "relu_lr1 · train"
    group: str  # the regime's first part: the comparison (batch) or the spec's name
    result: CommandResult
    raw: dict[str, Any]
    rel: str  # its folder, relative to the report's folder


@dataclass
class Figure:
    """One drawn figure: its file (png, svg or pdf; None: nothing to draw), what report.html
    embeds (png or svg), its width in inches (shown at that size) and what to say about it."""

    claim: str
    doc: str
    anchor: str
    filename: str
    data: bytes | None
    caption: str
    notes: list[str] = field(default_factory=list)
    html_data: bytes | None = None
    html_mime: str = "image/png"
    width_in: float = 0.0


@dataclass
class Verdict:
    """One claim verdict placed in the grid, with its footnote number and the number that decided it."""

    claim: Claim
    doc: Doc
    note_id: int
    decided_by: str


@dataclass
class Regime:
    group: str
    lr: float
    arm: str
    cells: dict[str, list[Verdict]] = field(default_factory=dict)


@dataclass
class Section:
    """One claim: per document its figure and its verdicts."""

    claim: str
    statement: str
    items: list[tuple[Doc, Figure | None, list[Claim]]] = field(default_factory=list)


@dataclass
class Report:
    title: str
    kind: str  # "batch" | "single"
    folder: Path
    docs: list[Doc]
    batch: dict[str, Any] | None
    problems: list[str]
    regimes: list[Regime]
    claim_ids: list[str]
    verdicts: list[Verdict]
    sections: list[Section]
    provenance: dict[str, Any]
    regime_png: bytes | None = None  # the regime map (render/regimes.py)


# ------------------------------------------------------------------ loading


def _read_json(path: Path) -> dict[str, Any]:
    """A result document: a regular file (a pipe or /dev/zero is refused, not read forever), at
    most MAX_DOCUMENT_BYTES (1 GiB), JSON, an object; anything else one line, exit 2."""
    from bncli.io import MAX_DOCUMENT_BYTES, NotReadable, read_bounded

    try:
        data = read_bounded(path, MAX_DOCUMENT_BYTES)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except NotReadable as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    try:
        doc = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise SchemaError(f"{path}: not a bncli result document (JSON nested too deep)") from None
    except ValueError as exc:
        raise SchemaError(f"{path}: not a JSON document ({str(exc)[:200]})") from None
    if not isinstance(doc, dict):
        raise SchemaError(f"{path}: not a bncli result document (a JSON object was expected)")
    return doc


def _check_version(path: Path, doc: dict[str, Any]) -> None:
    version = doc.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise SchemaError(f"{path}: schema_version {version!r}: this bncli reads schema_version "
                          f"{SCHEMA_VERSION} (made by bncli {doc.get('bncli_version', '?')})")


def _load_result(path: Path) -> tuple[CommandResult, dict[str, Any]]:
    from bncli.result_shape import check_command_doc

    raw = _read_json(path)
    _check_version(path, raw)
    check_command_doc(path, raw)
    try:
        return CommandResult.from_json(raw), raw
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemaError(f"{path}: not a bncli result document ({type(exc).__name__}: {exc})") from None


def load_documents(folder: Path) -> tuple[str, list[Doc], dict[str, Any] | None, list[str]]:
    """(kind, documents, batch.json or None, problems) of a result folder."""
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder")
    batch_path, summary_path = folder / "batch.json", folder / "summary.json"
    if batch_path.is_file():
        from bncli.result_shape import check_batch_doc

        batch = _read_json(batch_path)
        _check_version(batch_path, batch)
        check_batch_doc(batch_path, batch)
        docs, problems = [], []
        for c in batch.get("comparisons", []):
            label = f"{c.get('name', '?')} · {c.get('command', '?')}"
            for f in c.get("failed_jobs", []):
                problems.append(f"{label}: job {f.get('run')} failed: {f.get('error')}")
            if c.get("missing_jobs"):
                problems.append(f"{label}: {c['missing_jobs']} job(s) did not run (interrupted)")
            if not c.get("path"):
                continue
            from bncli.io import is_inside

            if not isinstance(c["path"], str) or not is_inside(folder, folder / c["path"]):
                problems.append(f"{label}: path {c['path']!r} is outside {folder}: not read")
                continue
            p = folder / c["path"] / "summary.json"
            if not p.is_file():
                problems.append(f"{label}: {c['path']}/summary.json is missing")
                continue
            result, raw = _load_result(p)
            docs.append(Doc(label, str(c.get("name", "?")), result, raw, c["path"]))
        return "batch", docs, batch, problems
    if summary_path.is_file():
        result, raw = _load_result(summary_path)
        name = str(result.spec.get("name", folder.name))
        return "single", [Doc(f"{name} · {result.command}", name, result, raw, ".")], None, []
    raise UsageError(f"{folder}: holds neither summary.json (a subcommand's --out) nor batch.json "
                     "(a batch's --out)")


# ------------------------------------------------------------------ verdicts


def rel_text(m: MetricComparison) -> str:
    """'−80.0%', or a ratio '×1782' once a percentage stops being readable."""
    r = m.rel_diff
    if r is None or not math.isfinite(r):
        return "n/a"
    if abs(r) >= 10 and m.baseline_mean and math.isfinite(m.arm_mean) and math.isfinite(m.baseline_mean):
        return f"×{m.arm_mean / m.baseline_mean:.3g}"
    return f"{r:+.1%}".replace("-", "−")


def metric_text(m: MetricComparison, short: bool = False) -> str:
    from bncli.stats import fmt

    name = re.sub(r"\s*\(.*\)$", "", m.name) if short else m.name
    from bncli.render.compact import ci_text

    p = f", p adj={m.p_adj:.3g}" if m.p_adj is not None else ""
    return f"{name}: {fmt(m.arm_mean)} vs {fmt(m.baseline_mean)} ({ci_text(m)}{p})"


def _claim_order(ids: Sequence[str]) -> list[str]:
    """Every registered claim id and any other a document holds, C1 ... C9, C10 (bncli.claims)."""
    import bncli.analyses  # noqa: F401  (fills the claim registry)
    from bncli.claims import claim_ids, sort_key

    return sorted(dict.fromkeys([*claim_ids(), *ids]), key=sort_key)


def build_grid(docs: Sequence[Doc]) -> tuple[list[Regime], list[Verdict]]:
    """Regimes (comparison or spec, learning rate, arm) in first-seen order, each with its verdicts
    per claim id; every verdict numbered for its footnote."""
    regimes: dict[tuple[str, float, str], Regime] = {}
    verdicts: list[Verdict] = []
    for d in docs:
        for c in d.result.claims:
            reg = regimes.setdefault((d.group, c.lr, c.arm), Regime(d.group, c.lr, c.arm))
            m = deciding_metric(c)
            v = Verdict(c, d, len(verdicts) + 1, metric_text(m) if m else (c.note or c.verdict))
            reg.cells.setdefault(c.claim, []).append(v)
            verdicts.append(v)
    return list(regimes.values()), verdicts


# ------------------------------------------------------------------ figures


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60] or "x"


def _claims_of(doc: Doc) -> list[str]:
    """The claims a document's command judges (from the registry), plus any it holds."""
    from bncli.analyses import BY_COMMAND

    a = BY_COMMAND.get(doc.result.command)
    held = [c.claim for c in doc.result.claims]
    # C9 compares several normalizations: shown where it was judged, not for every ICS / landscape run
    judged = [c for c in (a.claims if a else ()) if c != "C9" or "C9" in held]
    return list(dict.fromkeys([*judged, *held]))


def build_sections(docs: Sequence[Doc], colors: dict[str, str], jobs: int | None = None,
                   figure_format: str = "png", figure_size: str = "page",
                   drawings: dict | None = None) -> list[Section]:
    """Per claim id (C1..C9 order), per document: its figure and its verdicts. C9's figure is one
    per comparison (it needs measure-ics's shift and lipschitz's smoothness side by side).
    `drawings`: figures this process already drew for the folder's result files
    (report_figures.figure_key): those are taken, not drawn again."""
    from bncli.render.figures import caption, caption_text
    from bncli.render.report_figures import Task, draw_all, figure_key

    by_claim: dict[str, list[Doc]] = {}
    for d in docs:
        for cid in _claims_of(d):
            by_claim.setdefault(cid, []).append(d)
    index = {id(d): i for i, d in enumerate(docs)}
    plan: list[tuple[Section, list[tuple[Doc, int | None]]]] = []  # per section: (doc, its task or None)
    tasks: list[Task] = []
    for cid in _claim_order(list(by_claim)):
        related = by_claim.get(cid)
        if not related:
            continue
        stmt = next((c.statement for d in related for c in d.result.claims if c.claim == cid), "")
        rows: list[tuple[Doc, int | None]] = []
        for d in related:
            if cid != "C9":
                tasks.append((cid, (index[id(d)],), ""))
            elif all(d.group != other.group for other, _ in rows):
                mine = tuple(i for i, x in enumerate(docs) if x.group == d.group)
                tasks.append((cid, mine, f"C9 · {d.group}: distribution shift against smoothness, per normalization"))
            else:  # the comparison's figure is already shown
                rows.append((d, None))
                continue
            rows.append((d, len(tasks) - 1))
        plan.append((Section(cid, stmt), rows))
    html_fmt = "svg" if figure_format == "svg" else "png"
    formats = (figure_format, html_fmt)
    taken: dict[int, Any] = {}
    for t, (cid, idx, heading) in enumerate(tasks):
        if drawings and cid != "C9" and not heading:
            d = docs[idx[0]]
            hit = drawings.get(figure_key(d.rel, cid, d.result, colors, formats, figure_size))
            if hit is not None:
                taken[t] = hit
    rest = [t for t in range(len(tasks)) if t not in taken]
    fresh = draw_all([tasks[t] for t in rest], [d.result for d in docs], colors, jobs, formats, figure_size)
    drawn = [taken[t] if t in taken else None for t in range(len(tasks))]
    for t, d in zip(rest, fresh, strict=True):
        drawn[t] = d
    sections = []
    for sec, rows in plan:
        for d, t in rows:
            fig = None
            if t is not None:
                data, notes, width = drawn[t]
                name = d.group if sec.claim == "C9" else d.label
                text = (caption(d.result, sec.claim) if sec.claim != "C9"
                        else f"{caption_text('C9')} Verdict: {_c9_verdicts(docs, d.group)}.")
                fig = Figure(sec.claim, name, f"fig-{t + 1}",
                             f"{t + 1:02d}_{sec.claim}_{_slug(name)}.{figure_format}", data.get(figure_format),
                             text, notes, data.get(html_fmt), "image/svg+xml" if html_fmt == "svg" else "image/png",
                             width)
            sec.items.append((d, fig, [c for c in d.result.claims if c.claim == sec.claim]))
            if sec.claim == "C4":  # the opt-in landscape views: evidence beside C4, never judged
                sec.items += _view_items(d, colors, figure_format, html_fmt)
        sections.append(sec)
    return sections


EVIDENCE = "C4 evidence"  # Figure.claim of a view figure: shown beside C4, with no verdict of its own


def _view_items(doc: Doc, colors: dict[str, str], figure_format: str,
                html_fmt: str) -> list[tuple[Doc, Figure | None, list[Claim]]]:
    """The landscape-view figures of a lipschitz result (bncli.render.figures_views), as items."""
    from bncli.render.figstyle import figure_bytes
    from bncli.render.figures_views import view_figures

    out: list[tuple[Doc, Figure | None, list[Claim]]] = []
    for name, fig, caption in view_figures(doc.result, colors):
        width = float(fig.get_size_inches()[0])  # shown at its own size, like the claims' figures
        html_data = figure_bytes(fig, html_fmt, close=False)
        data = figure_bytes(fig, figure_format)
        slug = f"{_slug(doc.label)}-{name}"
        out.append((doc, Figure(EVIDENCE, doc.label, f"fig-{slug}", f"C4_{slug}.{figure_format}", data, caption,
                                [], html_data, "image/svg+xml" if html_fmt == "svg" else "image/png", width), []))
    return out


def _c9_verdicts(docs: Sequence[Doc], group: str) -> str:
    from bncli.render.figures import verdict_line

    parts = [verdict_line(d.result, "C9") for d in docs if d.group == group]
    parts = [p for p in dict.fromkeys(parts) if p != "no verdict"]
    return "; ".join(parts) or "no verdict"


def no_verdict_reason(doc: Doc, claim: str) -> str:
    """Why a claim has no verdict in a result, in words a new user can act on."""
    res = doc.result
    arms = [a for a in res.spec.get("arms", []) if isinstance(a, dict)]
    names = {a.get("name") for a in arms}
    if claim == "C8" and not any(a.get("norm") == "batch" and a.get("affine") is False for a in arms):
        return ("No verdict here: C8 compares affine BN with BN without γ and β, and this spec has no "
                "`batchnorm_noaffine` arm (add it to `arms:`).")
    if claim == "C9" and not (names & {"l1norm", "l2norm", "linfnorm"} and {"plain", "batchnorm"} <= names):
        return "No verdict here: C9 needs an ℓp arm (l1norm, l2norm, linfnorm) beside `plain` and `batchnorm`."
    if res.interrupted:
        return "No verdict here: interrupted before both arms of a pair had finished."
    if len(names) < 2:
        return "No verdict here: the spec has one arm; a verdict compares two."
    return "No verdict here (a claim needs complete, paired runs of both arms)."


# ------------------------------------------------------------------ provenance


def provenance(docs: Sequence[Doc], batch: dict[str, Any] | None) -> dict[str, Any]:
    """Versions (this machine's and the documents'), devices, threads, seeds, wall time, command
    lines and the resolved specs, verbatim."""
    import platform
    import sys
    from datetime import datetime, timezone
    from importlib import metadata

    import yaml

    from bncli import __version__

    def version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"

    specs: dict[str, list[str]] = {}
    for d in docs:
        text = yaml.safe_dump(d.result.spec, sort_keys=False, allow_unicode=True)
        specs.setdefault(text, []).append(d.label)
    runs = [r for d in docs for r in d.result.runs]
    seeds = sorted({r.seed for r in runs})
    command_lines = [x for x in [(batch or {}).get("command_line"), *(d.raw.get("command_line") for d in docs)] if x]
    return {
        "made_by": {"bncli": __version__, "python": platform.python_version(), "torch": version("torch"),
                    "numpy": version("numpy"), "matplotlib": version("matplotlib"),
                    "platform": platform.platform(), "executable": sys.executable,
                    "at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")},
        "results_bncli": sorted({str(d.result.bncli_version) for d in docs} | (
            {str(batch.get("bncli_version"))} if batch else set())),
        "devices": sorted({d.result.device for d in docs}),
        "threads": sorted({str(d.result.spec.get("threads", "?")) for d in docs}),
        "seeds": seeds,
        "n_runs": len(runs),
        "run_wall_s": sum(r.wall_s for r in runs if r.wall_s is not None and math.isfinite(r.wall_s)),
        "batch_wall_s": batch.get("wall_s") if batch else None,
        "batch_previous": (batch or {}).get("previous_runs", []),
        "batch_file": batch.get("batch_file") if batch else None,
        "command_lines": list(dict.fromkeys(command_lines)),
        "specs": [(labels, text) for text, labels in specs.items()],
    }


# ------------------------------------------------------------------ the report


def build_report(folder: Path, jobs: int | None = None, figure_format: str = "png",
                 figure_size: str = "page", drawings: dict | None = None) -> Report:
    """Read a result folder and draw everything the report shows (`drawings`: build_sections's)."""
    from bncli.render.figstyle import arm_colors, result_arms

    kind, docs, batch, problems = load_documents(folder)
    regimes, verdicts = build_grid(docs)
    seen = [c for d in docs for c in _claims_of(d)] + [v.claim.claim for v in verdicts]
    colors = arm_colors(a for d in docs for a in result_arms(d.result))
    if batch is not None:
        title = f"bncli report: {batch.get('batch_file') or folder.name}"
    else:
        title = f"bncli report: {docs[0].group} · {docs[0].result.command}"
    from bncli.render.regimes import regime_png

    judged = set(seen)  # the grid's columns: claims these documents judge (not every registered one)
    return Report(title, kind, folder, docs, batch, problems, regimes,
                  [c for c in _claim_order(seen) if c in judged], verdicts,
                  build_sections(docs, colors, jobs, figure_format, figure_size, drawings), provenance(docs, batch),
                  regime_png(docs))
