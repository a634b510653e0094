"""Early stopping on validation accuracy or loss."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class EarlyStopping:
    """Stop after ``patience`` validation passes without an improvement larger than ``min_delta``.

    A pass is an epoch, or with ``--val-every-steps`` a window of that many steps (as Lightning's
    ``EarlyStopping`` counts validation checks, not epochs).

    ``patience=None`` never stops but still tracks the best epoch, which selects the checkpoint
    used for the test pass.
    """

    patience: int | None = None
    mode: str = "max"  # max for accuracy, min for loss
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: float = 0  # fractional for a --val-every-steps pass inside an epoch
    bad_epochs: int = 0  # validation passes without improvement (epochs, or --val-every-steps windows)
    best_step: int | None = None  # optimiser steps done at the best pass

    def improved(self, value: float) -> bool:
        if value is None or math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, value: float, epoch: float, step: int | None = None) -> bool:
        """Record a validation pass's monitored value; returns True if it is the new best."""
        if self.improved(value):
            self.best, self.best_epoch, self.bad_epochs, self.best_step = value, epoch, 0, step
            return True
        self.bad_epochs += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)
