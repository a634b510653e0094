"""Learning-rate schedules as pure functions of the step, plus the one stateful rule (plateau).

``lr_at(step, spec)`` gives the learning rate of any step without replaying the run, which is
what makes resume exact and the curves testable. Warm-up is linear from ``warmup_start_lr`` to
the peak and precedes every schedule (the MNIST study warmed up for 5 epochs from 1e-6).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ScheduleSpec:
    """What ``lr_at`` needs; built from a TrainConfig and the number of steps per epoch."""

    name: str  # none | cosine | plateau | onecycle | step
    base_lr: float  # peak lr
    total_steps: int  # steps of the whole run (epochs × steps per epoch, or the budget)
    steps_per_epoch: int
    warmup_steps: int = 0
    warmup_start_lr: float = 1e-6
    min_lr: float = 0.0
    step_size_epochs: int = 10
    step_gamma: float = 0.1
    onecycle_pct_start: float = 0.3
    onecycle_div_factor: float = 25.0


def lr_at(step: int, spec: ScheduleSpec, plateau_scale: float = 1.0) -> float:
    """Learning rate for optimiser step ``step`` (0-based).

    Args:
        plateau_scale: the factor accumulated by PlateauState (``factor ** reductions``); only the
            plateau schedule uses it.
    """
    if spec.name == "onecycle":
        return _onecycle(step, spec)
    if step < spec.warmup_steps:
        frac = (step + 1) / spec.warmup_steps
        return spec.warmup_start_lr + frac * (spec.base_lr - spec.warmup_start_lr)
    t = step - spec.warmup_steps
    span = max(1, spec.total_steps - spec.warmup_steps)
    if spec.name == "cosine":
        progress = min(1.0, t / span)
        return spec.min_lr + 0.5 * (spec.base_lr - spec.min_lr) * (1 + math.cos(math.pi * progress))
    if spec.name == "step":
        return spec.base_lr * spec.step_gamma ** (t // (spec.step_size_epochs * spec.steps_per_epoch))
    if spec.name == "plateau":
        return max(spec.min_lr, spec.base_lr * plateau_scale)
    return spec.base_lr  # none


def _onecycle(step: int, spec: ScheduleSpec) -> float:
    """torch's OneCycleLR (cosine annealing): up from base/div to base, then down to min_lr."""
    start = spec.base_lr / spec.onecycle_div_factor
    peak_step = max(1, int(spec.onecycle_pct_start * spec.total_steps))
    if step < peak_step:
        return start + (spec.base_lr - start) * (1 - math.cos(math.pi * step / peak_step)) / 2
    progress = min(1.0, (step - peak_step) / max(1, spec.total_steps - peak_step))
    end = spec.min_lr if spec.min_lr > 0 else start / 1e4
    return end + (spec.base_lr - end) * (1 + math.cos(math.pi * progress)) / 2


@dataclass
class PlateauState:
    """Reduce-on-plateau on the monitored validation figure, with a cap on the number of reductions.

    ``mode`` "max" watches validation accuracy, "min" validation loss (the MNIST study's rule:
    torch's ReduceLROnPlateau on val loss, whose default relative threshold of 1e-4 is used here
    too: a loss must fall below best × (1 − 1e-4) to count as better). Decisions are taken once
    per epoch, after validation, and only once warm-up has ended.
    """

    factor: float = 0.1
    patience: int = 3
    max_reductions: int = 3
    best: float = -math.inf
    bad_epochs: int = 0
    reductions: int = 0
    mode: str = "max"

    def __post_init__(self) -> None:
        if self.mode == "min" and self.best == -math.inf:
            self.best = math.inf

    @property
    def scale(self) -> float:
        return self.factor**self.reductions

    def _better(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best * (1 - 1e-4) if self.best > 0 else value < self.best
        return value > self.best

    def update(self, value: float) -> bool:
        """Record one epoch's monitored value; returns True when the lr was just reduced."""
        if self._better(value):
            self.best = value
            self.bad_epochs = 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs > self.patience and self.reductions < self.max_reductions:
            self.reductions += 1
            self.bad_epochs = 0
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # checkpoints written before the rule followed --monitor always watched accuracy: resume them so
        self.mode = "max"
        for key, value in state.items():
            setattr(self, key, value)


def build_schedule_spec(cfg: Any, steps_per_epoch: int, total_steps: int | None = None) -> ScheduleSpec:
    """ScheduleSpec from a TrainConfig; ``total_steps`` overrides epochs × steps (time budgets).

    Warm-up never takes more than a fifth of the run: a 5-epoch warm-up in a run cut to 7 steps by
    its time budget would leave it no step at the peak learning rate.
    """
    total = total_steps if total_steps is not None else cfg.epochs * steps_per_epoch
    return ScheduleSpec(
        name=cfg.schedule,
        base_lr=cfg.lr,
        total_steps=max(1, total),
        steps_per_epoch=max(1, steps_per_epoch),
        warmup_steps=min(total // 5, int(round(cfg.warmup_epochs * steps_per_epoch))),
        warmup_start_lr=cfg.warmup_start_lr,
        min_lr=cfg.min_lr,
        step_size_epochs=cfg.step_size,
        step_gamma=cfg.step_gamma,
    )
