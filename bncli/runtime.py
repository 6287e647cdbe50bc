"""Seeding, device choice, threads and determinism: the only copy."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from bncli.errors import DeviceError


def resolve_device(name: str) -> torch.device:
    """Map a spec's device string (auto|cpu|cuda|cuda:N|mps) to a torch.device, or fail clearly."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise DeviceError(f"device: unknown device {name!r} (use auto, cpu or cuda)") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device: {name!r} requested but no CUDA device is available on this machine"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device: {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif dev.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise DeviceError(f"device: {name!r} requested but MPS is not available")
    elif dev.type != "cpu":
        raise DeviceError(f"device: unsupported device {name!r} (use auto, cpu or cuda)")
    elif dev.index is not None:
        # torch accepts cpu:3 and quietly runs on the one CPU device; say so instead
        raise DeviceError(f"device: {name!r}: the CPU takes no index (use cpu, or cuda:N for a GPU)")
    return dev


# `threads: auto` uses one more thread per this many multiply-adds in a forward pass of the batch
# (runtime.step_macs): 1 thread below 2x this. Measured by benchmarks/bench_threads.py (2 cores,
# 100 steps, both arms): every sample config (1.6e6-9.8e7 per step) and MLPs up to 5.6e8 run
# faster on 1 thread than on 2 even without a competing process, and 3-40x faster when another
# process keeps the cores busy (torch's threads wait for each other). A second thread pays on
# an idle machine from about 2e9 (3 x 1024 units, batch 1024: 2.1x faster) but costs 2.6x there
# when the cores are busy; at 4.4e9 (3 x 2048, batch 512) it is 1.7x faster idle and only 1.1x
# slower busy. So: 2 threads from 4e9.
AUTO_MACS_PER_THREAD = 2_000_000_000
AUTO_MAX_THREADS = 4  # a cap: more threads per run were not measured
_thread_ceiling: int | None = None  # a worker's share of the cores (set by the executors)


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def set_thread_ceiling(n: int | None) -> None:
    """The most threads `auto` may pick in this process (a worker's cores / N; None: all cores)."""
    global _thread_ceiling
    _thread_ceiling = n


def step_macs(model: Any, input_shape: Sequence[int], n_out: int, batch: int) -> int:
    """Multiply-adds of one forward pass of a training batch: widths x fan-ins (x map sizes) x
    batch. A rough size of the per-step work, enough to choose a thread count."""
    from bncli.models.registry import get_family

    per_example = get_family(model.kind).macs_per_example(model, tuple(input_shape), n_out)
    return per_example * max(1, batch)


def auto_threads(macs: int, ceiling: int | None = None) -> int:
    """The thread count `threads: auto` picks for a step of `macs` multiply-adds: 1 below
    AUTO_MACS_PER_THREAD, then one more per that much work, at most AUTO_MAX_THREADS and the
    cores this process may use (or `ceiling`)."""
    cap = min(AUTO_MAX_THREADS, ceiling or _thread_ceiling or available_cores())
    return max(1, min(cap, macs // AUTO_MACS_PER_THREAD))


def resolve_threads(spec: Any, input_shape: Sequence[int], n_out: int, n_train: int) -> int | None:
    """The spec's `threads` as a number: an explicit count as given, `auto` by the per-step work
    of its model and batch size (auto_threads), None (torch's default) as None."""
    t = spec.threads
    if t != "auto":
        return t
    batch = min(spec.train.batch_size, n_train)
    return auto_threads(step_macs(spec.model, input_shape, n_out, batch))


def threads_label(spec: Any, input_shape: Sequence[int], n_out: int, n_train: int,
                  ceiling: int | None = None) -> str:
    """What a run's header says about threads: '1 (auto)', '4', or "8 (torch's default)"."""
    t = spec.threads
    if t is None:
        return f"{torch.get_num_threads()} (torch's default)"
    if t != "auto":
        return str(t)
    batch = min(spec.train.batch_size, n_train)
    return f"{auto_threads(step_macs(spec.model, input_shape, n_out, batch), ceiling)} (auto)"


def configure_threads(threads: int | None) -> None:
    """Set torch's intra-op CPU threads when given a number (None: leave torch's default)."""
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from one integer."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator for data order and noise draws, independent of the global RNG."""
    return torch.Generator(device="cpu").manual_seed(seed)


def derive_seed(*parts: int) -> int:
    """A stable 63-bit seed from integers (same on every platform and run)."""
    h = 1469598103934665603
    for p in parts:
        for byte in int(p).to_bytes(8, "little", signed=True):
            h = ((h ^ byte) * 1099511628211) % (1 << 64)
    return h % (1 << 63)


@contextmanager
def preserved_rng(device: torch.device | None = None) -> Iterator[None]:
    """Restore Python, NumPy and torch RNG state on exit, so measuring never moves the RNG."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    cpu_state = torch.get_rng_state()
    cuda_state = (
        torch.cuda.get_rng_state(device)
        if device is not None and device.type == "cuda"
        else None
    )
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu_state)
        if cuda_state is not None:
            torch.cuda.set_rng_state(cuda_state, device)


DTYPES = {"float32": torch.float32, "float64": torch.float64}


@contextmanager
def precision(name: str) -> Iterator[None]:
    """torch's default dtype set to a spec's `precision` while a run is built, trained and
    measured (its model, probes and fused stacks follow it; the data is converted by the data
    cache), restored on exit."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(DTYPES[name])
    try:
        yield
    finally:
        torch.set_default_dtype(old)
