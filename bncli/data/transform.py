"""Per-batch image preparation: uint8 images stay in memory as bytes (CIFAR-10 is 150 MB, not
600) and each batch is normalized when it is drawn; training batches may be augmented (random
crop with zero padding + horizontal flip), drawn from (seed, step) only, so paired arms see
identical augmented batches and different seeds see different ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bncli.runtime import derive_seed, make_generator

AUGMENT_SALT = 104_729  # keeps augmentation draws apart from batch order and noise draws


@dataclass(frozen=True)
class ImageTransform:
    """(x - mean) / std per channel, on uint8 (N, C, H, W) batches; mean/std are (1, C, 1, 1)."""

    mean: torch.Tensor
    std: torch.Tensor
    augment: bool = False
    pad: int = 4

    def to(self, device: torch.device) -> ImageTransform:
        return ImageTransform(self.mean.to(device), self.std.to(device), self.augment, self.pad)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(torch.float32) - self.mean) / self.std

    def train_batch(self, x: torch.Tensor, seed: int, step: int) -> torch.Tensor:
        if self.augment:
            x = crop_flip(x, self.pad, derive_seed(seed, step, AUGMENT_SALT))
        return self.normalize(x)


def channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 images (N, C, H, W), in float64, without a float copy
    of the whole set."""
    c = x.shape[1]
    s = np.zeros(c)
    s2 = np.zeros(c)
    for i in range(0, len(x), chunk):
        part = x[i : i + chunk].astype(np.float64)
        s += part.sum(axis=(0, 2, 3))
        s2 += (part**2).sum(axis=(0, 2, 3))
    n = len(x) * x.shape[2] * x.shape[3]
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
    return mean, np.where(std > 1e-8, std, 1.0)


def crop_flip(x: torch.Tensor, pad: int, seed: int) -> torch.Tensor:
    """A random crop of each image after `pad` pixels of zero padding, and a horizontal flip with
    probability 1/2 (torchvision's RandomCrop(padding=4) + RandomHorizontalFlip), from one seed."""
    b, _c, h, w = x.shape
    gen = make_generator(seed)
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
    flip = torch.rand(b, generator=gen) < 0.5
    dev = x.device
    dy, dx, flip = dy.to(dev), dx.to(dev), flip.to(dev)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    ar_h = torch.arange(h, device=dev)
    ar_w = torch.arange(w, device=dev)
    rows = dy[:, None] + ar_h[None, :]  # (B, H)
    cols = torch.where(flip[:, None], dx[:, None] + (w - 1 - ar_w)[None, :], dx[:, None] + ar_w[None, :])
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(x.shape[1], device=dev)[None, :, None, None]
    return padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]
