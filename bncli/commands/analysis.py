"""One generic builder for every analysis subcommand: options declared once, one call into the
pipeline, one render step. The analyses themselves come from the registry (bncli.analyses)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.text import Text

from bncli.analyses import Analysis, Option
from bncli.commands._common import (
    OutputOptions,
    SpecArg,
    check_out_folder,
    command_line,
    finish,
    guarded,
    load,
    out_lock,
    reporter,
)
from bncli.spec import ARM_PRESETS

ALLOW_CODE_HELP = ("Let a spec with model: {kind: module, factory: ...} import that module and run its "
                   "code (without it, or BNCLI_ALLOW_CODE=1, such a spec exits 2 before anything runs).")


def _lr_list(v: Any) -> Any:
    """`--lr 0.1 --lr 0.5` -> [0.1, 0.5]; `--lr 0.1,0.5` is refused with what to type instead."""
    from bncli.errors import UsageError

    if not v:
        return None
    out = []
    for x in v:
        text = str(x).strip()
        if "," in text:
            raise UsageError(f"--lr {text}: repeat --lr for a sweep: "
                             + " ".join(f"--lr {p.strip()}" for p in text.split(",") if p.strip()))
        try:
            out.append(float(text))
        except ValueError:
            raise UsageError(f"--lr {text}: not a number (repeat --lr for a sweep: --lr 0.1 --lr 0.5)") from None
    return out


def _threads_value(v: str) -> Any:
    """`--threads 2` -> 2, `--threads auto` -> 'auto'; anything else is left for the spec's check."""
    v = v.strip()
    return int(v) if v.isdigit() else v


# every analysis subcommand takes these; each overrides one spec field
COMMON: tuple[Option, ...] = (
    Option("steps", ("--steps",), int | None, "train.steps", "Training steps (overrides train.steps)."),
    Option("lr", ("--lr",), list[str] | None, "train.lr",
           "Learning rate; repeat for a sweep (overrides train.lr).", to_spec=_lr_list),
    Option("seeds", ("--seeds",), int | None, "seeds",
           "Number of seeds: seed, seed+1, ... (overrides seeds)."),
    Option("seed", ("--seed",), int | None, "seed", "First seed (overrides seed)."),
    Option("device", ("--device",), str | None, "device", "auto, cpu, cuda or cuda:N (overrides device)."),
    Option("arms", ("--arms",), str | None, "arms",
           lambda: f"Comma-separated arm presets: {', '.join(ARM_PRESETS)} (overrides arms)."),  # a plugin's too
    Option("batch_size", ("--batch-size",), int | None, "train.batch_size",
           "Mini-batch size m (overrides train.batch_size)."),
    Option("threads", ("--threads",), str | None, "threads",
           "CPU threads for torch: N, or auto (the default: 1 unless the model and batch are "
           "large; overrides threads).", to_spec=_threads_value, metavar="N|auto"),
    Option("fuse", ("--fuse",), Literal["auto", "off"] | None, "fuse",
           "auto (the default): an arm's seeds x lrs train as one batched model where the model, "
           "optimizer and probes allow (records say numerics: fused); off: every run alone "
           "(overrides fuse).", metavar="auto|off"),
    Option("precision", ("--precision",), Literal["float32", "float64"] | None, "precision",
           "float32 (the default), or float64 for reproducing and debugging: results that agree "
           "across CPUs to ~1e-9 (overrides precision).", metavar="float32|float64"),
)
EXECUTION: tuple[Option, ...] = (
    Option("backend", ("--backend",), Literal["local", "ray"], None,
           "local: run here; ray: each run a Ray task (a private local Ray, or --address)."),
    Option("address", ("--address",), str | None, None,
           "Ray cluster to join: auto or ray://host:port (default: a private local Ray)."),
    Option("allow_code", ("--allow-code",), bool, None, ALLOW_CODE_HELP),
)
OUTPUT: tuple[Option, ...] = (
    Option("json", ("--json",), bool, None, "Print one JSON document on stdout and nothing else there."),
    Option("out", ("--out",), Path | None, None,
           "Write summary.json, history.csv, spec.yaml and plots/*.png here (a folder that already "
           "holds results is refused unless --force)."),
    Option("force", ("--force",), bool, None,
           "--out may hold earlier results: remove them first (nothing stale is left beside the new)."),
    Option("detail", ("--detail",), bool, None,
           "Also print the full per-layer / per-phase tables and each verdict's notes (--json and "
           "--out always have them)."),
    Option("no_report", ("--no-report",), bool, None,
           "With --out: don't write report.md / report.html (bncli report DIR makes them later)."),
    Option("figure_format", ("--figure-format",), Literal["png", "svg", "pdf"], None,
           "With --out: plots (and the report's figure files) as png (200 dpi), svg or pdf."),
    Option("figure_size", ("--figure-size",), Literal["page", "column"], None,
           "Figure width: page (two columns, about 7 in) or column (one column, about 3.3 in)."),
    Option("tensorboard", ("--tensorboard",), Path | None, None,
           "Also write every run to TensorBoard under this folder as it finishes (curves, spec, "
           "verdicts; needs bncli[tensorboard])."),
    Option("quiet", ("--quiet", "-q"), bool, None, "No progress bars or notes on stderr."),
)

