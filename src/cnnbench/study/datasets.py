"""The datasets of a study, loaded once per process and shared by every run that uses them."""

from __future__ import annotations

import dataclasses
from typing import Any

from cnnbench.engine.config import TrainConfig

_DATASETS: dict[tuple, Any] = {}


def dataset_for(cfg: TrainConfig):
    """Datasets are loaded once per process and shared by every run that uses them."""
    from cnnbench.data import load_dataset

    key = tuple(sorted(dataclasses.asdict(cfg.data_config()).items()))
    if key not in _DATASETS:
        _DATASETS[key] = load_dataset(cfg.data_config())
    return _DATASETS[key]
