"""`bncli report`: report.md and report.html from a saved result folder, without training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from bncli.commands._common import guarded, stderr_console

DirArg = Annotated[Path, typer.Argument(help="A result folder: a subcommand's or a batch's --out (holding "
                                        "summary.json or batch.json).", show_default=False, metavar="DIR")]


def report(
    folder: DirArg,
    format: Annotated[Literal["md", "html", "both"], typer.Option(
        "--format", help="md: report.md + report_files/*.png; html: one self-contained report.html; "
        "both.")] = "both",
    figure_format: Annotated[Literal["png", "svg", "pdf"], typer.Option(
        "--figure-format", help="report_files/ as png (200 dpi), svg or pdf (report.html embeds png, or svg).")]
    = "png",
    figure_size: Annotated[Literal["page", "column"], typer.Option(
        "--figure-size", help="Figure width: page (about 7 in, two columns) or column (about 3.3 in).")] = "page",
    open_: Annotated[bool, typer.Option("--open", help="Open report.html in a web browser.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No notes on stderr.")] = False,
) -> None:
    """Write one readable report of saved results: the verdict grid (claims × comparison, learning
    rate and arm), each claim's figure drawn from the saved series, the numbers behind every verdict,
    the batch's expectations, and the provenance (versions, device, specs, seeds, wall time).

    report.md renders on GitHub (figures in report_files/); report.html is one file with its figures
    embedded: share it by mail or as a CI artifact, open it offline, print it. Nothing is trained.

    Exit codes: 0 written, 2 no such folder, no summary.json / batch.json in it, or a document of
    another schema_version.
    """
    with guarded():
        from bncli.render.report_write import write_report

        formats = ("md", "html") if format == "both" else (format,)
        written = write_report(folder, formats, figure_format=figure_format, figure_size=figure_size)
        if not quiet:
            figs = [p for p in written if p.suffix in (".png", ".svg", ".pdf")]
            stderr_console().print(f"wrote {', '.join(str(p) for p in written if p not in figs)}"
                                   f" ({len(figs)} figure files)")
        html_path = folder / "report.html"
        if open_ and html_path in written:
            import webbrowser

            webbrowser.open(html_path.resolve().as_uri())
