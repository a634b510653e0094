"""The dataset-samples figure (the MNIST study's "Figure 1"): a few images of every class, one row per class."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnbench.errors import CnnbenchError
from cnnbench.utils.io import atomic_open


def _hwc(images: np.ndarray) -> np.ndarray:
    """(N, C, H, W), (N, H, W) or (N, H, W, C) -> (N, H, W, C) uint8 with C in {1, 3}."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    elif images.ndim == 4 and images.shape[1] in (1, 3) and images.shape[-1] not in (1, 3):
        images = images.transpose(0, 2, 3, 1)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise CnnbenchError(f"sample grid: expected images (N, C, H, W) with 1 or 3 channels, got {images.shape}")
    if images.dtype != np.uint8:
        images = np.clip(images * (255.0 if images.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return images


def draw_sample_grid(
    images: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    path: str | Path,
    per_class: int = 8,
    max_classes: int = 20,
    seed: int | None = 0,
    title: str | None = None,
) -> Path:
    """Write a PNG with up to ``per_class`` images of each class, one row per class (Agg backend).

    Args:
        images: (N, C, H, W) (or (N, H, W)) uint8 images.
        labels: (N,) class indices into ``classes``.
        per_class: images per row; classes with fewer show what they have.
        max_classes: rows at most (the first classes in order); the title says how many are left out.
        seed: picks which images of a class are shown (None: the first ones).

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    imgs = _hwc(images)
    labels = np.asarray(labels)
    if len(imgs) != len(labels):
        raise CnnbenchError(f"sample grid: {len(imgs)} images but {len(labels)} labels")
    rng = np.random.default_rng(seed) if seed is not None else None
    shown = [c for c in range(len(classes)) if np.any(labels == c)][:max_classes]
    if not shown:
        raise CnnbenchError("sample grid: no image has a label in range of the class list")
    n, h, w, ch = len(shown), imgs.shape[1], imgs.shape[2], imgs.shape[3]
    pad = max(1, h // 14)
    # One mosaic array and one imshow: far faster than an Axes per image (257 classes × 8).
    mosaic = np.full((n * (h + pad) + pad, per_class * (w + pad) + pad, ch), 255, np.uint8)
    for row, c in enumerate(shown):
        idx = np.flatnonzero(labels == c)
        if rng is not None and len(idx) > per_class:
            idx = np.sort(rng.choice(idx, per_class, replace=False))
        for col, i in enumerate(idx[:per_class]):
            top, left = pad + row * (h + pad), pad + col * (w + pad)
            mosaic[top : top + h, left : left + w] = imgs[i]
    cell = 0.55 if h <= 64 else 0.9  # inches per image
    fig = Figure(figsize=(1.6 + per_class * cell, 0.6 + n * cell), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.22 if max(len(classes[c]) for c in shown) > 8 else 0.12, 0.02, 0.76, 0.9))
    ax.imshow(mosaic[..., 0] if ch == 1 else mosaic, cmap="gray" if ch == 1 else None, vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([pad + r * (h + pad) + h / 2 for r in range(n)], [str(classes[c]) for c in shown], fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    left_out = len([c for c in range(len(classes)) if np.any(labels == c)]) - n
    heading = title or "Samples"
    if left_out > 0:
        heading += f" (first {n} of {n + left_out} classes)"
    ax.set_title(heading, fontsize=10)
    path = Path(path)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    return path
