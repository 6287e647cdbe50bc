"""The Typer app: analysis subcommands come from the registry (bncli.analyses), after the plugins
(bncli.plugins) have registered theirs; validate here too."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from bncli import __version__
from bncli.analyses import ANALYSES
from bncli.commands.analysis import make_command
from bncli.commands.batch import batch
from bncli.commands.compare import compare
from bncli.commands.export import export
from bncli.commands.report import report
from bncli.commands.spec import spec
from bncli.commands.validate import validate
from bncli.errors import BncliError
from bncli.models.module import ALLOW_ENV
from bncli.plugins import load_plugins


def _load_plugins() -> str | None:
    """Import the plugins before the commands are built (a plugin may add one); None, or why
    they were refused (said by `main` when a command runs: `bncli --help` still works)."""
    if "--allow-code" in sys.argv[1:]:  # consent given on this command line (either position)
        os.environ[ALLOW_ENV] = "1"  # worker processes inherit it
    try:
        load_plugins()
    except BncliError as exc:
        return str(exc)
    return None

_PLUGIN_PROBLEM = _load_plugins()  # before the commands are built: a plugin may add one


def _refused() -> None:
    from bncli.commands._common import _error_line

    _error_line(str(_PLUGIN_PROBLEM))
    raise typer.Exit(2)


class _Group(TyperGroup):
    """A command that is not bncli's, while plugins were refused: say why, not "no such command"."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        if found is None and _PLUGIN_PROBLEM is not None:
            _refused()
        return found


app = typer.Typer(
    name="bncli",
    help="Why does Batch Normalization work? Paired trainings with and without BN that test "
    "each claim (ICS, landscape smoothing, scale invariance, saturation) on MLPs, CNNs, VGG, "
    "ResNet or your own nn.Module, on synthetic data, your arrays, MNIST or CIFAR.",
    cls=_Group,
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
    allow_code: Annotated[
        bool, typer.Option("--allow-code", help="Let plugins (BNCLI_PLUGINS, the bncli.plugins entry "
                           "points) and a spec's model.factory import and run their code (or set "
                           "BNCLI_ALLOW_CODE=1).")
    ] = False,
) -> None:
    """bncli: does BN reduce internal covariate shift, or smooth the landscape? Measure it."""
    if allow_code:
        os.environ[ALLOW_ENV] = "1"
    if _PLUGIN_PROBLEM is not None:
        _refused()


for _analysis in ANALYSES.values():
    app.command(_analysis.command)(make_command(_analysis))
app.command("batch")(batch)
app.command("validate")(validate)
app.command("report")(report)
app.command("spec")(spec)
app.command("compare")(compare)
app.add_typer(export, name="export")
