"""`bncli batch`: many comparisons from one YAML file, with expectations, for terminals and CI."""

from __future__ import annotations

import json as jsonlib
import os
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from bncli.commands._common import (
    OutputOptions,
    check_out_folder,
    guarded,
    out_lock,
    print_renderables,
    progress_callback,
    reporter,
    stderr_console,
)
from bncli.commands.analysis import ALLOW_CODE_HELP

BatchArg = Annotated[Path, typer.Argument(help="YAML batch file (defaults, comparisons, expect).",
                                          show_default=False, metavar="BATCH.yaml")]


def batch(
    batch_path: BatchArg,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Worker processes (default: the "
                                             "number of cores; each gets cores / N torch threads).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write one folder per comparison, batch.json "
                                             "and every finished job (jobs/<key>.json) here.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Reuse the finished jobs stored under --out; "
                                         "run the rest.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the jobs it would run; train nothing.")] = False,
    junit_xml: Annotated[Path | None, typer.Option("--junit-xml", help="Write JUnit XML: one testcase per "
                                                   "expectation.")] = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="Run only comparisons whose name matches "
                                                   "(glob; repeat).")] = None,
    steps: Annotated[int | None, typer.Option("--steps", help="Training steps for every comparison.")] = None,
    seeds: Annotated[int | None, typer.Option("--seeds", help="Seeds for every comparison.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="torch threads per job.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = None,
    fuse: Annotated[Literal["auto", "off"] | None, typer.Option(
        "--fuse", help="auto: an arm's seeds x lrs train as one batched model where they can (records "
        "say numerics: fused); off: every run alone (overrides fuse).")] = None,
    backend: Annotated[Literal["local", "ray"], typer.Option("--backend", help="local: this machine; "
                                                             "ray: a Ray cluster.")] = "local",
    address: Annotated[str | None, typer.Option("--address", help="Ray: auto or ray://host:port "
                                                "(default: a private local Ray).")] = None,
    force: Annotated[bool, typer.Option("--force", help="--out may hold earlier results: remove them first "
                                        "(without it such a folder is refused; --resume continues a batch).")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print batch.json on stdout and nothing else.")] = False,
    detail: Annotated[bool, typer.Option("--detail", help="Also print each comparison's claims (what decided "
                                         "each verdict) and every expectation with its numbers.")] = False,
    no_report: Annotated[bool, typer.Option("--no-report", help="With --out: don't write report.md / "
                                            "report.html (bncli report DIR makes them later).")] = False,
    figure_format: Annotated[Literal["png", "svg", "pdf"], typer.Option(
        "--figure-format", help="With --out: plots and the report's figure files as png (200 dpi), svg or pdf.")]
    = "png",
    figure_size: Annotated[Literal["page", "column"], typer.Option(
        "--figure-size", help="Figure width: page (about 7 in) or column (about 3.3 in).")] = "page",
    tensorboard: Annotated[Path | None, typer.Option("--tensorboard", help="Also write every run to "
                                                     "TensorBoard under this folder as it finishes.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or notes on stderr.")] = False,
    allow_code: Annotated[bool, typer.Option("--allow-code", help=ALLOW_CODE_HELP)] = False,
) -> None:
    """Run many comparisons from one YAML file as one plan and check their expectations.

    The batch file has `defaults:` (spec fields for every comparison) and `comparisons:`, each with
    a `name`, a `spec` (a path relative to the batch file, or an inline spec), a `command` (train,
    measure-ics, lipschitz, scale-check, saturation, or a list), `overrides` (a partial spec),
    an optional `matrix:` of dotted spec fields to expand (the product; each cell is named by its
    values) and `expect:` — `{claim: C4, verdict: supported}`, `{claim: C1, verdict_in: [...]}`,
    `{metric: best_test_acc, arm: batchnorm, at_least: 0.9}`, `{metric: loss_variation, arm:
    batchnorm, less_than_arm: plain, by: 0.1}`, `{diverged: plain, lr: 1.0}` (optionally `lr:`,
    `arm:`, `command:`). Merge order: spec file < defaults < overrides < matrix < options.

    Every job of every comparison forms one plan; identical jobs run once. Each finished job is
    stored under --out at once; --resume after Ctrl-C or a crash runs only the rest (a stored job
    that is edited, broken or from another bncli version is rerun, and the output says why).
    --out is held while the batch runs: a second batch into it exits 2. At most 10,000 cells.

    It prints a verdict grid (comparison x claim, one column per learning rate), the unmet
    expectations with the numbers that decided them, and last one line that counts the
    expectations (met, known deviations, unmet) and gives the exit code's reason. --detail adds
    each comparison's claims and every expectation; the report and --json have every number.

    Exit codes: 0 every expectation met, 1 an expectation not met, 2 bad batch file, spec or
    usage, 3 a job failed to run (an error, not divergence), 130 interrupted (finished jobs kept).
    """
    from bncli.models.module import code_consent

    with guarded(batch_path), code_consent(allow_code):
        from bncli.batch.expand import check_expectations, expand, load_batch
        from bncli.errors import UsageError

        opts = OutputOptions(json, out, quiet, force=force, report=not no_report, figure_format=figure_format,
                             figure_size=figure_size)
        spec_batch = load_batch(batch_path)
        cli = {"train.steps": steps, "seeds": seeds, "threads": threads, "device": device,
               "fuse": fuse}
        cells = expand(batch_path, spec_batch, cli, only)
        check_expectations(batch_path, cells)
        if resume and out is None:
            raise UsageError("--resume needs --out (the folder of the interrupted batch)")
        with progress_callback(quiet, "checking cells", "") as progress:
            _check_specs(cells, progress)  # every check a run makes before training, --dry-run included
        if dry_run:
            if out is not None:
                _check_out_readonly(out, force, resume, _folders(cells))
            with progress_callback(quiet, "listing jobs", "") as progress:
                rows, n_distinct = _dry_rows(cells, out if resume else None, progress)
            _dry_run(rows, n_distinct, json)
            return
        with out_lock(out):
            if out is not None:
                check_out_folder(out, force=force, resume=resume, folders=_folders(cells))
            from bncli.batch.run import earlier_runs, pending_jobs, run_batch
            from bncli.executors import make_executor

            todo = pending_jobs(cells, out if resume else None)
            n = min(jobs or os.cpu_count() or 1, max(1, todo))
            # nothing left to run (a finished batch resumed): no worker processes, no Ray
            executor = make_executor(backend if todo else "local", n if todo else 1, address, raise_errors=False)
            previous = earlier_runs(out) if resume and out is not None else []
            live = None
            if tensorboard is not None:
                from bncli.export.tensorboard import live_for_batch

                live = live_for_batch(tensorboard, cells)
            with reporter(opts) as rep:
                run = run_batch(cells, str(batch_path), executor, rep, out, resume,
                                on_job=live.job_done if live else None)
            if live is not None:
                live.finish([(f"{e.cell.name}/{e.command}", e.result) for e in run.entries if e.result is not None])
            from bncli.commands._common import command_line, interrupt_exit_code

            run.command_line = command_line()
            run.previous = previous
            run.interrupt_code = interrupt_exit_code()
            if run.rerun and not quiet:
                why = ", ".join(f"{n} {reason}" for reason, n in sorted(run.rerun.items()))
                stderr_console().print(f"resume: reused {run.n_reused} stored job(s); rerunning "
                                       f"{sum(run.rerun.values())} whose file could not be trusted ({why})",
                                       style="yellow", highlight=False, markup=False)
            _output(run, opts, junit_xml, detail)
        raise typer.Exit(run.exit_code())


def _check_specs(cells, progress=None) -> None:
    from bncli.analyses import get_analysis
    from bncli.pipeline import check_spec

    if progress is not None:
        progress(total=len(cells))
    for c in cells:
        check_spec(c.spec, [s for s in (get_analysis(x).section for x in c.commands) if s])
        if progress is not None:
            progress(run_done=1)


def _check_out_readonly(out: Path, force: bool, resume: bool, folders: list[Path]) -> None:
    """--dry-run: what check_out_folder would refuse, without making or clearing anything."""
    from bncli.commands._common import check_no_links, held_results
    from bncli.errors import UsageError

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out: {out} is not a folder")
    if out.is_dir():
        check_no_links(out, folders, force=force and held_results(out) is not None)
    held = held_results(out) if out.is_dir() else None
    if held is not None and resume and force:
        raise UsageError("--resume keeps the stored jobs and --force removes them: give one of them")
    if held is not None and not force and not (resume and held.startswith("a batch")):
        raise UsageError(f"--out: {out} already holds {held}; give a new folder, or --force to replace them")


def _folders(cells) -> list[Path]:
    """Every comparison folder a batch writes, relative to --out."""
    return [Path(c.folder) / cmd for c in cells for cmd in c.commands]


def _dry_rows(cells, out: Path | None, progress) -> tuple[list[dict], int]:
    """One row per job of every cell (shared: an identical job listed before; stored: --resume
    would reuse it), cell by cell with progress (a 10,000-cell batch lists in seconds)."""
    from bncli.batch.resume import check_stored
    from bncli.batch.run import entries_of

    seen: set[str] = set()
    rows = []
    progress(total=len(cells))
    for cell in cells:
        for e in entries_of([cell]):
            for j in e.jobs:
                shared = j.key in seen
                seen.add(j.key)
                stored = out is not None and check_stored(out, j)[0] is not None
                rows.append({"comparison": e.cell.name, "command": e.command, "arm": j.arm, "lr": j.lr,
                             "seed": j.seed, "steps": e.cell.spec.train.steps, "key": j.key,
                             "shared": shared, "stored": stored})
        progress(run_done=1)
    return rows, len(seen)


def _dry_run(rows: list[dict], n_distinct: int, as_json: bool) -> None:
    from rich.text import Text

    from bncli.render.compact import table

    n_run = len({r["key"] for r in rows if not r["stored"]})
    if as_json:
        sys.stdout.write(jsonlib.dumps({"jobs": rows, "distinct": n_distinct, "to_run": n_run}) + "\n")
        return
    t = table(f"{len(rows)} job(s), {n_distinct} distinct, {n_run} to run (dry run: nothing trained)")
    for col in ("comparison", "command", "arm", "lr", "seed", "steps", "key", "note"):
        t.add_column(col, justify="right" if col in ("lr", "seed", "steps") else "left")
    for r in rows:
        note = "stored" if r["stored"] else ("shared" if r["shared"] else "")
        t.add_row(Text(r["comparison"]), r["command"], r["arm"], f"{r['lr']:g}", str(r["seed"]), str(r["steps"]),
                  r["key"][:12], note)
    print_renderables([t])


def _output(run, opts: OutputOptions, junit: Path | None, detail: bool = False) -> None:
    from bncli.errors import RunError, UsageError
    from bncli.io import atomic_write_json, atomic_write_text, is_inside
    from bncli.render.batch import render_batch

    failed: OSError | None = None
    drawn: dict = {}  # claim figures drawn for the comparisons' folders, which the report takes
    if opts.out is not None:
        from bncli.render.files import write_many_result_files

        todo = []
        for e in run.entries:
            if e.result is None or not e.result.runs:
                continue
            rel = Path(e.cell.folder) / e.command
            if not is_inside(opts.out, opts.out / rel):  # expand() makes safe names; never write beside --out
                raise UsageError(f"--out: comparison folder {rel} is not inside {opts.out}")
            todo.append((e, rel))
        from bncli.render.figstyle import arm_colors, result_arms

        # one colour per arm across the batch (the report's colours), so that the report takes
        # the comparisons' claim figures as they are drawn here
        colors = arm_colors(a for e, _ in todo for a in result_arms(e.result))
        kept: list[dict] = []
        try:
            write_many_result_files([(e.result, opts.out / rel) for e, rel in todo],
                                    figure_format=opts.figure_format, figure_size=opts.figure_size,
                                    colors=colors, keep=kept)
            for e, rel in todo:
                e.path = str(rel)
            drawn = {(str(rel), *key[1:]): d for (_, rel), k in zip(todo, kept, strict=True) for key, d in k.items()}
        except OSError as exc:
            failed = exc
    doc = run.to_json()
    if opts.out is not None and failed is None:
        try:
            atomic_write_json(opts.out / "batch.json", doc)
            if opts.report:
                from bncli.render.report_write import write_report

                write_report(opts.out, figure_format=opts.figure_format, figure_size=opts.figure_size,
                             drawings=drawn)
        except OSError as exc:
            failed = exc
    if junit is not None:
        from bncli.batch.junit import junit_xml

        atomic_write_text(junit, junit_xml(run))
    if opts.json:
        sys.stdout.write(jsonlib.dumps(doc, allow_nan=False) + "\n")
        sys.stdout.flush()
    else:
        print_renderables(render_batch(doc, detail))
    if failed is not None:  # a full disk: the results are on stdout; say what is missing
        raise RunError(f"--out: could not write the results to {opts.out}: {failed.strerror or failed} "
                       "(the finished jobs stored under jobs/ are kept: --resume after making room)")
    if not opts.quiet and opts.out is not None:
        stderr_console().print(f"wrote {opts.out}/batch.json and {len(run.entries)} comparison folder(s)")
    if run.interrupted:
        stderr_console().print("[yellow]interrupted: finished jobs are kept (--resume runs the rest)[/yellow]")
