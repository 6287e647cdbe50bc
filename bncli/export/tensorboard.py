"""TensorBoard: one run per job (`<comparison>/<arm>/lr=<lr>/seed=<seed>` under the log dir), every
curve as scalars by step, the job's spec and its verdicts as text. From a saved result
(`bncli export tensorboard`) or while running (`--tensorboard DIR`: each run as it finishes)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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


def check_logdir(logdir: Path, names: Iterable[str], force: bool = False) -> None:
    """Refuse to mix two exports in one run folder (TensorBoard would show both as one run);
    `force` removes the earlier event files of those runs (nothing else)."""
    _writer_class()
    held = [logdir / n for n in names if any((logdir / n).glob(EVENTS_GLOB))]
    if held and not force:
        raise UsageError(f"--logdir: {held[0]} already holds TensorBoard events ({len(held)} run folder(s) "
                         "of this result); give a new --logdir, or --force to replace them")
    for d in held:
        for f in d.glob(EVENTS_GLOB):
            f.unlink()


def _spec_text(spec: dict[str, Any]) -> str:
    import yaml

    text = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
    return "\n".join("    " + line for line in text.splitlines())  # Markdown code block


def write_curves(logdir: Path, ref: RunRef) -> Path:
    """One run's scalars (every curve by step)."""
    path = logdir / ref.name
    w = _writer_class()(log_dir=str(path))
    try:
        for name, points in run_series(ref.record).items():
            for step, value in points:
                w.add_scalar(name, value, step)
    finally:
        w.close()
    return path


def write_texts(logdir: Path, ref: RunRef, result: CommandResult) -> None:
    """One run's spec and verdicts, as text (step 0)."""
    w = _writer_class()(log_dir=str(logdir / ref.name))
    try:
        w.add_text("spec", _spec_text(job_spec(result, ref.record)), 0)
        w.add_text("verdicts", verdict_markdown(claims_of_run(result, ref.record)), 0)
    finally:
        w.close()


def export_tensorboard(results: Sequence[tuple[str, CommandResult]], logdir: Path,
                       force: bool = False) -> list[Path]:
    """Write every job of `results` ((comparison, result) pairs); return the run folders."""
    refs = [(RunRef(name, res.command, r), res) for name, res in results for r in res.runs]
    check_logdir(logdir, [ref.name for ref, _ in refs], force)
    out = []
    for ref, res in refs:
        out.append(write_curves(logdir, ref))
        write_texts(logdir, ref, res)
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
