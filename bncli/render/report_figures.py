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
Drawn = tuple[bytes | None, list[str]]  # (PNG bytes or None, notes)

_STATE: dict[str, Any] = {}  # what workers read: set before forking, so never pickled


def draw(task: Task) -> Drawn:
    """One figure as PNG bytes, and the notes on what it had to leave out."""
    from bncli.render.figstyle import png_bytes
    from bncli.render.figures import figure_for
    from bncli.render.figures_more import c9_figure, c9_points

    claim, idx, heading = task
    results: Sequence[CommandResult] = _STATE["results"]
    colors = _STATE["colors"]
    notes: list[str] = []
    if claim == "C9":  # across one comparison's results: shift from measure-ics, β from lipschitz
        fig = c9_figure(c9_points([results[i] for i in idx]), colors, heading=heading)
        if fig is None:
            notes.append("no figure: C9's picture needs measure-ics and lipschitz results of the same "
                         "comparison")
        return (png_bytes(fig) if fig is not None else None), notes
    fn = figure_for(claim)
    if fn is None:
        return None, ["no figure for this claim"]
    try:
        fig = fn(results[idx[0]], colors=colors, notes=notes)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:  # an unexpected shape
        return None, [*notes, f"figure skipped: the saved series has an unexpected shape "
                              f"({type(exc).__name__}: {exc})"]
    if fig is None:
        return None, notes or ["no figure: this result holds no series for it"]
    return png_bytes(fig), notes


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
             jobs: int | None = None) -> list[Drawn]:
    """Every task's figure, in order."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from bncli.render.figstyle import pyplot

    _STATE.update(results=list(results), colors=colors)
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
