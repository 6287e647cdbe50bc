"""The Typer app: analysis subcommands come from the registry (bncli.analyses); validate here too."""

from __future__ import annotations

from typing import Annotated

import typer

from bncli import __version__
from bncli.analyses import ANALYSES
from bncli.commands.analysis import make_command
from bncli.commands.batch import batch
from bncli.commands.compare import compare
from bncli.commands.export import export
from bncli.commands.report import report
from bncli.commands.spec import spec
from bncli.commands.validate import validate

app = typer.Typer(
    name="bncli",
    help="Why does Batch Normalization work? Paired trainings with and without BN that test "
    "each claim (ICS, landscape smoothing, scale invariance, saturation) on MLPs, CNNs, VGG, "
    "ResNet or your own nn.Module, on synthetic data, your arrays, MNIST or CIFAR.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bncli {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """bncli: does BN reduce internal covariate shift, or smooth the landscape? Measure it."""


for _analysis in ANALYSES.values():
    app.command(_analysis.command)(make_command(_analysis))
app.command("batch")(batch)
app.command("validate")(validate)
app.command("report")(report)
app.command("spec")(spec)
app.command("compare")(compare)
app.add_typer(export, name="export")
