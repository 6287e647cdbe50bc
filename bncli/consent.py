"""The user's consent to run code that is not bncli's: a spec's model factory, plugins
(BNCLI_PLUGINS, the `bncli.plugins` entry points). Given as --allow-code or BNCLI_ALLOW_CODE=1;
the same names as bncli.models.module's (issue 30a), so one can import the other."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

ALLOW_ENV = "BNCLI_ALLOW_CODE"  # consent to import and run code bncli does not ship (as --allow-code)


def code_allowed() -> bool:
    """Whether code that is not bncli's may run: --allow-code or BNCLI_ALLOW_CODE=1 (true, yes, on)."""
    return os.environ.get(ALLOW_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@contextmanager
def code_consent(allow: bool) -> Iterator[None]:
    """--allow-code for one command: set in the environment, so the worker processes (and a private
    local Ray) it starts inherit it; put back as it was afterwards."""
    if not allow:
        yield
        return
    before = os.environ.get(ALLOW_ENV)
    os.environ[ALLOW_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ALLOW_ENV, None)
        else:
            os.environ[ALLOW_ENV] = before


def refusal(what: str) -> str:
    """The one line that says code was not run, and how to allow it."""
    return f"{what}; if you trust it, pass --allow-code (or set {ALLOW_ENV}=1)"
