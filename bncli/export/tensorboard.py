"""TensorBoard: one run per job (`<comparison>/<arm>/lr=<lr>/seed=<seed>` under the log dir), every
curve as scalars by step, the job's spec and its verdicts as text. From a saved result
(`bncli export tensorboard`) or while running (`--tensorboard DIR`: each run as it finishes)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bncli.errors import ExtraMissingError, UsageError
from bncli.export.series import RunRef, claims_of_run, job_spec, run_series, verdict_markdown
from bncli.results import CommandResult, RunRecord

EVENTS_GLOB = "events.out.tfevents.*"


def _writer_class() -> Any:
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ExtraMissingError("TensorBoard export needs the tensorboard package: "
                                "pip install 'bncli[tensorboard]'") from None
    return SummaryWriter


NAME_MAX = 255  # bytes in one file name on every common file system


def run_dir(logdir: Path, name: str) -> Path:
    """The run folder of `name` (`<comparison>/<arm>/lr=<lr>/seed=<seed>`) under `logdir`: every
    part made a plain name (no `..`, no absolute path, no backslash or NUL: the spec's name, an arm
    or a tampered summary.json cannot lead outside), inside `logdir` and not through a link."""
    from bncli.io import is_inside, link_below

    parts = []
    for part in str(name).split("/"):
        part = part.replace("\\", "_").replace("\x00", "_")
        if part in ("", "."):
            continue
        if part == "..":
            part = "__"
        if len(part.encode("utf-8", "surrogatepass")) > NAME_MAX:
            raise UsageError(f"--logdir: the run name {part[:40]!r}... is longer than {NAME_MAX} bytes (a file "
                             "name's limit): shorten the spec's (or the comparison's) name")
        parts.append(part)
    path = Path(logdir).joinpath(*parts or ["_"])
    bad = link_below(logdir, path)
    if bad is not None or not is_inside(logdir, path):
        raise UsageError(f"--logdir: {bad or path} is a symbolic link or a file; TensorBoard runs are written "
                         f"only into real folders inside {logdir}")
    return path


def _check_writable(logdir: Path) -> None:
    import tempfile

    try:
        logdir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=logdir, prefix=".bncli-write-check."):
            pass
    except OSError as exc:
        raise UsageError(f"--logdir: cannot write to folder {logdir}: {exc.strerror or exc}") from None


def check_logdir(logdir: Path, names: Iterable[str], force: bool = False) -> None:
    """Refuse to mix two exports in one run folder (TensorBoard would show both as one run);
    `force` removes the earlier event files of those runs (nothing else, and nothing outside
    `logdir`). A log dir that can't be written (a file, read-only, /proc) is refused now."""
    from bncli.io import remove_file

    _writer_class()
    logdir = Path(logdir)
    if logdir.exists() and not logdir.is_dir():
        raise UsageError(f"--logdir: {logdir} is not a folder")
    dirs = [run_dir(logdir, n) for n in names]  # every name checked before anything is written
    _check_writable(logdir)
    held = [d for d in dirs if d.is_dir() and any(d.glob(EVENTS_GLOB))]
    if held and not force:
        raise UsageError(f"--logdir: {held[0]} already holds TensorBoard events ({len(held)} run folder(s) "
                         "of this result); give a new --logdir, or --force to replace them")
    for d in held:
        for f in d.glob(EVENTS_GLOB):
            remove_file(f)  # a regular file, or a link as a link: never what it points to


@contextmanager
def _writing(logdir: Path) -> Iterator[None]:
    """TensorBoard writes from a thread: a full disk there would print a thread's traceback and
    fail later. Its error is kept (not printed) and, like one here, becomes one line, exit 2."""
    import threading

    failed: list[BaseException] = []
    before = threading.excepthook

    def hook(args: Any) -> None:
        if isinstance(args.exc_value, OSError):
            failed.append(args.exc_value)
        else:
            before(args)

    threading.excepthook = hook
    try:
        yield
    except OSError as exc:
        failed.append(exc)
    finally:
        threading.excepthook = before
    if failed:
        exc = failed[0]
        raise UsageError(f"--logdir: cannot write TensorBoard events to {logdir}: "
                         f"{getattr(exc, 'strerror', None) or exc}") from None


def _spec_text(spec: dict[str, Any]) -> str:
    import yaml

    text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
    return "\n".join("    " + line for line in text.splitlines())  # Markdown code block


