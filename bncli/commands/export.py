"""`bncli export tensorboard|mlflow RESULT_DIR`: a saved result into the trackers people use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bncli.commands._common import guarded, progress_callback, stderr_console

export = typer.Typer(name="export", no_args_is_help=True, rich_markup_mode="markdown",
                     help="Export a saved result (a subcommand's or a batch's --out, or its JSON) to "
                          "TensorBoard or MLflow. Nothing is trained.")

ResultArg = Annotated[Path, typer.Argument(help="A result folder (summary.json or batch.json in it) or a "
                                           "saved JSON document.", show_default=False, metavar="RESULT")]


@export.command("tensorboard")
def tensorboard(
    result: ResultArg,
    logdir: Annotated[Path, typer.Option("--logdir", help="TensorBoard log folder (tensorboard --logdir DIR).",
                                         show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Replace the event files of earlier exports of these "
                                        "runs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No notes on stderr.")] = False,
) -> None:
    """One TensorBoard run per job (`<comparison>/<command>/<arm>/lr=<lr>/seed=<seed>`): every curve
    (losses, accuracies, each probe's per-step series) as scalars by step; the job's spec and its
    verdicts as text. Needs `pip install 'bncli[tensorboard]'`."""
    with guarded():
        from bncli.export.tensorboard import export_tensorboard
        from bncli.saved import load_result, named_results

        loaded = named_results(load_result(result))
        with progress_callback(quiet, "runs", "points") as progress:
            runs = export_tensorboard(loaded, logdir, force, progress)
        if not quiet:
            stderr_console().print(f"wrote {len(runs)} TensorBoard run(s) to {logdir}/ "
                                   f"(tensorboard --logdir {logdir})", soft_wrap=True)


@export.command("mlflow")
def mlflow(
    result: ResultArg,
    tracking_uri: Annotated[str, typer.Option("--tracking-uri", help="MLflow tracking URI: file:./mlruns, "
                                              "http://host:5000, sqlite:///mlflow.db (the last needs the full "
                                              "mlflow package).", show_default=False)],
    experiment: Annotated[str, typer.Option("--experiment", help="MLflow experiment name (made if missing).")]
    = "bncli",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No notes on stderr.")] = False,
) -> None:
    """One MLflow run per job (params: the job's resolved spec, flattened; metrics: every curve by
    step; tags: comparison, command, arm, lr, seed, verdicts), nested under a parent run for the
    command or batch that holds report.html as an artifact. A local `file:` store needs
    MLFLOW_ALLOW_FILE_STORE=true with MLflow 3 (set for you when unset). Needs
    `pip install 'bncli[mlflow]'`."""
    with guarded():
        from bncli.export.mlflow import export_result

        with progress_callback(quiet, "runs", "points") as progress:
            out = export_result(result, tracking_uri, experiment, progress)
        if not quiet:
            stderr_console().print(f"logged {len(out['runs'])} run(s) under parent run {out['parent_run_id']} in "
                                   f"experiment {experiment!r} at {tracking_uri}", soft_wrap=True)
