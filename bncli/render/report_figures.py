"""Drawing a report's figures: matplotlib is nearly all of a report's time, so with many figures
they are drawn in forked worker processes (each gets the loaded results for free)."""

from __future__ import annotations

import math
import multiprocessing
import os
from collections.abc import Sequence
from typing import Any

from bncli.results import CommandResult

Task = tuple[str, tuple[int, ...], str]  # (claim id, indices of the results it draws, heading)
# ({format: bytes} (empty: nothing drawn), notes, the figure's width in inches)
Drawn = tuple[dict[str, bytes], list[str], float]

_STATE: dict[str, Any] = {}  # what workers read: set before forking, so never pickled

# Figures already drawn in this process for a folder's result files (render.files), by
# figure_key: the report of the same folder takes them instead of drawing them again.
Drawings = dict[tuple[Any, ...], Drawn]


def figure_key(rel: str, claim: str, result: CommandResult, colors: dict[str, str],
               formats: Sequence[str], size: str) -> tuple[Any, ...]:
    """What a one-result figure depends on besides its result's records: the result's folder
    (relative to the report's), the claim, the colours of the result's own arms, the formats
    and the size. Equal keys in one output step draw equal figures."""
    from bncli.render.figstyle import result_arms

    return (str(rel), claim, tuple((a, colors.get(a)) for a in result_arms(result)),
            tuple(dict.fromkeys(formats)), size)


def _encoded(fig: Any) -> tuple[dict[str, bytes], float]:
    from bncli.render.figstyle import figure_bytes

    width = float(fig.get_size_inches()[0])
    fmts = _STATE.get("formats", ("png",))
    return {f: figure_bytes(fig, f, close=k == len(fmts) - 1) for k, f in enumerate(fmts)}, width


def draw(task: Task) -> Drawn:
    """One figure in each format asked for (_STATE["formats"]), the notes on what it had to leave
    out, and its width."""
    from bncli.render.figstyle import sized
    from bncli.render.figures import figure_for
    from bncli.render.figures_more import c9_figure, c9_points

    claim, idx, heading = task
    results: Sequence[CommandResult] = _STATE["results"]
    colors = _STATE["colors"]
    notes: list[str] = []
    with sized(_STATE.get("size", "page")):
        if claim == "C9":  # across one comparison's results: shift from measure-ics, β from lipschitz
            fig = c9_figure(c9_points([results[i] for i in idx]), colors, heading=heading)
            if fig is None:
                notes.append("no figure: C9's picture needs measure-ics and lipschitz results of the same "
                             "comparison")
                return {}, notes, 0.0
            return _pack(fig, notes)
        fn = figure_for(claim)
        if fn is None:
            return {}, ["no figure for this claim"], 0.0
        try:
            fig = fn(results[idx[0]], colors=colors, notes=notes)
        except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:  # an unexpected shape
            return {}, [*notes, f"figure skipped: the saved series has an unexpected shape "
                                f"({type(exc).__name__}: {exc})"], 0.0
        if fig is None:
            return {}, notes or ["no figure: this result holds no series for it"], 0.0
        return _pack(fig, notes)


def _pack(fig: Any, notes: list[str]) -> Drawn:
    data, width = _encoded(fig)
    return data, notes, width


def workers(n_tasks: int, jobs: int | None = None) -> int:
    """Processes to draw with: `jobs` if given, else up to one per core (max 8) once there are
    enough figures to pay for the fork; 1 where fork is not available."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if jobs is not None:
        return max(1, min(jobs, n_tasks))
    if n_tasks < 6:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, 8, math.ceil(n_tasks / 3)))


def draw_all(tasks: Sequence[Task], results: Sequence[CommandResult], colors: dict[str, str],
             jobs: int | None = None, formats: Sequence[str] = ("png",), size: str = "page") -> list[Drawn]:
    """Every task's figure in each of `formats`, laid out for `size` (page or column), in order."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from bncli.render.figstyle import pyplot

    _STATE.update(results=list(results), colors=colors, formats=tuple(dict.fromkeys(formats)), size=size)
    try:
        n = workers(len(tasks), jobs)
        if n <= 1:
            return [draw(t) for t in tasks]
        pyplot()  # imported once here; the forked workers inherit it
        try:
            with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork")) as pool:
                return list(pool.map(draw, tasks, chunksize=max(1, len(tasks) // (3 * n))))
        except (BrokenProcessPool, OSError):  # no processes here (limits, sandbox): draw them in turn
            return [draw(t) for t in tasks]
    finally:
        _STATE.clear()
