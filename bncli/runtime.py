"""Seeding, device choice and determinism: the only copy."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

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


def configure_threads(threads: int | None) -> None:
    """Set torch's intra-op CPU threads when the spec asks for a number (None: torch's default)."""
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
