"""Writing a folder's report: report.md (+ report_files/) and report.html, from the model that
bncli.render.report builds and the text that bncli.render.report_text makes of it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bncli.errors import UsageError
from bncli.render.report import FILES_DIR, FORMATS, build_report


def write_report(folder: Path, formats: Sequence[str] = FORMATS, jobs: int | None = None,
                 figure_format: str = "png", figure_size: str = "page",
                 drawings: dict | None = None) -> list[Path]:
    """Write report.md (+ report_files/*.png|svg|pdf) and/or report.html (one self-contained file)
    into `folder`, from its summary.json or batch.json; return the paths written. `jobs`:
    processes drawing figures (default: one per core once there are several figures; 1: in this
    process). `figure_format`: the files' format (report.html embeds PNG, or SVG for svg);
    `figure_size`: page (about 7 in wide) or column (about 3.3 in). `drawings`: figures this
    process drew for the folder's result files just before (render.files keep=, keyed by
    report_figures.figure_key): taken instead of drawn again."""
    from bncli.io import atomic_write_bytes, atomic_write_text
    from bncli.render.figstyle import FORMATS as FIGURE_FORMATS
    from bncli.render.figstyle import WIDTHS
    from bncli.render.report_html import to_html
    from bncli.render.report_text import to_markdown

    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UsageError(f"report format {', '.join(bad) or '(none)'}: choose from {', '.join(FORMATS)}")
    if figure_format not in FIGURE_FORMATS or figure_size not in WIDTHS:
        raise UsageError(f"figure format {figure_format} / size {figure_size}: choose from "
                         f"{', '.join(FIGURE_FORMATS)} / {', '.join(WIDTHS)}")
    folder = Path(folder)
    # html alone embeds its figures: only md needs the files (and the figure format)
    report = build_report(folder, jobs, figure_format if "md" in formats else "png", figure_size, drawings)
    written: list[Path] = []
    if "md" in formats:
        from bncli.io import remove_file, remove_matching

        files = folder / FILES_DIR
        if files.is_symlink():  # never write into, nor delete in, a link's target
            remove_file(files)
        files.mkdir(exist_ok=True)
        for fmt in FIGURE_FORMATS:  # figures of an earlier report of this folder
            remove_matching(files, f"*.{fmt}")
        for sec in report.sections:
            for _, fig, _ in sec.items:
                if fig is not None and fig.data is not None:
                    atomic_write_bytes(files / fig.filename, fig.data)
                    written.append(files / fig.filename)
        if report.regime_png is not None:
            from bncli.render.regimes import FILENAME

            atomic_write_bytes(files / FILENAME, report.regime_png)
            written.append(files / FILENAME)
        atomic_write_text(folder / "report.md", to_markdown(report))
        written.append(folder / "report.md")
    if "html" in formats:
        atomic_write_text(folder / "report.html", to_html(report))
        written.append(folder / "report.html")
    return written
