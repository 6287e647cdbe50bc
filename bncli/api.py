"""The Python API, for notebooks and scripts: `bncli.run(command, spec, **overrides)` trains like
the command line does and returns the result; `bncli.load(path)` reads a saved one back.

    import bncli
    res = bncli.run("train", "sample_configs/mlp_sigmoid_digits.yaml", steps=300, seeds=2, lr=[0.5, 2.0])
    res                      # in Jupyter: the verdict grid
    res.to_pandas()          # every curve, long format: run, arm, lr, seed, step, metric, value
    res                      # in a terminal: what ran and one row per claim (20 lines at most)
    res.claims_frame()       # one row per claim x lr x arm: verdict, leaning, effect, CI, beyond, p_adj
    res.metrics_frame()      # one row per claim x metric: every number behind the verdicts

Ctrl-C (a notebook's interrupt) stops the run and returns the finished runs (`res.interrupted`);
no signal handler is installed, so the kernel's own stay in place."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from bncli.errors import UsageError
from bncli.results import CommandResult
from bncli.saved import BatchResult


@dataclass(frozen=True)
class Result(CommandResult):
    """A CommandResult with what a notebook wants: to_pandas(), claims_frame() and the verdict
    grid as its HTML view (what bncli.run and bncli.load return)."""

    @classmethod
    def of(cls, result: CommandResult) -> Result:
        return result if isinstance(result, cls) else cls(**{f.name: getattr(result, f.name) for f in fields(result)})

    def to_pandas(self) -> Any:
        """Every curve of every run, long format: run, arm, lr, seed, step, metric, value (the
        training curves and each probe's per-step series). Needs pandas (bncli[pandas])."""
        from bncli.frames import result_frame

        return result_frame(self)

    def claims_frame(self) -> Any:
        """One row per claim x lr x arm: claim, lr, arm, baseline, verdict, leaning, effect, ci_low,
        ci_high, beyond, p_adj (bncli.frames.CLAIM_COLUMNS says what each is: the deciding metric's
        effect and interval, its seeds beyond the margin as "k/n", the claim's adjusted p)."""
        from bncli.frames import claims_frame

        return claims_frame(self)

    def metrics_frame(self) -> Any:
        """One row per claim x metric: every number behind each verdict (both centres, the effect
        and its interval, seeds beyond the margin, the metric's adjusted p, the way it points)."""
        from bncli.frames import metrics_frame

        return metrics_frame(self)

    def __repr__(self) -> str:
        """At most 20 lines: what ran and one row per claim (the rest: claims_frame(), to_json())."""
        from bncli.render.repr_text import result_repr

        return result_repr(self)

    def _repr_html_(self) -> str:
        """Jupyter shows a result as its verdict grid."""
        from bncli.frames import verdict_grid_html

        return verdict_grid_html(self)

# keyword arguments of run() that are not spec overrides (named like the command-line options)
_OUTPUT = ("out", "force", "report", "figure_format", "figure_size", "tensorboard", "backend", "address",
           "progress", "allow_code")
_CHOICES = {"backend": ("local", "ray"), "figure_format": ("png", "svg", "pdf"), "figure_size": ("page", "column")}


def _spec(spec_or_path: Any) -> Any:
    from bncli.spec import Spec, load_spec, parse_spec

    if isinstance(spec_or_path, Spec):
        return spec_or_path
    if isinstance(spec_or_path, dict):
        return parse_spec(spec_or_path, "spec")
    return load_spec(Path(spec_or_path))


def _is_float(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return not isinstance(v, bool)


def _as_option(name: str, value: Any) -> Any:
    """A Python value as the command line would give it: lr=0.1 -> [0.1], arms=[...] -> 'a,b'."""
    if value is None:
        return None
    if name == "lr":
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        bad = [v for v in values if not _is_float(v)]
        if bad:
            raise UsageError(f"bncli.run: lr={bad[0]!r}: not a number (lr=0.1 or lr=[0.1, 0.5])")
        return [float(v) for v in values]
    if name == "arms" and isinstance(value, (list, tuple)):
        return ",".join(value)
    if name == "threads":
        return str(value)
    if name == "eta_range" and isinstance(value, (list, tuple)):
        return tuple(value)
    return value


def run(command: str, spec_or_path: Any, **overrides: Any) -> Result:
    """Run one analysis subcommand ("train", "measure-ics", "lipschitz", "scale-check",
    "saturation") on a spec (a YAML path, a dict or a Spec) and return its result (a
    CommandResult with to_pandas(), claims_frame() and an HTML view).

    Overrides are named as the command-line options: steps=, lr= (a number or a list), seeds=,
    seed=, device=, arms= ("plain,batchnorm" or a list), batch_size=, threads=, and the
    subcommand's own (every=, layers=, hessian=, alpha=, ...); out= (a folder: summary.json,
    plots, report), force=, figure_format=, figure_size=, tensorboard= (a log folder),
    backend= ("local" | "ray"), address=, progress= (a progress bar on stderr), allow_code=True
    (a spec's model.factory module may be imported and run; as --allow-code). Errors are
    BncliError subclasses (bad spec or option: SpecError / UsageError)."""
    from bncli.plugins import load_plugins

    # BNCLI_PLUGINS / entry points, with allow_code=True or BNCLI_ALLOW_CODE=1 (a UsageError without)
    load_plugins(allow=True if overrides.get("allow_code") else None)
    from bncli.analyses import BY_COMMAND
    from bncli.commands.analysis import COMMON

    a = BY_COMMAND.get(command)
    if a is None:
        raise UsageError(f"bncli.run: unknown command {command!r}: choose from {', '.join(BY_COMMAND)}"
                         " (a batch: run it with `bncli batch`, read it with bncli.load)")
    options = a.options + COMMON
    known = {o.param for o in options}
    bad = sorted(set(overrides) - known - set(_OUTPUT))
    if bad:
        raise UsageError(f"bncli.run({command!r}): unknown option(s) {', '.join(bad)}; options: "
                         f"{', '.join(sorted(known | set(_OUTPUT)))}")
    for k, choices in _CHOICES.items():
        if k in overrides and overrides[k] not in choices:
            raise UsageError(f"bncli.run: {k}={overrides[k]!r}: choose from {', '.join(choices)}")
    values = {k: _as_option(k, v) for k, v in overrides.items() if k in known}
    from bncli.models.module import code_consent

    with code_consent(bool(overrides.get("allow_code"))):
        return _run(a, options, values, spec_or_path, overrides)


def _run(a: Any, options: Any, values: dict[str, Any], spec_or_path: Any, overrides: dict[str, Any]) -> Result:
    from bncli.commands.analysis import spec_overrides
    from bncli.spec import apply_overrides

    command = a.command
    spec = _spec(spec_or_path)
    ov = spec_overrides(options, values)
    if any(v is not None for v in ov.values()):
        spec = apply_overrides(spec, ov, source=f"bncli.run({command!r}) overrides")
    out = overrides.get("out")
    from bncli.commands._common import check_out_folder, out_lock

    with out_lock(Path(out) if out is not None else None):  # as the command line: one writer per folder
        if out is not None:
            check_out_folder(Path(out), force=bool(overrides.get("force")))
        return _execute(a, spec, Path(out) if out is not None else None, overrides)


def _execute(a: Any, spec: Any, out: Path | None, kw: dict[str, Any]) -> Result:
    import dataclasses
    from contextlib import nullcontext

    from bncli.executors import make_executor
    from bncli.pipeline import run_analysis

    threads = spec.threads if isinstance(spec.threads, int) else None
    executor = make_executor(kw.get("backend", "local"), 1, kw.get("address"), threads=threads)
    live, name = None, ""
    if kw.get("tensorboard") is not None:
        from bncli.export.tensorboard import live_for_spec

        name, live = live_for_spec(Path(kw["tensorboard"]), spec, a.command)
    rep_cm: Any = nullcontext(None)
    if kw.get("progress"):
        from rich.console import Console

        from bncli.render.progress import RichReporter

        rep_cm = RichReporter(Console(stderr=True), True)
    with rep_cm as rep:
        result = run_analysis(spec, a, rep, executor, on_job=live.job_done if live else None)
    result = Result.of(dataclasses.replace(result, command_line=f"bncli.run({a.command!r}, ...)"))
    if live is not None:
        live.finish([(name, result)])
    if out is not None:
        from bncli.render.files import write_result_files

        fmt, size = kw.get("figure_format", "png"), kw.get("figure_size", "page")
        drawn: dict = {}  # the report takes the claim figures the plots/ folder just got
        write_result_files(result, out, figure_format=fmt, figure_size=size, keep=drawn)
        if kw.get("report", True):
            from bncli.render.report_write import write_report

            write_report(out, figure_format=fmt, figure_size=size, drawings=drawn)
    return result


def load(path: str | Path) -> Result | BatchResult:
    """A saved result: a folder (a subcommand's or a batch's --out) or a JSON document
    (summary.json, batch.json, or `--json` output saved to a file)."""
    from bncli.saved import load_result

    loaded = load_result(path)
    return Result.of(loaded) if isinstance(loaded, CommandResult) else loaded
