"""`bncli measure-ics`: under construction in this session (see the issue tracker)."""

from __future__ import annotations

from bncli.commands._common import SpecArg, guarded
from bncli.errors import BncliError


def measure_ics(spec_path: SpecArg) -> None:
    """Not available yet."""
    with guarded():
        raise BncliError("bncli measure-ics is not available in this build yet")
