"""The local executor: N worker processes on this machine (`--jobs N`), one group of jobs at a
time each (a group is what the runner trains together; SingleRunner's groups are single jobs).

A worker that dies (killed, out of memory) fails only the group it was running, with the reason,
and is replaced; the others go on. Workers ignore Ctrl-C: the parent stops them and keeps every
finished result. Each worker sets torch's threads to cores / N unless the spec says otherwise.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from bncli.executors.base import JobResult, Reporter
from bncli.models.module import code_allowed
from bncli.plan import RunJob
from bncli.runner import Runner, default_runner
from bncli.runner.base import schedule_groups


def _worker(conn: Connection, threads: int, runner: Any) -> None:
    """Loop: receive a group, run it, send back ("ok", records) or ("error", text)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    from bncli.plugins import load_plugins
    from bncli.runner.cache import seed_data
    from bncli.runtime import set_thread_ceiling

    set_thread_ceiling(threads)  # `threads: auto` stays within this worker's share of the cores
    torch.set_num_threads(threads)
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        group, data, allow_code = msg
        # the forkserver may predate --allow-code: the consent travels with each group
        from bncli.models.module import ALLOW_ENV

        if allow_code:
            os.environ[ALLOW_ENV] = "1"
        else:
            os.environ.pop(ALLOW_ENV, None)
        try:
            load_plugins()  # the parent's plugins (BNCLI_PLUGINS, with the consent above) register here too
            if data is not None:  # the parent's copy, sent once per data set
                seed_data(group[0].spec, data)
            conn.send(("ok", runner.run(group)))
        except BaseException as exc:  # noqa: BLE001 - every failure is reported, one line
            first = str(exc).splitlines()[0] if str(exc) else ""
            conn.send(("error", f"{type(exc).__name__}: {first}"))
        finally:
            if torch.get_num_threads() != threads:  # a spec's `threads` must not leak into the next job
                torch.set_num_threads(threads)


def _death_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"worker process died: killed by {name}{hint}"
    return f"worker process died: exit code {code}"


class _Worker:
    def __init__(self, ctx: Any, threads: int, runner: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child, threads, runner), daemon=True)
        self.proc.start()
        child.close()
        self.job: list[RunJob] | None = None  # the group it is running
        self.has_data: set[str] = set()  # data keys this worker already holds

    def stop(self) -> None:
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join(timeout=5)
        self.conn.close()


def _context() -> Any:
    """The forkserver context, its server started (it imports torch once, in the background)."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "bncli.plan", "bncli.runner", "bncli.train", "bncli.analyses"])
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return ctx


def default_threads(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


class LocalExecutor:
    """Runs a plan on `jobs` worker processes (forked from a clean forkserver: no torch state of
    this process is inherited)."""

    def __init__(self, jobs: int, threads: int | None = None, probe_factory: Any = None,
                 runner: Runner | None = None) -> None:
        self.jobs = max(1, jobs)
        self.threads = threads or default_threads(self.jobs)
        self.runner = runner if runner is not None else default_runner(probe_factory)
        _context()  # start the server now: it imports torch while this process checks the specs

    @staticmethod
    def _data_for(w: _Worker, job: RunJob) -> Any:
        """The job's data (on the CPU) the first time this worker needs it, else None: workers
        don't load data sets themselves (one load in this process, whatever the workers)."""
        from bncli.runner.cache import cpu_data, data_key

        key = data_key(job.spec, "cpu")
        if key in w.has_data:
            return None
        w.has_data.add(key)
        try:
            return cpu_data(job.spec)
        except Exception:  # noqa: BLE001 - the worker then loads it and reports the error itself
            return None

    def run(self, groups: Sequence[Sequence[RunJob]], reporter: Reporter | None = None) -> Iterator[JobResult]:
        # forkserver: a clean server process (no torch threads inherited) imports torch once;
        # each worker then forks from it quickly instead of importing torch itself (spawn)
        ctx = _context()
        # longest groups first, big fused groups split while workers would idle (LPT order)
        todo = schedule_groups(groups, self.jobs)
        workers = [_Worker(ctx, self.threads, self.runner) for _ in range(min(self.jobs, len(todo)))]
        try:
            while todo or any(w.job is not None for w in workers):
                for w in workers:
                    if w.job is None and todo:
                        w.job = todo.pop(0)
                        w.conn.send((w.job, self._data_for(w, w.job[0]), code_allowed()))
                busy = [w for w in workers if w.job is not None]
                ready = wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
                for w in list(busy):
                    job = w.job
                    assert job is not None
                    if w.conn in ready:
                        try:
                            kind, payload = w.conn.recv()
                        except (EOFError, OSError):
                            kind, payload = "died", None
                    elif w.proc.sentinel in ready:
                        kind, payload = "died", None
                    else:
                        continue
                    w.job = None
                    if kind == "ok":
                        for j, record in zip(job, payload):
                            yield JobResult(j, record)
                    elif kind == "error":
                        for j in job:
                            yield JobResult(j, None, payload)
                    else:
                        w.proc.join(timeout=5)
                        reason = _death_reason(w.proc.exitcode)
                        w.stop()
                        workers[workers.index(w)] = _Worker(ctx, self.threads, self.runner)
                        for j in job:
                            yield JobResult(j, None, reason)
        finally:
            for w in workers:
                try:
                    if w.proc.is_alive() and w.job is None:
                        w.conn.send(None)
                except OSError:
                    pass
                w.stop()