def write_curves(logdir: Path, ref: RunRef, progress: Any = None,
                 series: dict[str, list[tuple[int, float]]] | None = None) -> Path:
    """One run's scalars (every curve by step); `progress(n)` after every n points written."""
    path = run_dir(logdir, ref.name)
    with _writing(logdir):
        w = _writer_class()(log_dir=str(path))
        try:
            n = 0
            for name, points in (run_series(ref.record) if series is None else series).items():
                for step, value in points:
                    w.add_scalar(name, value, step)
                    n += 1
                    if progress is not None and n % 10_000 == 0:
                        progress(10_000)
            if progress is not None:
                progress(n % 10_000)
        finally:
            w.close()
    return path


def write_texts(logdir: Path, ref: RunRef, result: CommandResult) -> None:
    """One run's spec and verdicts, as text (step 0)."""
    with _writing(logdir):
        w = _writer_class()(log_dir=str(run_dir(logdir, ref.name)))
        try:
            w.add_text("spec", _spec_text(job_spec(result, ref.record)), 0)
            w.add_text("verdicts", verdict_markdown(claims_of_run(result, ref.record)), 0)
        finally:
            w.close()


def export_tensorboard(results: Sequence[tuple[str, CommandResult]], logdir: Path,
                       force: bool = False, progress: Any = None) -> list[Path]:
    """Write every job of `results` ((comparison, result) pairs); return the run folders.
    `progress(total=...)` once, then `progress(advance=n)` as points are written (a long run
    has millions)."""
    refs = [(RunRef(name, res.command, r), res) for name, res in results for r in res.runs]
    check_logdir(logdir, [ref.name for ref, _ in refs], force)
    if progress is not None:
        progress(total=len(refs))
    out = []
    for ref, res in refs:
        series = run_series(ref.record)
        if progress is not None:
            progress(total_points=sum(len(v) for v in series.values()))
        out.append(write_curves(logdir, ref, (lambda n: progress(advance=n)) if progress else None, series))
        write_texts(logdir, ref, res)
        if progress is not None:
            progress(run_done=1)
    return out


class LiveTensorBoard:
    """`--tensorboard DIR` while running: a run's curves as soon as it finishes, the specs and
    verdicts once the command is judged. `names` maps a job key to the comparisons it belongs to."""

    def __init__(self, logdir: Path, names: dict[str, list[tuple[str, str]]], force: bool = False) -> None:
        self.logdir = Path(logdir)
        self.names = names
        self.written: set[str] = set()
        _writer_class()

    @classmethod
    def for_jobs(cls, logdir: Path, groups: Iterable[tuple[str, str, Sequence[Any]]]) -> LiveTensorBoard:
        """From (comparison, command, jobs) groups; refuses a log dir whose run folders hold events."""
        names: dict[str, list[tuple[str, str]]] = {}
        runs = []
        for comparison, command, jobs in groups:
            for j in jobs:
                names.setdefault(j.key, []).append((comparison, command))
                runs.append(f"{comparison}/{j.arm}/lr={j.lr:g}/seed={j.seed}")
        check_logdir(Path(logdir), runs)
        return cls(Path(logdir), names)

    def job_done(self, res: Any) -> None:
        rec: RunRecord | None = res.record
        if rec is None:
            return
        for comparison, command in self.names.get(res.job.key, []):
            ref = RunRef(comparison, command, rec)
            if ref.name not in self.written:
                write_curves(self.logdir, ref)
                self.written.add(ref.name)

    def finish(self, results: Sequence[tuple[str, CommandResult]]) -> None:
        for name, res in results:
            for r in res.runs:
                ref = RunRef(name, res.command, r)
                if ref.name not in self.written:  # a run reused from the store (--resume)
                    write_curves(self.logdir, ref)
                    self.written.add(ref.name)
                write_texts(self.logdir, ref, res)


def live_for_spec(logdir: Path, spec: Any, command: str) -> tuple[str, LiveTensorBoard]:
    """(comparison name, live writer) for one subcommand's plan of `spec`."""
    from bncli.analyses import BY_COMMAND
    from bncli.plan import plan

    name = f"{spec.name}/{command}"
    return name, LiveTensorBoard.for_jobs(Path(logdir), [(name, command, plan(spec, BY_COMMAND[command].name))])


def live_for_batch(logdir: Path, cells: Sequence[Any]) -> LiveTensorBoard:
    """The live writer for a batch: every cell x command named `<comparison>/<command>`."""
    from bncli.batch.run import entries_of

    return LiveTensorBoard.for_jobs(Path(logdir), [(f"{e.cell.name}/{e.command}", e.command, e.jobs)
                                                   for e in entries_of(list(cells))])
