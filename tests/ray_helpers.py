"""Probe factories that misbehave on purpose, for the Ray tests: they run on Ray's workers.

Each wraps an analysis's own probes (so records stay comparable with the serial executor's) and
keeps its state in files, which every process on this machine sees. test_ray registers this module
to be pickled by value, so the workers need not import it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bncli.analyses import get_analysis


def _analysis_probes(analysis: str, spec, arm, lr, seed, data) -> list:
    from bncli.probes.registry import make_probes

    return make_probes(get_analysis(analysis).plan_probes(spec, arm), spec, arm, lr, seed, data)


def _log_attempt(log: str, arm, lr, seed) -> None:
    node = ""
    try:
        import ray

        node = ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside Ray
        pass
    with open(log, "a") as f:
        f.write(f"{arm.name} {lr:g} {seed} {os.getpid()} {node}\n")


class DieOnce:
    """Logs every attempt and sleeps `delay` s; the first attempt of the chosen job kills its own
    worker process (the marker file remembers that it happened)."""

    def __init__(self, analysis: str, marker: str, log: str, arm: str, seed: int, delay: float = 0.0) -> None:
        self.analysis, self.marker, self.log = analysis, marker, log
        self.arm, self.seed, self.delay = arm, seed, delay

    def __call__(self, spec, arm, lr, seed, data):
        _log_attempt(self.log, arm, lr, seed)
        if arm.name == self.arm and seed == self.seed and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        time.sleep(self.delay)
        return _analysis_probes(self.analysis, spec, arm, lr, seed, data)


class RaiseOn:
    """Logs every attempt; the chosen job raises ValueError('boom') each time it runs."""

    def __init__(self, analysis: str, log: str, arm: str, seed: int) -> None:
        self.analysis, self.log, self.arm, self.seed = analysis, log, arm, seed

    def __call__(self, spec, arm, lr, seed, data):
        _log_attempt(self.log, arm, lr, seed)
        if arm.name == self.arm and seed == self.seed:
            raise ValueError("boom")
        return _analysis_probes(self.analysis, spec, arm, lr, seed, data)
