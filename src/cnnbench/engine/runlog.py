"""Records of a run: metrics.csv (per epoch), steps.csv (every few steps), TensorBoard events, a progress bar."""

from __future__ import annotations

import csv
import io
import math
import sys
from pathlib import Path
from typing import Any

from cnnbench.utils.io import atomic_write_text
from cnnbench.utils.schema import METRIC_COLUMNS, STEP_COLUMNS


class MetricsLog:
    """Rows of metrics.csv, rewritten atomically after every epoch (a few KB)."""

    columns: tuple[str, ...] = METRIC_COLUMNS
    key = "epoch"  # the column ``resume`` cuts on

    def __init__(self, path: Path, rows: list[dict[str, Any]] | None = None) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = list(rows or [])
        self.skipped_rows = 0  # unreadable rows dropped by ``resume``

    @classmethod
    def resume(cls, path: Path, upto_epoch: int | float, upto_step: int | None = None) -> MetricsLog:
        """Rows up to the checkpoint's — later rows were never checkpointed.

        Rows are cut on their ``step`` when they have one and ``upto_step`` is given (a --val-every-steps
        pass inside an epoch has a fractional epoch), else on ``key`` ≤ ``upto_epoch``.
        """
        rows: list[dict[str, Any]] = []
        skipped = 0
        if path.exists():
            with path.open(newline="", encoding="utf-8", errors="replace") as f:
                for row in csv.DictReader(f):
                    # a damaged row (a hand edit, a disk error) is dropped, not fatal: every epoch's
                    # figures up to the checkpoint are rewritten from the rows that parse
                    try:
                        key = float(row.get(cls.key) or "")
                        step = float(row["step"]) if upto_step is not None and row.get("step") else None
                        if not math.isfinite(key) or (step is not None and not math.isfinite(step)):
                            raise ValueError
                    except (ValueError, OverflowError):
                        skipped += 1
                        continue
                    if (step <= upto_step) if step is not None else (key <= upto_epoch):
                        rows.append({k: _parse(v) for k, v in row.items() if k in cls.columns})
        log = cls(path, rows)
        log.skipped_rows = skipped
        return log

    def append(self, row: dict[str, Any]) -> None:
        self.extend([row])

    def extend(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend({k: row.get(k) for k in self.columns} for row in rows)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: _fmt(v) for k, v in r.items()})
        atomic_write_text(self.path, buf.getvalue())


class StepLog(MetricsLog):
    """Rows of steps.csv (training figures every ``step_log_interval`` steps), rewritten after every epoch.

    ``resume(path, upto_step)`` keeps the rows up to the checkpoint's step.
    """

    columns = STEP_COLUMNS
    key = "step"


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


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return "" if v is None else v


def _parse(v: str | None) -> Any:
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v else f


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
