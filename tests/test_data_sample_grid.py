"""The samples figure: one row per class, real pixels in the right cells."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cnnbench.errors import CnnbenchError
from cnnbench.report.sample_grid import draw_sample_grid


def test_grid_png_rows_per_class(tmp_path):
    labels = np.repeat(np.arange(3), 5)
    images = np.zeros((15, 1, 12, 12), np.uint8)
    images[labels == 1] = 128  # class 1 gray, classes 0 and 2 black
    path = draw_sample_grid(images, labels, ["a", "b", "c"], tmp_path / "g.png", per_class=4)
    assert path == tmp_path / "g.png"
    with Image.open(path) as img:
        assert img.format == "PNG"
        arr = np.asarray(img.convert("L")).astype(int)
    black = np.flatnonzero((arr < 30).sum(axis=1) > 20)
    gray = np.flatnonzero((abs(arr - 128) < 20).sum(axis=1) > 20)
    # rows of the figure: black tiles (a), then gray tiles (b), then black tiles (c)
    assert len(gray) and black.min() < gray.min() and gray.max() < black.max()
    gray_cols = np.flatnonzero((abs(arr - 128) < 20).sum(axis=0) > 5)
    assert len(gray_cols) > 0


def test_rgb_and_class_cap(tmp_path):
    labels = np.arange(30) % 30
    images = np.random.default_rng(0).integers(0, 255, (30, 3, 16, 16), dtype=np.uint8)
    path = draw_sample_grid(images, labels, [f"class{i}" for i in range(30)], tmp_path / "g.png", max_classes=5)
    with Image.open(path) as img:
        assert img.mode in ("RGB", "RGBA") and img.size[1] < img.size[0] * 2


def test_bad_inputs():
    with pytest.raises(CnnbenchError, match="10 images but 9 labels"):
        draw_sample_grid(np.zeros((10, 1, 4, 4), np.uint8), np.zeros(9), ["a"], "x.png")
    with pytest.raises(CnnbenchError, match=r"expected images \(N, C, H, W\) with 1 or 3 channels"):
        draw_sample_grid(np.zeros((10, 2, 4, 4, 1), np.uint8), np.zeros(10), ["a"], "x.png")
