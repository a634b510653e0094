"""Datasets, splits, the decode-once cache, device-resident batches and batched augmentation.

``DataConfig``/``load_dataset`` need only NumPy (and Pillow for image folders); ``DeviceLoader``
and ``build_augmentation`` need torch and are imported on first use, so that ``cnnbench data list``
and the decode worker processes never pay for importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnnbench.data.catalog import list_datasets
from cnnbench.data.config import DataConfig
from cnnbench.data.load import load_dataset, resolve_default_digits
from cnnbench.data.types import ArraySplit, Dataset

if TYPE_CHECKING:
    from cnnbench.data.augment import Augment, DigitsAugment, NaturalAugment, build_augmentation
    from cnnbench.data.loader import DeviceLoader, Normalize, Shard

_LAZY = {
    "DeviceLoader": "cnnbench.data.loader",
    "Normalize": "cnnbench.data.loader",
    "Shard": "cnnbench.data.loader",
    "build_augmentation": "cnnbench.data.augment",
    "Augment": "cnnbench.data.augment",
    "DigitsAugment": "cnnbench.data.augment",
    "NaturalAugment": "cnnbench.data.augment",
}

__all__ = [
    "ArraySplit",
    "Augment",
    "DataConfig",
    "Dataset",
    "DeviceLoader",
    "DigitsAugment",
    "NaturalAugment",
    "Normalize",
    "Shard",
    "build_augmentation",
    "list_datasets",
    "load_dataset",
    "resolve_default_digits",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cnnbench.data' has no attribute {name!r}")
