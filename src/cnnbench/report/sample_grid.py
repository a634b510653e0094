"""The dataset figures: a few images of every class (the MNIST study's "Figure 1"), one row per class,
and training images next to augmented draws of each (its "Figure 32", ``draw_augmentation_grid``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnbench.data.preview import AugmentationPreview
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


def _mosaic(
    imgs: np.ndarray,
    labels: np.ndarray,
    shown: Sequence[int],
    per_class: int,
    pad: int,
    rng: np.random.Generator | None,
) -> np.ndarray:
    """One white-padded image: a row per class of ``shown``, up to ``per_class`` images each."""
    n, h, w, ch = len(shown), imgs.shape[1], imgs.shape[2], imgs.shape[3]
    # One mosaic array and one imshow: far faster than an Axes per image (257 classes × 8).
    mosaic = np.full((n * (h + pad) + pad, per_class * (w + pad) + pad, ch), 255, np.uint8)
    for row, c in enumerate(shown):
        idx = np.flatnonzero(labels == c)
        if rng is not None and len(idx) > per_class:
            idx = np.sort(rng.choice(idx, per_class, replace=False))
        for col, i in enumerate(idx[:per_class]):
            top, left = pad + row * (h + pad), pad + col * (w + pad)
            mosaic[top : top + h, left : left + w] = imgs[i]
    return mosaic


def _frameless(ax) -> None:
    """No tick marks and no frame: the mosaic's labels stand alone."""
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _save(fig, path: str | Path) -> Path:
    """The figure as a PNG at ``path``, written atomically."""
    path = Path(path)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png")
    return path


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
    n, h, ch = len(shown), imgs.shape[1], imgs.shape[3]
    pad = max(1, h // 14)
    mosaic = _mosaic(imgs, labels, shown, per_class, pad, rng)
    cell = 0.55 if h <= 64 else 0.9  # inches per image
    fig = Figure(figsize=(1.6 + per_class * cell, 0.6 + n * cell), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.22 if max(len(classes[c]) for c in shown) > 8 else 0.12, 0.02, 0.76, 0.9))
    ax.imshow(mosaic[..., 0] if ch == 1 else mosaic, cmap="gray" if ch == 1 else None, vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([pad + r * (h + pad) + h / 2 for r in range(n)], [str(classes[c]) for c in shown], fontsize=8)
    _frameless(ax)
    left_out = len([c for c in range(len(classes)) if np.any(labels == c)]) - n
    heading = title or "Samples"
    if left_out > 0:
        heading += f" (first {n} of {n + left_out} classes)"
    ax.set_title(heading, fontsize=10)
    return _save(fig, path)


def draw_augmentation_grid(preview: AugmentationPreview, path: str | Path, title: str | None = None) -> Path:
    """Write a PNG: one row per image, the original on the left, then each augmented draw (Agg backend).

    Cells are as large as the larger of the stored and the augmented size, images centred, so a
    256 px photo and its 224 px crops line up. The column headings say which is which.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    originals = _hwc(preview.originals)  # (R, H, W, C)
    r, d = preview.rows, preview.draws
    flat = _hwc(preview.augmented.reshape(r * d, *preview.augmented.shape[2:]))  # (R·D, h, w, C)
    drawn = flat.reshape(r, d, *flat.shape[1:])  # (R, D, h, w, C)
    ch = originals.shape[-1]
    if drawn.shape[-1] != ch:
        raise CnnbenchError(f"augmentation grid: {ch}-channel originals but {drawn.shape[-1]}-channel draws")
    cell_h = max(originals.shape[1], drawn.shape[2])
    cell_w = max(originals.shape[2], drawn.shape[3])
    pad = max(1, cell_h // 14)
    gap = 3 * pad  # between the original and its draws
    cols = 1 + d
    mosaic = np.full((r * (cell_h + pad) + pad, cols * (cell_w + pad) + pad + gap, ch), 255, np.uint8)

    def put(img: np.ndarray, row: int, col: int) -> None:
        top = pad + row * (cell_h + pad) + (cell_h - img.shape[0]) // 2
        left = pad + col * (cell_w + pad) + (gap if col else 0) + (cell_w - img.shape[1]) // 2
        mosaic[top : top + img.shape[0], left : left + img.shape[1]] = img

    for i in range(r):
        put(originals[i], i, 0)
        for j in range(d):
            put(drawn[i, j], i, 1 + j)
    cell = 0.55 if cell_h <= 64 else 0.9  # inches per image
    fig = Figure(figsize=(1.6 + cols * cell, 1.0 + r * cell), dpi=110)
    FigureCanvasAgg(fig)
    names = [preview.classes[c] if 0 <= c < len(preview.classes) else str(c) for c in preview.labels.tolist()]
    ax = fig.add_axes((0.22 if max(map(len, names)) > 8 else 0.12, 0.02, 0.76, 1 - 0.9 / (1.0 + r * cell)))
    ax.imshow(mosaic[..., 0] if ch == 1 else mosaic, cmap="gray" if ch == 1 else None, vmin=0, vmax=255)
    centres = [pad + cell_w / 2] + [pad + gap + c * (cell_w + pad) + cell_w / 2 for c in range(1, cols)]
    ax.set_xticks(centres, ["original"] + [f"draw {j + 1}" for j in range(d)], fontsize=7)
    ax.xaxis.tick_top()
    ax.set_yticks([pad + i * (cell_h + pad) + cell_h / 2 for i in range(r)], names, fontsize=8)
    _frameless(ax)
    ax.set_title(title or f"{preview.dataset}: augmentation (seed {preview.seed})", fontsize=10)
    return _save(fig, path)
