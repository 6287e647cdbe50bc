"""`bncli spec`: every spec key with its default and a comment, or the JSON Schema for editors."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from bncli.commands._common import guarded


def spec(
    defaults: Annotated[bool, typer.Option("--defaults", help="Print the whole spec as YAML: every "
                                           "key at its default, with a comment (the default).")] = False,
    schema: Annotated[bool, typer.Option("--schema", help="Print the spec's JSON Schema (for editors' "
                                         "YAML language servers: completion and checks).")] = False,
) -> None:
    """Show what a spec can say, generated from bncli's own spec models (so it is always current).

    `bncli spec --defaults > my.yaml` gives a spec with every key at its default and a comment
    saying what it does (and which data source or optimizer it is for): keep what you change,
    delete the rest. `bncli spec --schema > bncli.schema.json` writes the JSON Schema; a first line
    `# yaml-language-server: $schema=bncli.schema.json` in a spec gives completion, hover text and
    checks in editors with a YAML language server (VS Code's YAML extension, Neovim, Helix, ...).
    """
    with guarded():
        from bncli.errors import UsageError
        from bncli.spec_doc import defaults_yaml, json_schema_text

        if defaults and schema:
            raise UsageError("give --defaults or --schema, not both")
        sys.stdout.write(json_schema_text() if schema else defaults_yaml())
        sys.stdout.flush()
