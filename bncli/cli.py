"""The Typer app: each subcommand lives in bncli/commands/<name>.py and is registered here."""

from __future__ import annotations

from typing import Annotated

import typer

from bncli import __version__
from bncli.commands.train import train
from bncli.commands.validate import validate

app = typer.Typer(
    name="bncli",
    help="Why does Batch Normalization work? Paired trainings with and without BN that test "
    "each claim (ICS, landscape smoothing, scale invariance, saturation) on your own model.",
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


app.command("train")(train)
app.command("validate")(validate)

from bncli.commands.lipschitz import lipschitz  # noqa: E402
from bncli.commands.measure_ics import measure_ics  # noqa: E402
from bncli.commands.saturation import saturation  # noqa: E402
from bncli.commands.scale_check import scale_check  # noqa: E402

app.command("measure-ics")(measure_ics)
app.command("lipschitz")(lipschitz)
app.command("scale-check")(scale_check)
app.command("saturation")(saturation)
