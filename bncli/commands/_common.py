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
    detail: bool = False  # every per-layer / per-phase table and each verdict's notes
    force: bool = False  # --out may replace the results already in the folder
    report: bool = True  # with --out, also write report.md and report.html (bncli report)
    figure_format: str = "png"  # plots/ and report_files/: png | svg | pdf
    figure_size: str = "page"  # page (two columns, ~7 in) | column (~3.3 in)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def stdout_console() -> Console:
    """Tables on stdout; redirected to a file or pipe (no COLUMNS set) they get 160 columns, not
    Rich's default 80, so saved reports keep every column readable."""
    width = None
    if sys.stdout is None:  # stdout closed by the caller: print nowhere rather than crash
        return Console(file=open(os.devnull, "w"), highlight=False)  # noqa: SIM115
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        width = 160
    return Console(highlight=False, width=width)


_LONG_WORD = 300  # a "word" longer than this in an error (a 100,000-digit seed) is cut


def _error_line(message: str) -> None:
    """One red 'error:' line on stderr; the message itself is printed literally (no markup), and
    a value pasted into it that is longer than any name is cut to its start and its length."""
    import re

    text = " ".join(message.split("\n"))
    text = re.sub(rf"\S{{{_LONG_WORD + 1},}}", lambda m: f"{m.group()[:80]}... ({len(m.group()):,} characters)",
                  text)
    line = Text("error: ", style="bold red")
    line.append(text)
    stderr_console().print(line, soft_wrap=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (timeout, Slurm, Kubernetes, docker stop, a closed terminal): handled like
    Ctrl-C — finished runs are reported and written — but the exit code says which signal."""


_SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}
_received: list[str] = []


def interrupt_exit_code() -> int:
    """130 after Ctrl-C, 143 after SIGTERM, 129 after SIGHUP."""
    return _SIGNAL_EXIT.get(_received[0], 130) if _received else 130


def _on_signal(signum: int, _frame: Any) -> None:
    import signal

    name = signal.Signals(signum).name
    first = not _received
    _received.append(name)
    if first:  # a second signal while results are written must not lose them
        raise Terminated(name)


@contextmanager
def _signals() -> Iterator[None]:
    """SIGTERM and SIGHUP handled like Ctrl-C while a command runs; on the way out every handler of
    SIGINT, SIGTERM and SIGHUP is put back as it was, including ones a library changed meanwhile
    (ray.init installs its own): a caller in Python or Jupyter keeps its Ctrl-C."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received.clear()
    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    saved = {sig: signal.getsignal(sig) for sig in [signal.SIGINT, *wanted]}
    for sig in wanted:
        signal.signal(sig, _on_signal)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:  # None: set outside Python; it can't be put back
                signal.signal(sig, handler)


@contextmanager
def guarded(spec_path: Path | None = None) -> Iterator[None]:
    """The one exit point: BncliError -> one red line on stderr and its exit code, no traceback.

    Errors about the spec, its data or its device that don't already name the spec file get it
    as a prefix, so every message says which file (and field) is wrong. SIGTERM and SIGHUP are
    handled like Ctrl-C (finished runs kept), with exit codes 143 and 129.
    """
    import warnings

    try:
        with _signals(), warnings.catch_warnings():
            # library warnings (numpy, matplotlib, torch) are not the user's business on stderr
            warnings.simplefilter("ignore")
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
    except KeyboardInterrupt as exc:
        if not _received and not isinstance(exc, Terminated):
            _received.append("SIGINT")
        stderr_console().print(f"interrupted ({_received[0] if _received else 'SIGINT'})", style="yellow")
        raise typer.Exit(interrupt_exit_code()) from None
    except BrokenPipeError:  # stdout closed (`bncli ... | head`): nothing more can be said there
        raise typer.Exit(1) from None
    except Exception as exc:  # a bug, or torch failing mid-run: still one line
        if debug_enabled():
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        _error_line(f"run failed: {type(exc).__name__}: {first} (set BNCLI_DEBUG=1 for the traceback)")
        raise typer.Exit(1) from None


def debug_enabled() -> bool:
    """BNCLI_DEBUG=1 (or true/yes/on) shows tracebacks; 0, false, no, off or empty do not."""
    return os.environ.get("BNCLI_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off")


def load(spec_path: Path, opts: OutputOptions, overrides: dict[str, Any] | None = None, check_out: bool = True,
         command: str | None = None):
    """Load the spec and apply command-line overrides (validated like the file); with `command`
    (an analysis subcommand), check that the arms give it something to compare."""
    from bncli.spec import apply_overrides, load_spec
    from bncli.spec_checks import check_user_spec

    spec = load_spec(spec_path)
    overrides = overrides or {}
    source = str(spec_path)
    if any(v is not None for v in overrides.values()):
        source = f"{spec_path} (with command-line options)"
        spec = apply_overrides(spec, overrides, source=source)
    check_user_spec(spec, source, [command] if command is not None else [])
    if opts.out is not None and check_out:  # fail before training, not after
        check_out_folder(opts.out, force=opts.force)
    return spec


def out_lock(out: Path | None):
    """Hold --out while a command writes into it: a second bncli command (a batch or a single
    subcommand) into the same folder exits 2 at once instead of mixing its files in."""
    import contextlib

    from bncli.io import FolderLock

    if out is None:
        return contextlib.nullcontext()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out: cannot write to folder {out}: {exc.strerror or exc}") from None
    return FolderLock(out)


# what bncli writes into an --out folder: a subcommand's files, a batch's, a report's
_RESULT_FILES = ("summary.json", "spec.yaml", "history.csv", "batch.json", "report.md", "report.html")
_FIGURES = ("*.png", "*.svg", "*.pdf")
_RESULT_DIRS = {"plots": (*_FIGURES, "captions.md"), "report_files": _FIGURES, "jobs": ("*.json",)}


def held_results(out: Path) -> str | None:
    """What earlier results `out` holds, in words ("results of `bncli train`", "a batch's
    results"), or None when it holds none (missing, empty, or only other files)."""
    from bncli.io import MAX_DOCUMENT_BYTES, read_bounded

    if (out / "batch.json").is_file() or (out / "jobs").is_dir():
        return "a batch's results (batch.json, jobs/)"
    summary = out / "summary.json"
    if summary.is_file():
        try:
            command = json.loads(read_bounded(summary, MAX_DOCUMENT_BYTES)).get("command")
        except (OSError, ValueError, AttributeError, RecursionError):
            command = None
        return f"results of `bncli {command}`" if isinstance(command, str) else "earlier results (summary.json)"
    return None


def _clear_results(out: Path) -> None:
    """Remove what bncli wrote into `out` before (and a batch's comparison folders), so that
    nothing stale stays beside the new results; files bncli did not write are left alone.
    Nothing outside `out` is touched and no symbolic link is followed: a link named like a
    result (plots, jobs, a comparison folder) is removed as a link, never its target's files."""
    from bncli.io import is_real_dir, remove_empty_dir, remove_file, remove_matching

    for folder in _result_folders(out):
        for name in _RESULT_FILES:
            remove_file(folder / name)
        for sub, patterns in _RESULT_DIRS.items():
            d = folder / sub
            if d.is_symlink():
                remove_file(d)  # the link itself, not what it points at
            elif is_real_dir(d):
                for pattern in patterns:
                    remove_matching(d, pattern)
                remove_empty_dir(d)
        while folder != out and remove_empty_dir(folder):  # an emptied comparison folder (and parent)
            folder = folder.parent


def _result_folders(out: Path) -> list[Path]:
    """The folders _clear_results clears: each comparison folder batch.json names (real folders
    inside `out` only: a hand-edited path or one through a link must not reach out) and `out`."""
    from bncli.io import MAX_DOCUMENT_BYTES, is_inside, read_bounded

    folders: list[Path] = []
    try:
        doc = json.loads(read_bounded(out / "batch.json", MAX_DOCUMENT_BYTES))
        for c in doc.get("comparisons", []):
            if isinstance(c, dict) and isinstance(c.get("path"), str) and c["path"]:
                folders.append(out / c["path"])
    except (OSError, ValueError, AttributeError, RecursionError):
        pass
    return [f for f in [*folders, out] if is_inside(out, f) and (f == out or _real_path_under(out, f))]


def _real_path_under(out: Path, folder: Path) -> bool:
    """Every component of `folder` below `out` is a real folder (no link on the way)."""
    p = folder
    while p != out and p != p.parent:
        if p.is_symlink():
            return False
        p = p.parent
    return p == out


# the folders bncli writes into below --out (and below each comparison folder of a batch)
_WRITTEN_DIRS = ("plots", "report_files", "jobs")


def check_no_links(out: Path, folders: Sequence[Path | str] = (), force: bool = False) -> None:
    """Refuse, before anything is deleted or trained, a folder bncli would write into below `out`
    (plots/, report_files/, jobs/, a batch's comparison folders and theirs) that is a symbolic
    link or a file: writing through a planted link would write or overwrite files elsewhere.
    With `force`, a link that clearing the earlier results removes (as a link) is allowed."""
    from bncli.io import link_below

    removed = frozenset(f / sub for f in _result_folders(out) for sub in _RESULT_DIRS) if force else frozenset()
    for rel in [Path(), *(Path(f) for f in folders)]:
        for sub in ("", *_WRITTEN_DIRS):
            bad = link_below(out, out / rel / sub, removed)
            if bad is not None:
                what = "a symbolic link" if bad.is_symlink() else "not a folder"
                raise UsageError(f"--out: {bad} is {what}; bncli writes only into real folders inside {out}: "
                                 "remove it, or give another --out")


def check_out_folder(out: Path, force: bool = False, resume: bool = False,
                     folders: Sequence[Path | str] = ()) -> None:
    """Make --out and prove it writable now (a read-only file system is found before training).

    A folder that already holds results (a summary.json, a batch.json or a batch's jobs/) is
    refused: a second command would overwrite some files and leave the first one's plots beside
    its own. `force` removes the earlier results first; `resume` (a batch continuing its own
    jobs) keeps them. A folder bncli writes into that is a link (`folders`: a batch's comparison
    folders, relative to `out`) is refused first, before anything is removed.
    """
    import tempfile

    if out.is_dir():
        check_no_links(out, folders, force=force and held_results(out) is not None)
    held = held_results(out) if out.is_dir() else None
    if held is not None and resume and force:
        raise UsageError("--resume keeps the stored jobs and --force removes them: give one of them")
    if held is not None and not (resume and held.startswith("a batch")):
        if not force:
            raise UsageError(
                f"--out: {out} already holds {held}; give a new folder, or --force to replace them"
                + (" (bncli batch --resume continues a batch)" if "batch" in held else "")
            )
        try:
            _clear_results(out)
        except OSError as exc:
            raise UsageError(f"--out: cannot remove the earlier results in {out}: {exc.strerror or exc}") from None
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".bncli-write-check."):
            pass
    except OSError as exc:
        raise UsageError(f"--out: cannot write to folder {out}: {exc.strerror or exc}") from None


