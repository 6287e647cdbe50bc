"""`bncli validate`: check a spec (and that its data and model fit) without training."""

from __future__ import annotations

import json as jsonlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from bncli.commands._common import guarded, stdout_console
from bncli.commands.analysis import ALLOW_CODE_HELP
from bncli.models.module import code_consent


def validate(
    spec_paths: Annotated[list[Path], typer.Argument(help="YAML spec file(s).", show_default=False,
                                                     metavar="SPEC.yaml...")],
    json: Annotated[bool, typer.Option("--json", help="Print the resolved spec(s) as JSON, one per line.")] = False,
    no_data: Annotated[
        bool, typer.Option("--no-data", help="Check the file only; don't load data or build models.")
    ] = False,
    allow_code: Annotated[bool, typer.Option("--allow-code", help=ALLOW_CODE_HELP)] = False,
    command: Annotated[list[str] | None, typer.Option(
        "--command", "-c", metavar="SUBCOMMAND",
        help="Check that the arms give this subcommand something to compare (repeat for several; "
             "default: the subcommands whose analysis section (analysis.ics, ...) the spec sets, else "
             "train).")] = None,
) -> None:
    """Check spec files without training: keys, types and ranges, keys that do nothing, that the
    arms make a comparison, the device, the data, and that the model fits the data. One line per
    file; exit 0 if every file is valid, 2 if any is not (each bad file gets a one-line error
    naming the field)."""
    worst = 0
    if command:
        from bncli.analyses import BY_COMMAND
        from bncli.errors import UsageError

        with guarded():
            bad = [c for c in command if c not in BY_COMMAND]
            if bad:
                raise UsageError(f"--command {bad[0]}: not an analysis subcommand (choose from "
                                 f"{', '.join(BY_COMMAND)})")
    for spec_path in spec_paths:
        try:
            with guarded(spec_path), code_consent(allow_code):
                _validate_one(spec_path, json, no_data, command)
        except typer.Exit as exc:
            worst = max(worst, exc.exit_code or 0)
    if worst:
        raise typer.Exit(worst)


def _validate_one(spec_path: Path, json: bool, no_data: bool, commands: list[str] | None) -> None:
    from rich.markup import escape

    from bncli.errors import SpecError
    from bncli.render.describe import describe
    from bncli.runner.build import prepare
    from bncli.spec import load_spec
    from bncli.spec_checks import check_comparisons, commands_to_check
    from bncli.yamlio import load_yaml_file

    raw = load_yaml_file(spec_path)
    if isinstance(raw, dict) and "comparisons" in raw:
        raise SpecError(f"{spec_path}: a batch file (it has comparisons:), not a spec: check it with "
                        f"`bncli batch {spec_path} --dry-run`")
    spec = load_spec(spec_path)
    check_comparisons(spec, commands or commands_to_check(spec), str(spec_path))
    description = ""
    if not no_data:
        from bncli.runtime import threads_label

        data = prepare(spec)[0]
        description = describe(spec, data, threads_label(spec, data.input_shape, data.n_out, data.n_train))
    if json:
        sys.stdout.write(jsonlib.dumps(spec.model_dump(mode="json")) + "\n")
    else:
        # the path as given (relative stays relative), the description on its own wrapped lines
        console = stdout_console()
        console.print(f"[green]ok[/green]: {escape(str(spec_path))}", soft_wrap=True)
        if description:
            import textwrap

            for line in textwrap.wrap(description, max(40, console.width - 4)):
                console.print("    " + escape(line), soft_wrap=True)
