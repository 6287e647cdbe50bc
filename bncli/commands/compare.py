"""`bncli compare A B`: did a change of code or settings change a conclusion?"""

from __future__ import annotations

import json as jsonlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from bncli.commands._common import guarded, print_renderables


def compare(
    a: Annotated[Path, typer.Argument(help="The first result: a folder (a subcommand's or a batch's --out) or "
                                      "a saved JSON document.", show_default=False, metavar="A")],
    b: Annotated[Path, typer.Argument(help="The second result, of the same kind.", show_default=False,
                                      metavar="B")],
    json: Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else.")]
    = False,
    detail: Annotated[bool, typer.Option("--detail", help="Every metric of every claim (by default only "
                                         "those of the claims whose verdict changed).")] = False,
) -> None:
    """Compare two saved results claim by claim: per claim and regime (comparison, learning rate,
    arm vs baseline) the verdict in A and in B (an exploratory verdict with its leaning) and, under
    each changed claim, its metrics' change. Two batches are matched by comparison name; two
    subcommands' results by command; a batch and a subcommand's result cannot be compared.
    Nothing is trained.

    Exit codes: 0 no verdict changed, 1 at least one changed (exploratory→supported against
    exploratory→inconclusive included, or judged in one result only), 2 a result that cannot be
    read, or a batch against a subcommand's result. For CI: did this change of code or settings
    change a conclusion?
    """
    with guarded():
        from bncli.compare import compare_paths
        from bncli.render.compare import render_compare

        cmp = compare_paths(a, b)
        if json:
            sys.stdout.write(jsonlib.dumps(cmp.to_json(), allow_nan=False) + "\n")
        else:
            print_renderables(render_compare(cmp, detail))
    raise typer.Exit(cmp.exit_code())
