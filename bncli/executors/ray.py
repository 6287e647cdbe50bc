"""The Ray executor (`--backend ray`): every group of jobs (the runner's; SingleRunner: one job) is
one Ray task, on a private local Ray or a cluster.

What runs where: the driver (this process) loads each distinct dataset once on the CPU and puts it
in Ray's object store, so a node fetches it once, whatever its number of jobs; every job is a task
that asks for `num_cpus` = the job's threads and, when the job's device is CUDA, one GPU (Ray picks
which: `cuda:N` runs on the GPU Ray assigns). Results come back as they finish (`ray.wait`). A
task whose worker process or node dies is retried elsewhere (`max_retries`); a job that raises is
not retried and is reported like a local failure. Ctrl-C cancels the outstanding tasks.

`ray` is an optional dependency: it is imported inside functions only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bncli.errors import DeviceError, UsageError
from bncli.executors.base import JobResult, Reporter
from bncli.plan import RunJob
from bncli.runner import Runner, default_runner
from bncli.runner.base import schedule_groups

INSTALL_HINT = "--backend ray needs Ray: pip install 'bncli[ray]' (or pip install ray)"

_REMOTE: Any = None  # the @ray.remote task, made on first use (ray is optional)


def _private_ray_env() -> None:
    """A private Ray needs no network: every node on loopback (read when ray is first imported, and
    by the processes it starts), no usage-stats upload. A user's own settings win."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UsageError(INSTALL_HINT) from exc
    return ray


def _run_on_worker(group: list[RunJob], data: Any, device: str, threads: int, runner: Any) -> Any:
    """The task body: the group's data on its device, `threads` torch threads, then the runner."""
    import torch

    from bncli.plugins import load_plugins
    from bncli.runtime import set_thread_ceiling

    load_plugins()  # where the task's environment names plugins (and consents), they register here
    set_thread_ceiling(threads)  # `threads: auto` stays within the CPUs this task asked for
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if device != "cpu":
        data = data.to(torch.device(device))
    return runner.run(group, data)


def _remote(ray: Any) -> Any:
    global _REMOTE
    if _REMOTE is None:
        _REMOTE = ray.remote(_run_on_worker)
    return _REMOTE


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _error_of(ray: Any, exc: BaseException) -> tuple[str, BaseException]:
    """The job's own exception when it raised (Ray wraps it), else Ray's reason (worker/node lost)."""
    cause = getattr(exc, "cause", None) if isinstance(exc, ray.exceptions.RayTaskError) else None
    if isinstance(cause, BaseException):
        return _one_line(cause), cause
    return _one_line(exc), exc


