"""Run the bncli CLI in this process and send it a signal right after its N-th finished job
(`python tests/signal_after.py N SIGTERM batch ...`): a kill at a known point of the plan, not after
a guessed number of seconds, so the tests that use it don't depend on how busy the machine is."""

from __future__ import annotations

import os
import signal
import sys


def main() -> None:
    n, sig, args = int(sys.argv[1]), signal.Signals[sys.argv[2]], sys.argv[3:]
    import bncli.executors
    import bncli.executors.base as base

    real = base.execute
    seen = [0]

    def execute(jobs, executor=None, reporter=None, on_result=None):
        def counted(res):
            if on_result is not None:
                on_result(res)
            seen[0] += 1
            if seen[0] == n:
                os.kill(os.getpid(), sig)

        return real(jobs, executor, reporter, counted)

    base.execute = bncli.executors.execute = execute  # before the commands import it
    from bncli.cli import app

    sys.argv = ["bncli", *args]
    app()


if __name__ == "__main__":
    main()
