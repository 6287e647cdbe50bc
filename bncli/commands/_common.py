"""The spec argument, the one error exit point, the progress reporter and the one output step."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from bncli.errors import BncliError, DataError, DeviceError, SpecError, UsageError

SpecArg = Annotated[
    Path,
    typer.Argument(
        help="YAML spec of the model, data, arms and training.", show_default=False, metavar="SPEC.yaml"
    ),
]


@dataclass
class OutputOptions:
    """Where results go: --json on stdout, files under --out, chatter on stderr unless --quiet."""

    json: bool = False
    out: Path | None = None
    quiet: bool = False


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def stdout_console() -> Console:
    """Tables on stdout; redirected to a file or pipe (no COLUMNS set) they get 160 columns, not
    Rich's default 80, so saved reports keep every column readable."""
    width = None
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        width = 160
    return Console(highlight=False, width=width)


def _error_line(message: str) -> None:
    """One red 'error:' line on stderr; the message itself is printed literally (no markup)."""
    line = Text("error: ", style="bold red")
    line.append(" ".join(message.split("\n")))
    stderr_console().print(line, soft_wrap=True)


@contextmanager
def guarded(spec_path: Path | None = None) -> Iterator[None]:
    """The one exit point: BncliError -> one red line on stderr and its exit code, no traceback.

    Errors about the spec, its data or its device that don't already name the spec file get it
    as a prefix, so every message says which file (and field) is wrong.
    """
    try:
        yield
    except typer.Exit:
        raise
    except BncliError as exc:
        msg = str(exc)
        if spec_path is not None and isinstance(exc, (SpecError, DataError, DeviceError)):
            if not msg.startswith(str(spec_path)):
                msg = f"{spec_path}: {msg}"
        _error_line(msg)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        stderr_console().print("interrupted", style="yellow")
        raise typer.Exit(130) from None
    except Exception as exc:  # a bug, or torch failing mid-run: still one line
        if os.environ.get("BNCLI_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        _error_line(f"run failed: {type(exc).__name__}: {first} (set BNCLI_DEBUG=1 for the traceback)")
        raise typer.Exit(1) from None


def load(spec_path: Path, opts: OutputOptions, overrides: dict[str, Any] | None = None):
    """Load the spec and apply command-line overrides (validated like the file)."""
    from bncli.spec import apply_overrides, load_spec

    spec = load_spec(spec_path)
    overrides = overrides or {}
    if any(v is not None for v in overrides.values()):
        spec = apply_overrides(spec, overrides, source=f"{spec_path} (with command-line options)")
    if opts.out is not None:  # fail before training, not after
        try:
            opts.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--out: cannot create folder {opts.out}: {exc.strerror or exc}") from None
    return spec


def reporter(opts: OutputOptions):
    """A progress bar on stderr, shown only on a terminal and without --quiet/--json piping."""
    from bncli.render.progress import RichReporter

    console = Console(stderr=True)
    enabled = not opts.quiet and console.is_terminal
    return RichReporter(console, enabled)


def finish(
    result: Any,
    renderables: Sequence[RenderableType | str],
    opts: OutputOptions,
) -> None:
    """The one output step: tables or JSON on stdout, files under --out, exit 130 if interrupted."""
    doc = result.to_json()
    if opts.json:
        sys.stdout.write(json.dumps(doc, allow_nan=False) + "\n")
        sys.stdout.flush()
    else:
        out = stdout_console()
        for r in renderables:
            if isinstance(r, Table):
                # narrow terminals: wrap long cells instead of cutting numbers to "6.3…"
                for col in r.columns:
                    col.overflow = "fold"
            out.print(r)
    if opts.out is not None:
        from bncli.render.files import write_result_files

        written = write_result_files(result, opts.out)
        if not opts.quiet:
            stderr_console().print(f"wrote {len(written)} files to {opts.out}/")
    if result.interrupted:
        stderr_console().print("[yellow]interrupted: results above cover the finished runs only[/yellow]")
        raise typer.Exit(130)