class RayExecutor:
    """Runs a plan as Ray tasks. `address=None` starts a private local Ray for this run only (and
    shuts it down after); `"auto"` or `"ray://host:port"` joins a cluster. An already connected
    Ray (`ray.is_initialized()`) is used as it is and left running.

    `num_cpus` caps the private Ray's cores (default: all). Each task asks for the spec's `threads`,
    else `threads_per_job` (default 1), CPUs and sets torch to that many threads: records are
    bitwise those of the serial executor at the same thread count. A job asks for one GPU when its
    device is `cuda`/`cuda:N`, or `auto` and the cluster has GPUs."""

    def __init__(
        self,
        address: str | None = None,
        max_retries: int = 2,
        num_cpus: int | None = None,
        threads_per_job: int | None = None,
        probe_factory: Callable[..., Sequence[Any]] | None = None,
        runner: Runner | None = None,
    ) -> None:
        self.address = address
        self.max_retries = max_retries
        self.num_cpus = num_cpus
        self.threads_per_job = threads_per_job
        self.runner = runner if runner is not None else default_runner(probe_factory)

    # -- lifecycle --------------------------------------------------------------------------------

    def _connect(self) -> tuple[Any, bool]:
        """(ray, whether this call initialized it and so must shut it down)."""
        if self.address is None:
            _private_ray_env()
        ray = _import_ray()
        if ray.is_initialized():
            return ray, False
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR, "configure_logging": True}
        if self.address is not None:
            _probe_address(self.address)  # a closed port: one line now, not minutes of Ray retries
        try:
            if self.address is None:
                ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False,
                         _node_ip_address="127.0.0.1", **quiet)
            else:  # a cluster's workers don't inherit this environment: pass the consent on
                from bncli.models.module import ALLOW_ENV, code_allowed

                env = {"runtime_env": {"env_vars": {ALLOW_ENV: "1"}}} if code_allowed() else {}
                ray.init(address=self.address, **quiet, **env)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = "a local Ray" if self.address is None else f"the Ray cluster at --address {self.address}"
            hint = " (start one with `ray start --head`)" if self.address == "auto" else ""
            raise UsageError(f"cannot start or reach {where}{hint}: {_one_line(exc)}") from exc
        return ray, True

    # -- resources --------------------------------------------------------------------------------

    def _threads(self, job: RunJob) -> int:
        """CPUs a task asks for: the spec's number; for `auto` (or torch's default) the executor's
        threads per job, else 1 (auto picks 1 for every sample config)."""
        t = job.spec.threads
        return t if isinstance(t, int) else (self.threads_per_job or 1)

    @staticmethod
    def _device(spec_device: str, cluster_gpus: float) -> str:
        """The device string the task moves its data to: 'cuda' (the GPU Ray assigns) or 'cpu'."""
        if spec_device.startswith("cuda") or (spec_device == "auto" and cluster_gpus > 0):
            return "cuda"
        if spec_device == "auto":
            return "cpu"
        return spec_device

    def _check_fits(self, ray: Any, jobs: Sequence[RunJob], gpus: float) -> None:
        """On the private Ray (fixed resources), fail clearly instead of queueing tasks no node can
        ever take. A cluster is not checked: its autoscaler may add the nodes they need."""
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        max_cpus = max((r.get("CPU", 0) for r in nodes), default=0)
        for job in jobs:
            if self._device(job.spec.device, gpus) == "cuda" and gpus <= 0:
                raise DeviceError(f"device: {job.spec.device!r} requested but the Ray cluster has no GPUs")
            if self._threads(job) > max_cpus:
                raise UsageError(f"threads: a job asks for {self._threads(job)} CPUs but the largest Ray "
                                 f"node has {max_cpus:g}")

    # -- running ----------------------------------------------------------------------------------

    def run(self, groups: Sequence[Sequence[RunJob]], reporter: Reporter | None = None) -> Iterator[JobResult]:
        """Submit every group, yield each job's JobResult as its task finishes (no per-step progress)."""
        ray, started = self._connect()
        pending: dict[Any, list[RunJob]] = {}
        # Ray's driver prints task errors ("Task failed ... will be retried") to stdout whatever
        # log_to_driver says; stdout is data (--json), and a failure is reported in its JobResult
        ray_worker = getattr(ray, "_private", None) and getattr(ray._private, "worker", None)
        logs_were = getattr(ray_worker, "_worker_logs_enabled", None)
        if logs_were is not None:
            ray_worker._worker_logs_enabled = False
        try:
            yield from self._run(ray, [list(g) for g in groups], pending, check=started and self.address is None)
        finally:
            if logs_were is not None:
                ray_worker._worker_logs_enabled = logs_were
            # Ctrl-C, an error, or a caller that stopped early: no task outlives the run
            for ref in pending:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - already finished or its node is gone
                    pass
            if started:
                ray.shutdown()

    def _run(
        self, ray: Any, groups: list[list[RunJob]], pending: dict[Any, list[RunJob]], check: bool
    ) -> Iterator[JobResult]:
        from bncli.runner.cache import cpu_data, data_key

        if not groups:
            return
        gpus = float(ray.cluster_resources().get("GPU", 0))
        if check:
            self._check_fits(ray, [j for g in groups for j in g], gpus)
        task = _remote(ray)
        data_refs: dict[str, Any] = {}
        # longest first (Ray starts tasks in about the order they come); split big fused groups
        # while there are fewer groups than the cluster has CPUs for them
        slots = int(float(ray.cluster_resources().get("CPU", 1)) // max(1, self._threads(groups[0][0])))
        for group in schedule_groups(groups, max(1, slots)):
            job = group[0]
            spec = job.spec
            dkey = data_key(spec, "cpu")
            if dkey not in data_refs:  # once per distinct dataset; nodes fetch it from the store
                data_refs[dkey] = ray.put(cpu_data(spec))
            device, threads = self._device(spec.device, gpus), self._threads(job)
            ref = task.options(
                num_cpus=threads,
                num_gpus=1 if device.startswith("cuda") else 0,
                max_retries=self.max_retries,
                retry_exceptions=False,
            ).remote(group, data_refs[dkey], device, threads, self.runner)
            pending[ref] = group
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                group = pending.pop(ref)
                try:
                    records = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    text, cause = _error_of(ray, exc)
                    for job in group:
                        yield JobResult(job, None, text, cause)
                    continue
                for job, record in zip(group, records):
                    yield JobResult(job, record)


def make_ray_executor(address: str | None = None, **kw: Any) -> RayExecutor:
    """The executor behind `--backend ray [--address A]`; a UsageError (exit 2) when Ray is missing."""
    if address is None:
        _private_ray_env()
    _import_ray()
    return RayExecutor(address, **kw)


CONNECT_TIMEOUT_S = 5.0


def _probe_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """For a host:port address (ray://host:port or host:port), check that something accepts TCP
    connections there within `timeout` seconds before ray.init retries for minutes. `auto` and
    other forms are left to Ray."""
    import re
    import socket

    m = re.fullmatch(r"(?:ray://)?\[?([^\]\s/]+?)\]?:(\d{1,5})/?", address.strip())
    if m is None:
        return
    host, port = m.group(1), int(m.group(2))
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise UsageError(f"cannot reach the Ray cluster at --address {address}: {why} (is `ray start --head` "
                         "running there, and the port open?)") from None
