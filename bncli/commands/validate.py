"""`bncli validate`: check a spec (and that its data and model fit) without training."""

from __future__ import annotations

import json as jsonlib
import sys
from typing import Annotated

import typer

from bncli.commands._common import SpecArg, guarded, stdout_console


def validate(
    spec_path: SpecArg,
    json: Annotated[bool, typer.Option("--json", help="Print the resolved spec as JSON.")] = False,
    no_data: Annotated[
        bool, typer.Option("--no-data", help="Check the file only; don't load data or build models.")
    ] = False,
) -> None:
    """Check a spec without training: keys, types and ranges, the device, the data, and that the
    model fits the data. Exit 0 if it is valid, 2 with a one-line error naming the field if not."""
    with guarded(spec_path):
        from bncli.experiment import describe, prepare
        from bncli.spec import load_spec

        spec = load_spec(spec_path)
        description = "" if no_data else describe(spec, prepare(spec)[0])
        if json:
            sys.stdout.write(jsonlib.dumps(spec.model_dump(mode="json")) + "\n")
        else:
            stdout_console().print(
                f"[green]ok[/green]: {spec_path}: {description}".rstrip(": "), soft_wrap=True
            )
