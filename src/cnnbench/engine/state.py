"""The state of a run being trained: ``RunState`` (what a checkpoint saves) and ``FitRun`` (what ``fit``
carries from the start of a run to its end).

``RunState`` changes only through its methods, called by the loop in the order of the algorithm
(train a chunk → ``add_chunk``; a validation pass → ``close_window``, ``reach_target``); its fields
are the ``run_state`` of every checkpoint, so their names are a file format (a resumed run reads them).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cnnbench.engine.loop import EpochPartial, EpochStats
from cnnbench.engine.schedules import build_schedule_spec, lr_at

if TYPE_CHECKING:
    from cnnbench.engine.early_stopping import EarlyStopping
    from cnnbench.engine.runlog import Progress, TensorBoardLog
    from cnnbench.engine.schedules import PlateauState, ScheduleSpec
    from cnnbench.engine.trainer import Trainer
    from cnnbench.models import ModelSummary
    from cnnbench.rundir import RunFiles
    from cnnbench.rundir.tables import MetricsLog, StepLog


@dataclass
class RunState:
    """Everything about a run's progress that is not a tensor; saved in every checkpoint."""

    batch_size: int
    lr: float  # base lr now (halved with the batch after an out-of-memory retry)
    epoch: int = 0  # epochs finished
    step: int = 0  # optimiser steps taken
    batch_in_epoch: int = 0  # > 0 inside an epoch (a stop signal, --val-every-steps, --checkpoint-every-steps)
    partial: dict[str, Any] | None = None  # EpochPartial: training sums since the last validation pass
    train_time_s: float = 0.0
    total_steps: int | None = None  # planned steps: --max-steps, or fixed by the time-budget probe
    epochs_to_target: float | None = None  # epochs (fractional with --val-every-steps) at the first pass ≥ target
    time_to_target_s: float | None = None
    notes: list[str] = field(default_factory=list)
    images: int = 0  # training images seen (summed over ranks), the cost axis of time-to-target
    lr_find: dict[str, Any] | None = None  # --lr auto: what the range test picked (summary.json's lr_find)
    evaluations: int = 0  # validation passes done
    steps_to_target: int | None = None
    images_to_target: int | None = None

    def window(self) -> EpochPartial:
        """Training sums since the last validation pass (saved in checkpoints as ``partial``)."""
        return EpochPartial(**self.partial) if self.partial else EpochPartial()

    def add_chunk(self, stats: EpochStats, epoch: int, train_time_before_s: float) -> None:
        """A chunk of training, trained from epoch ``epoch``: its steps, images, time and sums."""
        self.step += stats.steps
        self.images += stats.samples
        self.train_time_s = train_time_before_s + stats.seconds
        window = self.window()
        self.partial = dataclasses.asdict(
            EpochPartial(
                loss_sum=window.loss_sum + stats.loss_sum,
                correct=window.correct + stats.correct,
                samples=window.samples + stats.samples,
                seconds=window.seconds + stats.seconds,
                last_lr=stats.last_lr,
            )
        )
        if stats.stopped_at_batch is None and stats.diverged_step is None:
            self.epoch, self.batch_in_epoch = epoch + 1, 0
        elif stats.stopped_at_batch is not None:
            self.batch_in_epoch = stats.stopped_at_batch

    def close_window(self) -> EpochPartial:
        """A validation pass: the window it closes (its sums), and a new one opened."""
        window = self.window()
        self.partial = None
        self.evaluations += 1
        return window

    def reach_target(self, epochs: float) -> None:
        """The first validation pass at or above the target accuracy: what it cost to get there."""
        self.epochs_to_target, self.time_to_target_s = epochs, self.train_time_s
        self.steps_to_target, self.images_to_target = self.step, self.images

    def epochs_done(self, steps_per_epoch: int) -> float:
        """Epochs trained, fractional inside an epoch (a run cut by --max-steps, a --val-every-steps pass)."""
        return self.epoch + self.batch_in_epoch / max(1, steps_per_epoch)

    def work_done(self, epochs: int) -> bool:
        """The planned work ran: ``epochs`` epochs, or the fixed number of steps (--max-steps, a time budget)."""
        if self.total_steps is not None and self.step >= self.total_steps:
            return True
        return self.epoch >= epochs


@dataclass
class RunLogs:
    """What a run records while it trains: metrics.csv, steps.csv, TensorBoard, the progress bar."""

    metrics: MetricsLog
    steps: StepLog
    tb: TensorBoardLog
    progress: Progress


@dataclass
class FitRun:
    """One call of ``fit`` from its start to its end: the objects, the state and the records of the run.

    Built by ``engine.setup.start_run``; the loop (``engine.train_loop``), the retry after an
    out-of-memory error (``engine.oom``) and the results (``engine.results``) take it in turn.
    """

    trainer: Trainer
    files: RunFiles
    state: RunState
    plateau: PlateauState
    early: EarlyStopping
    logs: RunLogs
    model_summary: ModelSummary  # params, size, FLOPs (summary.json quotes them)
    steps_per_epoch: int = 0  # at the current batch size
    spec: ScheduleSpec | None = None  # the lr schedule, a function of the step
    best_pending: dict[str, Any] | None = None  # best weights not yet on disk (written with last)
    last_saved_step: int | None = None  # the step of checkpoint/last.pt (None: none written by this call)
    range_test_stopped: bool = False  # a stop signal ended --lr auto's range test: nothing is trained

    @property
    def cfg(self):
        return self.trainer.cfg

    @property
    def main(self) -> bool:
        return self.trainer.dist.is_main

    def plan_schedule(self) -> None:
        """Steps per epoch at the current batch size, and the lr schedule over the planned steps."""
        self.steps_per_epoch = len(self.trainer.train_loader)
        self.spec = build_schedule_spec(
            self.cfg.replace(lr=self.state.lr), self.steps_per_epoch, self.state.total_steps
        )

    def lr_for_step(self, step: int) -> float:
        return lr_at(step, self.spec, self.plateau.scale)

    def epochs_planned(self) -> int:
        if self.state.total_steps is None:
            return self.cfg.epochs
        return min(self.cfg.epochs, math.ceil(self.state.total_steps / self.steps_per_epoch))

    def epochs_done(self) -> float:
        return self.state.epochs_done(self.steps_per_epoch)

    def work_done(self) -> bool:
        return self.state.work_done(self.cfg.epochs)

    def say(self, message: str) -> None:
        say(self.trainer, message)


def say(trainer: Trainer, message: str) -> None:
    """A line for the person watching, on stderr (rank 0, not --json; never on stdout, which --json
    keeps for its object)."""
    if trainer.quiet or not trainer.dist.is_main or sys.stderr is None:  # no stderr (fd 2 closed at start-up)
        return
    from rich.console import Console

    # soft wrap off a terminal: a log file gets the final line whole, not folded at 80 columns
    Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty()).print(message)