_DEFAULTS = {"backend": "local", "figure_format": "png", "figure_size": "page"}


def _parameter(opt: Option) -> inspect.Parameter:
    default = False if opt.annotation is bool else _DEFAULTS.get(opt.param)
    text = opt.help() if callable(opt.help) else opt.help
    info = typer.Option(*opt.decls, help=text, show_default=False, metavar=opt.metavar)
    return inspect.Parameter(opt.param, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=Annotated[opt.annotation, info])


def spec_overrides(options: tuple[Option, ...], values: dict[str, Any]) -> dict[str, Any]:
    """{dotted spec path: value} for every option given on the command line."""
    out: dict[str, Any] = {}
    for opt in options:
        if opt.spec_path is None:
            continue
        v = values.get(opt.param)
        if v is not None and opt.to_spec is not None:
            v = opt.to_spec(v)
        out[opt.spec_path] = v
    return out


def run_command(analysis: Analysis, spec_path: Path, values: dict[str, Any]) -> None:
    """Load, override, run the analysis's plan, render: what every analysis subcommand does."""
    opts = OutputOptions(values["json"], values["out"], values["quiet"], values["detail"], values["force"],
                         report=not values["no_report"], figure_format=values["figure_format"],
                         figure_size=values["figure_size"])
    from bncli.models.module import code_consent

    with guarded(spec_path), code_consent(values["allow_code"]):
        render = importlib.import_module(analysis.render)
        spec = load(spec_path, opts, spec_overrides(analysis.options + COMMON, values), check_out=False,
                    command=analysis.command)
        live, tb_name = None, ""
        if values["tensorboard"] is not None:  # its run names and folder checked before --out is touched
            from bncli.export.tensorboard import live_for_spec

            tb_name, live = live_for_spec(values["tensorboard"], spec, analysis.command)
        with out_lock(opts.out):
            if opts.out is not None:  # after the lock: another command may be writing there
                check_out_folder(opts.out, force=opts.force)
            _run_locked(analysis, spec, values, opts, render, live, tb_name)


def _run_locked(analysis: Analysis, spec: Any, values: dict[str, Any], opts: OutputOptions, render: Any,
                live: Any, tb_name: str) -> None:
    """run_command once --out is held: run the plan, render, write."""
    from bncli.executors import make_executor
    from bncli.pipeline import run_analysis

    threads = spec.threads if isinstance(spec.threads, int) else None  # auto: per job
    executor = make_executor(values["backend"], 1, values["address"], threads=threads)
    with reporter(opts) as rep:
        result = run_analysis(spec, analysis, rep, executor, on_job=live.job_done if live else None)
    result = dataclasses.replace(result, command_line=command_line())
    if live is not None:
        live.finish([(tb_name, result)])
    # user text (the spec's name) is printed literally, never read as Rich markup
    shown = spec.model_copy(update={"name": escape(spec.name)})
    lines = render.render(shown, result, detail=opts.detail)
    finish(result, [run_header(analysis, spec, values["backend"], result.runs), *lines], opts)


def run_header(analysis: Analysis, spec: Any, backend: str, runs: Any = ()) -> Text:
    """The output's first line: the command, the spec's name, what ran (arms x lrs x seeds, the
    model, the data, steps) and the threads each run used."""
    from bncli.render.describe import describe
    from bncli.runner.cache import job_data

    ceiling = 1 if backend == "ray" and spec.threads == "auto" else None  # a Ray task asks for 1 CPU
    text = Text()
    text.append(f"bncli {analysis.command} · {spec.name}: ", style="bold")
    from bncli.runtime import threads_label

    data = job_data(spec)
    text.append(describe(spec, data, threads_label(spec, data.input_shape, data.n_out, data.n_train, ceiling)))
    if runs:
        text.append(f"; {numerics_label([r.numerics for r in runs], spec.fuse)}")
    if spec.precision != "float32":
        text.append(f", {spec.precision}")
    return text


def numerics_label(kinds: list[str], fuse: str) -> str:
    """How the runs were computed (their records' `numerics`): fused (an arm's seeds × lrs as one
    batched model: the same maths, float32 rounding differs), single, or how many of each."""
    fused = kinds.count("fused")
    if fused == 0:
        return "numerics: single" + (" (--fuse off)" if fuse == "off" else "")
    what = "fused (seeds × lrs batched)"
    return f"numerics: {what}" if fused == len(kinds) else f"numerics: {fused} of {len(kinds)} runs {what}"


def make_command(analysis: Analysis):
    """A Typer command function for `analysis`: its own options first, then the common ones."""
    options = analysis.options + COMMON + EXECUTION + OUTPUT

    def command(spec_path: Path, **values: Any) -> None:
        run_command(analysis, spec_path, values)

    params = [inspect.Parameter("spec_path", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=SpecArg)]
    params += [_parameter(o) for o in options]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = f"{analysis.help.rstrip()}\n\n{analysis.exit_codes}"  # the footer declared once
    command.__name__ = analysis.command.replace("-", "_")
    return command
