"""Picklable helpers for the batch / executor tests (worker processes import them by name)."""

from __future__ import annotations

import os
from pathlib import Path


class DieOnce:
    """A probe factory whose process dies (like an OOM kill) when building probes for `arm` at
    `seed`, the first time only (a marker file remembers)."""

    def __init__(self, arm: str, seed: int, marker: str, always: bool = False) -> None:
        self.arm, self.seed, self.marker, self.always = arm, seed, marker, always

    def __call__(self, spec, arm, lr, seed, data):
        if arm.name == self.arm and seed == self.seed and (self.always or not Path(self.marker).exists()):
            Path(self.marker).write_text("died")
            os._exit(137)
        return []
