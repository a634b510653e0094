"""``metrics.csv`` and ``steps.csv``: their columns, their writers (the engine's logs) and their readers.

``metrics.csv`` has one row per validation pass (an epoch, or a ``--val-every-steps`` window);
``steps.csv`` a row every few optimiser steps. Both are small and rewritten atomically after every
pass, so a killed run leaves a whole file; readers take columns by name.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnbench.errors import ResultsError
from cnnbench.rundir.layout import RunFiles
from cnnbench.utils.io import atomic_write_text

# metrics.csv: one row per validation pass (MetricsLog), written by the engine, read by the report. New columns go
# last: readers take columns by name, and a file written before a column existed reads it as missing.
METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "epoch_time_s",
    "train_time_s",
    "batch_size",
    "step",  # optimiser steps done at the end of the epoch (places validation on a step axis)
)

# steps.csv: training figures every few optimiser steps (cnnbench.engine.runlog.step_log_interval),
# next to metrics.csv; no validation columns (validation rows are in metrics.csv).
STEP_COLUMNS = (
    "step",  # optimiser steps done
    "epoch",  # fractional epochs done (epoch index + batches done / batches per epoch)
    "train_loss",  # mean per-sample training loss over the steps since the previous row
    "train_acc",  # training accuracy over the same steps
    "lr",  # learning rate of the last of those steps
    "steps_averaged",  # how many steps the row averages (the interval, fewer after an epoch end)
    "batch_size",
)


class MetricsLog:
    """Rows of metrics.csv, rewritten atomically after every validation pass (a few KB)."""

    columns: tuple[str, ...] = METRIC_COLUMNS
    key = "epoch"  # the column ``resume`` cuts on

    def __init__(self, path: str | os.PathLike[str], rows: list[dict[str, Any]] | None = None) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = list(rows or [])
        self.skipped_rows = 0  # unreadable rows dropped by ``resume``

    @classmethod
    def resume(cls, path: str | os.PathLike[str], upto_epoch: int | float, upto_step: int | None = None) -> MetricsLog:
        """Rows up to the checkpoint's — later rows were never checkpointed.

        Rows are cut on their ``step`` when they have one and ``upto_step`` is given (a --val-every-steps
        pass inside an epoch has a fractional epoch), else on ``key`` ≤ ``upto_epoch``.
        """
        rows: list[dict[str, Any]] = []
        skipped = 0
        if Path(path).exists():
            with Path(path).open(newline="", encoding="utf-8", errors="replace") as f:
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
    """Rows of steps.csv (training figures every ``step_log_interval`` steps), rewritten after every chunk
    of training (an epoch, or the steps to the next validation pass or checkpoint).

    ``resume(path, upto_step)`` keeps the rows up to the checkpoint's step.
    """

    columns = STEP_COLUMNS
    key = "step"


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


@dataclass
class EpochTable:
    """``metrics.csv`` as columns: one float array (E,) per name in METRIC_COLUMNS; NaN where absent."""

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns["epoch"])

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def has(self, name: str) -> bool:
        return name in self.columns and bool(np.isfinite(self.columns[name]).any())


def read_metrics(run_dir: Path) -> EpochTable | None:
    """``metrics.csv``, one row per epoch; unknown columns are ignored, missing ones are NaN."""
    columns = _read_columns(RunFiles(run_dir).metrics, METRIC_COLUMNS)
    if columns is None:
        return None
    if len(columns["epoch"]) and not np.isfinite(columns["epoch"]).all():
        columns["epoch"] = np.arange(1, len(columns["epoch"]) + 1, dtype=np.float64)
    return EpochTable(columns)


@dataclass
class StepTable(EpochTable):
    """``steps.csv`` as columns (STEP_COLUMNS): training figures every few optimiser steps; ``epoch`` is fractional."""

    def __len__(self) -> int:
        return len(self.columns["step"])


def read_steps(run_dir: Path) -> StepTable | None:
    """``steps.csv`` (runs trained since it exists), rows with no step number dropped; None when absent."""
    columns = _read_columns(RunFiles(run_dir).steps, STEP_COLUMNS)
    if columns is None:
        return None
    keep = np.isfinite(columns["step"])
    return StepTable({name: values[keep] for name, values in columns.items()})


LR_FIND_COLUMNS = ("step", "lr", "loss", "smoothed_loss", "picked")  # lr_find.csv (cnnbench.engine.lr_find)


@dataclass
class LrFindCurve:
    """``lr_find.csv``: the range test of a run trained with ``--lr auto`` (one value per step)."""

    lr: np.ndarray  # (S,)
    loss: np.ndarray  # (S,)
    smoothed: np.ndarray  # (S,)
    picked: int | None  # index of the picked step, None when the file marks none

    @property
    def picked_lr(self) -> float | None:
        return None if self.picked is None else float(self.lr[self.picked])


def read_lr_find(run_dir: Path) -> LrFindCurve | None:
    """``lr_find.csv``; None when the run did not use ``--lr auto``."""
    columns = _read_columns(RunFiles(run_dir).lr_find, LR_FIND_COLUMNS, strict=False)
    if columns is None:
        return None
    keep = np.isfinite(columns["lr"]) & (columns["lr"] > 0)
    marked = np.flatnonzero(columns["picked"][keep] == 1)
    picked = int(marked[0]) if marked.size else None
    return LrFindCurve(columns["lr"][keep], columns["loss"][keep], columns["smoothed_loss"][keep], picked)


def _read_columns(path: Path, names: tuple[str, ...], strict: bool = True) -> dict[str, np.ndarray] | None:
    """The columns ``names`` of a CSV file, NaN where a cell is empty.

    Args:
        strict: every other cell must be a finite number in its column's range (metrics.csv, steps.csv:
            a curve is never drawn from a damaged or hand-edited file); False: anything else is NaN
            (lr_find.csv, whose losses may really be infinite at the end of the ramp).
    """
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ResultsError(f"{path} is not a readable CSV file ({exc})") from exc
    if not strict:
        return {name: np.array([_float(row.get(name)) for row in rows], dtype=np.float64) for name in names}
    columns = {name: np.full(len(rows), math.nan, dtype=np.float64) for name in names}
    for i, row in enumerate(rows):
        for name in names:
            columns[name][i] = _cell(path, i + 2, name, row.get(name))  # line 1 is the header
    return columns


def _cell(path: Path, line: int, name: str, value: Any) -> float:
    """One number of metrics.csv / steps.csv: empty is missing (NaN); anything else must be a finite
    number in the column's range, or the file is named as damaged."""
    from cnnbench.rundir.summary import FIGURE_LIMIT

    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not math.isfinite(number):
        raise ResultsError(f"{path}, line {line}: {name} {value!r}: expected a finite number or nothing")
    fraction = name.endswith("_acc")
    low = -FIGURE_LIMIT if "loss" in name else 0.0  # a loss may be any finite number; times and counts not
    if not low <= number < FIGURE_LIMIT or (fraction and number > 1):
        expected = "a fraction between 0 and 1" if fraction else f"a number from {low:g} to below {FIGURE_LIMIT:.0e}"
        raise ResultsError(f"{path}, line {line}: {name} {value!r}: expected {expected}")
    return number


def _float(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out
