"""A result's files under an output folder: summary.json, spec.yaml, history.csv and its plots —
the same figures as the report (bncli.render.figures), one per claim, with their captions."""

from __future__ import annotations

import os
from pathlib import Path

from bncli.results import CommandResult
from bncli.spec import Spec, spec_to_yaml


def write_result_files(result: CommandResult, out_dir: Path, figure_format: str = "png",
                       figure_size: str = "page", colors: dict[str, str] | None = None,
                       keep: dict | None = None) -> list[Path]:
    """Write every file of one command's result (atomically); return their paths. `colors`: the
    arms' colours (default: the result's own, in its spec's order); `keep`: a dict that receives
    the claim figures drawn, by report_figures.figure_key with rel "." (the report of the same
    folder, or of a batch with this folder, takes them from there)."""
    from bncli.io import atomic_write_json, atomic_write_text
    from bncli.render.train import write_history_csv

    spec = Spec.model_validate(result.spec)
    atomic_write_json(out_dir / "summary.json", result.to_json())
    atomic_write_text(out_dir / "spec.yaml", spec_to_yaml(spec))
    written = [out_dir / "summary.json", out_dir / "spec.yaml",
               write_history_csv(result.runs, out_dir / "history.csv")]
    return written + write_plots(result, out_dir / "plots", figure_format, figure_size, colors, keep)


def write_plots(result: CommandResult, plots: Path, figure_format: str = "png",
                figure_size: str = "page", colors: dict[str, str] | None = None,
                keep: dict | None = None) -> list[Path]:
    """plots/<claim figure>.<format> for each claim the command judges, drawn by the report's
    figure code, and plots/captions.md (each figure's caption, with its verdicts)."""
    from bncli.analyses import BY_COMMAND
    from bncli.claims import plot_name
    from bncli.io import atomic_write_bytes, atomic_write_text
    from bncli.render.figstyle import arm_colors, result_arms
    from bncli.render.figures import caption, caption_text, verdict_line
    from bncli.render.report_figures import draw_all, figure_key

    a = BY_COMMAND.get(result.command)
    held = [c.claim for c in result.claims]
    claims = [c for c in dict.fromkeys([*(a.claims if a else ()), *held]) if c != "C9" or c in held]
    claims = [c for c in claims if plot_name(c)]  # plots/<its entry's plot_name>.<format>
    heading = f"C9: shift against smoothness, per normalization ({result.spec.get('name', '')})"
    tasks = [(c, (0,), heading if c == "C9" else "") for c in claims]
    colors = colors if colors is not None else arm_colors(result_arms(result))
    drawn = draw_all(tasks, [result], colors, 1, (figure_format,), figure_size)
    if keep is not None:  # C9's heading here is not the report's: only the others are the same figure
        keep.update({figure_key(".", c, result, colors, (figure_format,), figure_size): d
                     for c, d in zip(claims, drawn, strict=True) if c != "C9" and d[0]})
    written: list[Path] = []
    lines = [f"# Figures of `bncli {result.command}` · {result.spec.get('name', '')}", ""]
    for c, (data, notes, _) in zip(claims, drawn, strict=True):
        if figure_format not in data:
            continue
        plots.mkdir(parents=True, exist_ok=True)
        path = plots / f"{plot_name(c)}.{figure_format}"
        atomic_write_bytes(path, data[figure_format])
        written.append(path)
        text = caption(result, c) if c != "C9" else f"{caption_text('C9')} Verdict: {verdict_line(result, c)}."
        lines += [f"**{path.name}** — {c}: {text}", *(f"- note: {n}" for n in notes), ""]
    from bncli.render.figstyle import figure_bytes
    from bncli.render.figures_views import view_figures

    for name, fig, text in view_figures(result, colors):  # opt-in views, not judged
        plots.mkdir(parents=True, exist_ok=True)
        path = plots / f"{name}.{figure_format}"
        atomic_write_bytes(path, figure_bytes(fig, figure_format))
        written.append(path)
        lines += [f"**{path.name}** — {text}", ""]
    if written:
        atomic_write_text(plots / "captions.md", "\n".join(lines).rstrip() + "\n")
        written.append(plots / "captions.md")
    return written


_MANY: list[tuple[CommandResult, Path, str, str, dict | None]] = []  # what forked writers read (never pickled)


def _write_one(i: int) -> tuple[list[Path], dict]:
    result, out_dir, fmt, size, colors = _MANY[i]
    keep: dict = {}
    return write_result_files(result, out_dir, fmt, size, colors, keep), keep


def _size(result: CommandResult) -> int:
    """What writing a result's files costs, roughly: its records' entries (due steps x probes)."""
    return sum(len(r.steps) * (1 + len(r.probes)) for r in result.runs)


def write_many_result_files(items: list[tuple[CommandResult, Path]], figure_format: str = "png",
                            figure_size: str = "page", jobs: int | None = None,
                            colors: dict[str, str] | None = None,
                            keep: list[dict] | None = None) -> list[list[Path]]:
    """write_result_files for several results (a batch's comparisons), in order. Their figures
    are nearly all of the time, so with two or more results they are written by forked worker
    processes, up to one per core (the report's figures are drawn the same way); in turn where
    fork is not available or processes cannot start. An OSError (a full disk) comes back as
    itself. `colors`: one colour map for all (a batch's: an arm keeps its colour across the
    comparisons and the report); `keep`: a list that receives each result's drawn claim figures
    (write_result_files's keep), in order."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from bncli.render.report_figures import workers

    def in_turn() -> list[list[Path]]:
        kept = [{} for _ in items]
        paths = [write_result_files(r, d, figure_format, figure_size, colors, k)
                 for (r, d), k in zip(items, kept, strict=True)]
        if keep is not None:
            keep[:] = kept
        return paths

    # each result is a few figures (~0.3-1 s apiece): a fork pays for itself from two results on
    n = 1 if len(items) < 2 else min(8, workers(len(items), jobs if jobs is not None else os.cpu_count() or 1))
    if n <= 1:
        return in_turn()
    from bncli.render.figstyle import pyplot

    pyplot()  # imported once here; the forked workers inherit it
    _MANY[:] = [(r, d, figure_format, figure_size, colors) for r, d in items]
    # the largest first (a result's records by due step and probe: C9's 120 runs take ~10x a
    # small comparison), so that it is not the one left running alone at the end
    order = sorted(range(len(items)), key=lambda i: -_size(items[i][0]))
    try:
        try:
            pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork"))
        except OSError:  # no processes here (limits, sandbox): write them in turn
            return in_turn()
        try:
            with pool:
                done = dict(zip(order, pool.map(_write_one, order), strict=True))
            if keep is not None:
                keep[:] = [done[i][1] for i in range(len(items))]
            return [done[i][0] for i in range(len(items))]
        except BrokenProcessPool:
            return in_turn()
    finally:
        _MANY.clear()