def reporter(opts: OutputOptions):
    """A progress bar on stderr, shown only on a terminal and without --quiet/--json piping."""
    from bncli.render.progress import RichReporter

    console = Console(stderr=True)
    enabled = not opts.quiet and console.is_terminal
    return RichReporter(console, enabled)


@contextmanager
def progress_callback(quiet: bool, what: str, unit: str) -> Iterator[Any]:
    """A progress display on stderr for work that is not training (an export's points, a dry
    run's cells), shown only on a terminal and without --quiet. Yields `update(total=N)` (the
    outer count), `update(total_points=N)` (a new inner bar), `update(advance=n)` (the inner bar)
    and `update(run_done=1)` (the outer one)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, transient=True,
                        disable=quiet or not console.is_terminal)
    tasks: dict[str, Any] = {}

    def update(total: int | None = None, total_points: int | None = None, advance: int = 0,
               run_done: int = 0) -> None:
        if total is not None:
            tasks["outer"] = progress.add_task(what, total=total)
        if total_points is not None:
            if "inner" in tasks:
                progress.remove_task(tasks["inner"])
            tasks["inner"] = progress.add_task(f"  {unit}", total=total_points)
        if advance and "inner" in tasks:
            progress.advance(tasks["inner"], advance)
        if run_done and "outer" in tasks:
            progress.advance(tasks["outer"], run_done)

    with progress:
        yield update


def print_renderables(renderables: Sequence[RenderableType | str]) -> None:
    """Print on stdout, each table as wide as the console allows: a table too wide even with every
    cell wrapped at its spaces leaves columns out (bncli.render.fit), so that no row is
    split and no number cut in two ("6.33e+0⏎0") or to "6.3…". A table's caption is printed
    under it at the console's width (not the table's), as are texts."""
    from rich.console import Group

    from bncli.render.fit import fit

    out = stdout_console()
    flat: list[RenderableType | str] = []
    for r in renderables:  # a group of tables (claims + legend + evidence) is fitted table by table
        flat.extend(r.renderables if isinstance(r, Group) else [r])
    for i, r in enumerate(flat):
        if i and isinstance(r, Table):
            out.print()  # compact tables have no frame: a blank line keeps them apart
        for part in fit(r, out) if isinstance(r, Table) else [r]:
            caption = None
            if isinstance(part, Table):
                for col in part.columns:  # a word longer than its column still shows whole
                    col.overflow = "fold"
                caption, part.caption = part.caption, None
            out.print(part)
            if caption:
                out.print(caption if isinstance(caption, Text) else Text.from_markup(str(caption), style="dim"))


def write_json(doc: Any) -> None:
    """One JSON document on stdout: indented for a person at a terminal, one compact line for a
    pipe or file (what `jq` and `json.loads` read)."""
    tty = sys.stdout is not None and sys.stdout.isatty()
    sys.stdout.write(json.dumps(doc, allow_nan=False, indent=2 if tty else None) + "\n")
    sys.stdout.flush()


def command_line() -> str:
    """The command as the user typed it (for the results' provenance)."""
    import shlex

    return shlex.join(["bncli", *sys.argv[1:]])


def finish(
    result: Any,
    renderables: Sequence[RenderableType | str],
    opts: OutputOptions,
) -> None:
    """The one output step: tables or JSON on stdout, files under --out, exit 130 if interrupted."""
    doc = result.to_json()
    if opts.json:
        write_json(doc)
    else:
        print_renderables(renderables)
    if opts.out is not None:
        from bncli.render.files import write_result_files

        drawn: dict = {}  # the report takes the claim figures the plots/ folder just got
        written = write_result_files(result, opts.out, figure_format=opts.figure_format,
                                     figure_size=opts.figure_size, keep=drawn)
        if opts.report:
            from bncli.render.report_write import write_report

            written += write_report(opts.out, figure_format=opts.figure_format, figure_size=opts.figure_size,
                                    drawings=drawn)
        if not opts.quiet:
            stderr_console().print(f"wrote {len(written)} files to {opts.out}/")
    if result.interrupted:
        stderr_console().print("[yellow]interrupted: results above cover the finished runs only[/yellow]")
        raise typer.Exit(interrupt_exit_code())
