"""Per-channel mean and std of uint8 images, in [0, 1] units, computed in chunks (memmaps stay on disk)."""

from __future__ import annotations

import numpy as np


def channel_stats(images: np.ndarray, chunk_bytes: int = 64 << 20) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std per channel of (N, C, H, W) uint8 images, in [0, 1] units.

    A 256-bin histogram per channel is accumulated chunk by chunk, so the result is exact, memory
    stays bounded and a memmapped split is read once, front to back.
    """
    n, c = images.shape[:2]
    if n == 0:
        return tuple([0.5] * c), tuple([0.5] * c)
    per_image = int(np.prod(images.shape[1:]))
    chunk = max(1, chunk_bytes // per_image)
    hist = np.zeros((c, 256), np.int64)
    for start in range(0, n, chunk):
        block = np.asarray(images[start : start + chunk])  # (b, C, H, W) uint8
        for ch in range(c):
            hist[ch] += np.bincount(block[:, ch].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64) / 255.0
    count = hist.sum(axis=1)
    mean = hist @ values / count
    var = np.maximum(hist @ values**2 / count - mean**2, 0.0)
    std = np.sqrt(var)
    std = np.where(std < 1e-4, 1.0, std)  # a constant channel: do not divide by ~0
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
