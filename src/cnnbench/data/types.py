"""The data a run trains on: ``ArraySplit`` (images + labels) and ``Dataset`` (three splits + facts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cnnbench.errors import DataError

if TYPE_CHECKING:
    from cnnbench.data.config import DataConfig

KINDS = ("digits", "natural")


@dataclass(frozen=True)
class ArraySplit:
    """One split held as arrays.

    Attributes:
        images: (N, C, H, W) uint8, possibly a read-only ``np.memmap``.
        labels: (N,) int64 class indices.
    """

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise DataError(
                f"ArraySplit images: expected a (N, C, H, W) uint8 array, got {self.images.dtype} {self.images.shape}"
            )
        if self.labels.ndim != 1 or len(self.labels) != len(self.images):
            raise DataError(
                f"ArraySplit labels: expected ({len(self.images)},) to match the images, got {self.labels.shape}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> ArraySplit:
        """The rows ``index`` (sorted first, so a memmap is read front to back), copied into memory."""
        index = np.sort(np.asarray(index, dtype=np.int64))
        return ArraySplit(np.ascontiguousarray(self.images[index]), self.labels[index].astype(np.int64))


@dataclass
class Dataset:
    """Train/val/test splits of one dataset plus what a report needs to say about it.

    Attributes:
        kind: ``digits`` (MNIST-like; affine, erasing, brightness, contrast augmentation) or
            ``natural`` (photos; random-resized-crop, flip, colour jitter).
        mean, std: per channel, in [0, 1] units, computed on the train split.
        source: the directory, file or URL the data came from.
        skipped: unreadable files, each ``{"path": ..., "reason": ...}``.
        notes: human-readable facts about how the data was found and split.
    """

    name: str
    train: ArraySplit
    val: ArraySplit
    test: ArraySplit
    classes: list[str]
    kind: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    split_file: str | None = None  # where the chosen split lists were saved (None: not saved)
    config: DataConfig | None = None  # what load_dataset loaded it with; None for a Dataset built by hand

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the stored images."""
        return tuple(int(v) for v in self.train.images.shape[1:])  # type: ignore[return-value]

    def info(self) -> dict[str, Any]:
        """The ``cnnbench data info --json`` object (also a run's ``data.json``)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "train_size": len(self.train),
            "val_size": len(self.val),
            "test_size": len(self.test),
            "num_classes": self.num_classes,
            "classes": list(self.classes),
            "image_shape": list(self.image_shape),
            "mean": [round(float(v), 6) for v in self.mean],
            "std": [round(float(v), 6) for v in self.std],
            "source": self.source,
            "skipped": list(self.skipped),
            "notes": list(self.notes),
            "split_file": self.split_file,
        }
