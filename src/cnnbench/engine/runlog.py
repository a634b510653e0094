"""What a run shows while it trains: TensorBoard events, a progress bar, and the rows of steps.csv.

The CSV files themselves (metrics.csv, steps.csv) are written by ``cnnbench.rundir.tables``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any


def step_log_interval(steps_per_epoch: int, planned_steps: int) -> int:
    """Optimiser steps between two rows of steps.csv.

    A tenth of an epoch, or of the run when it is shorter than an epoch, and never more than about
    1,000 rows in all: the quick preset's 40-step runs get a row every 4 steps (10 points, warm-up
    visible), MNIST at batch 64 (844 steps per epoch) every 84 steps, and a 200-epoch run of 844 steps
    every 168 steps (~1,000 rows, ~60 KB, rewritten once per epoch). A fixed interval would give a
    40-step run too few points or a long run a 5,000-row file.
    """
    return max(1, min(steps_per_epoch, planned_steps) // 10, planned_steps // 1000)


def step_rows(points: list[Any], epoch: int, steps_per_epoch: int, batch_size: int) -> list[dict[str, Any]]:
    """``StepPoint``s of one epoch (cnnbench.engine.loop) -> steps.csv rows."""
    return [
        {
            "step": p.step,
            "epoch": epoch + p.batch / max(1, steps_per_epoch),
            "train_loss": p.loss,
            "train_acc": p.accuracy,
            "lr": p.lr,
            "steps_averaged": p.steps,
            "batch_size": batch_size,
        }
        for p in points
    ]


class TensorBoardLog:
    """TensorBoard scalars: per epoch under ``tb/``, per optimiser step under ``tb/steps/``.

    Two writers because their x axes differ (epochs, steps) and a resume purges each by its own
    (``purge_step``: the next epoch; ``purge_global_step``: the next step). Silently absent when
    tensorboard is not installed.
    """

    def __init__(
        self,
        log_dir: Path,
        enabled: bool = True,
        purge_step: int | None = None,
        purge_global_step: int | None = None,
    ) -> None:
        self.writer = None
        self.step_writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # pragma: no cover - tensorboard is a dependency
                return
            self.writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
            self.step_writer = SummaryWriter(log_dir=str(log_dir / "steps"), purge_step=purge_global_step)

    def steps(self, rows: list[dict[str, Any]]) -> None:
        """steps.csv rows as scalars against the global optimiser step (``loss/train`` etc. under tb/steps)."""
        if self.step_writer is None or not rows:
            return
        for row in rows:
            for key, tag in (("train_loss", "loss/train"), ("train_acc", "accuracy/train"), ("lr", "lr")):
                value = row.get(key)
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    self.step_writer.add_scalar(tag, value, int(row["step"]))
        self.step_writer.flush()

    def epoch(self, row: dict[str, Any]) -> None:
        """One validation pass: against the epoch (whole epochs only) and, validation figures, against the step."""
        if self.writer is None:
            return
        if row.get("step") is not None and self.step_writer is not None:
            for key, tag in (("val_loss", "loss/val"), ("val_acc", "accuracy/val")):
                value = row.get(key)
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    self.step_writer.add_scalar(tag, value, int(row["step"]))
            self.step_writer.flush()
        if not float(row["epoch"]).is_integer():
            return  # a --val-every-steps pass inside an epoch: the epoch axis keeps whole epochs
        step = int(row["epoch"])
        for key, tag in (
            ("train_loss", "loss/train"),
            ("val_loss", "loss/val"),
            ("train_acc", "accuracy/train"),
            ("val_acc", "accuracy/val"),
            ("lr", "lr"),
            ("epoch_time_s", "time/epoch_s"),
        ):
            value = row.get(key)
            if value is not None and not (isinstance(value, float) and math.isnan(value)):
                self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def text(self, tag: str, text: str) -> None:
        if self.writer is not None:
            self.writer.add_text(tag, text)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.step_writer is not None:
            self.step_writer.close()


class Progress:
    """A rich progress bar on stderr (batches, ETA, live loss); quiet when not on a terminal."""

    def __init__(self, enabled: bool, description: str, lines: bool = False) -> None:
        self.enabled = enabled and sys.stderr is not None and sys.stderr.isatty()
        self._progress = None
        self._task = None
        self.description = description
        # without a terminal (a Slurm log, nohup, CI) one plain line per epoch, as Lightning and timm log
        self.lines = lines

    def start_epoch(self, epoch: int, epochs: int, total_batches: int, done: int = 0) -> None:
        if not self.enabled:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        if self._progress is None:
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                transient=True,
            )
            self._progress.start()
        self._task = self._progress.add_task(
            f"{self.description} epoch {epoch + 1}/{epochs}", total=total_batches, completed=done, info=""
        )

    def advance(self, info: str = "") -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, info=info)

    def end_epoch(self, line: str) -> None:
        """The bar of the part of the epoch just trained goes; ``line`` (if any) is printed."""
        if self._progress is not None and self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None
        self.print(line)

    def print(self, line: str) -> None:
        if not line:
            return
        if self._progress is not None:
            self._progress.console.print(line)
        elif self.lines and sys.stderr is not None:  # print(file=None) would write to stdout
            from rich.text import Text

            print(Text.from_markup(line).plain, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
