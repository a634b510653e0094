"""``summary.json``: what a run measured, typed, read and written by one class.

The engine writes it when a run ends (its last file: its presence says the run ended); a study writes
one for a run that failed before the engine could. The report, the study and ``cnnbench eval`` read it.
Torch-free: the report reads run directories on machines without a GPU stack.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnbench.errors import ResultsError
from cnnbench.rundir.files import read_json_file
from cnnbench.rundir.layout import RunFiles
from cnnbench.rundir.status import STATUS_OK
from cnnbench.utils.io import atomic_write_json

# The format of summary.json. Files written before the key existed (until 2026-12) have the same keys
# and no ``format``; the reader takes both.
SUMMARY_FORMAT = "cnnbench-summary-v1"
SUMMARY_FORMATS = (SUMMARY_FORMAT, None)


@dataclass(frozen=True)
class RunSummary:
    """A run directory's ``summary.json``, typed: what a finished (or failed) run measured.

    Written with :meth:`write` by ``cnnbench.engine.fit`` (which returns the same object as a dict) and
    by a study for a run that failed; read with :meth:`read`. Keys this class does not know (a newer
    writer) are kept in ``extra``, so reading and writing back loses nothing. Fractions are 0–1, times
    are seconds.
    """

    model: str
    dataset: str
    status: str  # a Status: completed, early_stopped, diverged, failed or interrupted (STATUS_OK: figures are final)
    error: str | None = None  # what went wrong, for any status but completed / early_stopped
    test_accuracy: float | None = None  # top-1 on the test split with the best checkpoint, once
    test_loss: float | None = None
    test_top5: float | None = None
    test_mean_class_accuracy: float | None = None
    best_val_accuracy: float | None = None  # the best epoch's validation accuracy (selects the checkpoint)
    train_accuracy: float | None = None  # at the best epoch, on augmented batches
    epochs_run: float | None = None  # fractional when the run ended inside an epoch (--max-steps, the target)
    best_epoch: float | None = None
    train_time_s: float | None = None  # training epochs only, evaluation excluded
    time_per_epoch_s: float | None = None
    target_accuracy: float | None = None
    epochs_to_target: float | None = None  # epochs trained at the first validation pass ≥ the target
    time_to_target_s: float | None = None  # train time (evaluation excluded) until that pass
    steps_to_target: int | None = None  # optimiser steps until that pass
    images_to_target: int | None = None  # training images until that pass (steps × batch, summed over ranks)
    test_time_s: float | None = None  # one pass over the test split at test_batch_size
    test_batch_size: int | None = None
    test_samples: int | None = None
    params: int | None = None
    size_mb: float | None = None  # fp32 state_dict, MiB
    flops: int | None = None  # per image at input_size, 2 x MACs
    input_size: int | None = None  # pixels per side the model saw
    schedule: str | None = None
    seed: int | None = None
    batch_size: int | None = None  # the batch actually trained with (after any OOM back-off)
    lr: float | None = None
    steps: int | None = None  # optimiser steps taken
    images: int | None = None  # training images seen
    evaluations: int | None = None  # validation passes (one per epoch, or per --val-every-steps window)
    best_step: int | None = None  # optimiser steps at the validation pass that selected the checkpoint
    lr_find: dict[str, Any] | None = None  # --lr auto: the range test's pick (lr, rule, steps, ...)
    device: dict[str, Any] | None = None  # cnnbench.utils.env.device_info
    world_size: int | None = None
    versions: dict[str, Any] | None = None  # python, torch, torchvision, timm, ...
    config_hash: str | None = None
    recipe_hash: str | None = None  # equal for runs of one recipe (cnnbench.rundir.recipe.recipe_hash)
    notes: list[str] = field(default_factory=list)
    format: str | None = SUMMARY_FORMAT  # None: a file written before summary.json had a format key
    extra: dict[str, Any] = field(default_factory=dict)  # keys of summary.json this class does not name

    @property
    def ok(self) -> bool:
        """Completed or early-stopped: the test figures are final and enter means."""
        return self.status in STATUS_OK

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSummary:
        """From a parsed summary.json.

        Raises:
            ResultsError: ``data`` is not an object with model, dataset and status, or is another format.
        """
        if not isinstance(data, Mapping):
            raise ResultsError(f"not a run summary: expected a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        missing = [k for k in ("model", "dataset", "status") if data.get(k) is None]
        if missing:
            raise ResultsError(f"not a run summary: {', '.join(missing)} missing")
        known = {k: v for k, v in data.items() if k in names}
        if known.get("notes") is None:
            known["notes"] = []
        known.setdefault("format", None)
        if known["format"] not in SUMMARY_FORMATS:
            raise ResultsError(f"format {known['format']!r}: expected {SUMMARY_FORMAT!r} (or none, before 2026-12)")
        _check_figures(known)
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})

    @classmethod
    def read(cls, run_dir: str | os.PathLike[str]) -> RunSummary:
        """``run_dir/summary.json``.

        Raises:
            ResultsError: naming the file when it is missing (the run has not ended), not JSON, or
                not a run summary.
        """
        path = RunFiles(run_dir).summary
        data = read_summary_json(run_dir)
        try:
            return cls.from_dict(data)
        except ResultsError as exc:
            raise ResultsError(f"{path}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """The summary.json object (``extra`` merged back in); ``format`` first, when the summary has one."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("extra", "format")}
        out["status"] = str(self.status)  # a Status member is written as its value
        head = {"format": self.format} if self.format is not None else {}
        return {**head, **out, **self.extra}

    def write(self, run_dir: str | os.PathLike[str]) -> Path:
        """``run_dir/summary.json``, written atomically. The only writer of the file: the engine writes it
        last (its presence says the run ended), a study writes it for a run that failed."""
        path = RunFiles(run_dir).summary
        values = {k: v for k, v in self.to_dict().items() if k != "format"}
        atomic_write_json(path, {"format": SUMMARY_FORMAT, **values})  # written now: today's format
        return path


def read_summary_json(run_dir: str | os.PathLike[str]) -> Any:
    """``run_dir/summary.json`` as the JSON value it holds, unchecked (``RunSummary.from_dict`` checks it):
    for readers that keep the keys exactly as written, such as the report's rows.

    Raises:
        ResultsError: naming the file when it is missing (the run has not ended) or not JSON.
    """
    path = RunFiles(run_dir).summary
    if not path.is_file():
        raise ResultsError(f"{path} does not exist: {run_dir} is not a run directory or the run has not ended")
    return read_json_file(path)


# The accuracies of a summary: fractions of 1, whatever a report prints them as.
_FRACTIONS = (
    "test_accuracy",
    "test_top5",
    "test_mean_class_accuracy",
    "best_val_accuracy",
    "train_accuracy",
    "target_accuracy",
)


# Above this a figure is a typo or damage, not a measurement (the largest models have ~1e12 params and
# FLOPs of ~1e13; a time of 1e15 s is 30 million years), and a mean of many such would overflow.
FIGURE_LIMIT = 1e15
COUNT_LIMIT = 2**63  # counts are int64 wherever they are summed or tabulated


def check_figure(key: str, value: Any, *, whole: bool = False, fraction: bool = False) -> None:
    """One figure read from a file a user can edit: a finite number, ≥ 0 (a loss may be negative),
    below the limits above.

    Args:
        whole: a count (params, steps, ...): a whole number below ``COUNT_LIMIT``.
        fraction: an accuracy: between 0 and 1.

    Raises:
        ResultsError: naming the key, the value and what was expected.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultsError(f"{key} {value!r}: expected a number")
    if not math.isfinite(value):
        raise ResultsError(f"{key} {value!r}: expected a finite number")
    if fraction and not 0 <= value <= 1:
        raise ResultsError(f"{key} {value!r}: expected a fraction between 0 and 1")
    if whole and (value != int(value) or not 0 <= value < COUNT_LIMIT):
        raise ResultsError(f"{key} {value!r}: expected a whole number ≥ 0")
    if "loss" in key:  # a loss may be negative (a custom criterion); only its size is bounded
        if abs(value) >= FIGURE_LIMIT:
            raise ResultsError(f"{key} {value!r}: expected a number between -{FIGURE_LIMIT:.0e} and {FIGURE_LIMIT:.0e}")
    elif not 0 <= value < FIGURE_LIMIT and not whole:
        raise ResultsError(f"{key} {value!r}: expected a number ≥ 0 and below {FIGURE_LIMIT:.0e}")


def _check_figures(values: Mapping[str, Any]) -> None:
    """A damaged or hand-edited summary must not enter a mean: every figure a finite number in its range
    (accuracies in [0, 1], counts whole, nothing negative but losses, nothing astronomically large), and
    every other field of the type it has (a ``"versions": 5`` would fail the report's tables later).

    Raises:
        ResultsError: naming the key and its value.
    """
    kinds = {"str": str, "str | None": str, "dict[str, Any] | None": dict, "list[str]": list}
    for f in dataclasses.fields(RunSummary):
        value = values.get(f.name)
        if value is None or f.name == "extra":
            continue
        if f.type in ("float | None", "int | None"):
            check_figure(f.name, value, whole=f.type == "int | None", fraction=f.name in _FRACTIONS)
        elif f.type in kinds and not isinstance(value, kinds[f.type]):
            expected = {str: "text", dict: "an object", list: "a list"}[kinds[f.type]]
            raise ResultsError(f"{f.name} {str(value)[:60]!r}: expected {expected}")
    _check_lr_find(values.get("lr_find"))


# lr_find's numbers, as the report formats them: the pick and the ramp's ends (positive), its steps, its seconds
_LR_FIND_FIGURES = {"lr": False, "start_lr": False, "end_lr": False, "seconds": False, "steps": True,
                    "steps_taken": True}  # fmt: skip


def _check_lr_find(lr_find: Any) -> None:
    """The range test's record (--lr auto): a hand-edited ``"lr": null`` or ``"seconds": "x"`` failed the
    report's Tuning table with a traceback."""
    if not isinstance(lr_find, dict):
        return  # absent (no --lr auto), or named by the type check above
    for key, whole in _LR_FIND_FIGURES.items():
        value = lr_find.get(key)
        if value is None and key in ("seconds", "steps_taken"):
            continue  # older records lack them
        check_figure(f"lr_find.{key}", value, whole=whole)
        if key in ("lr", "start_lr", "end_lr") and value <= 0:
            raise ResultsError(f"lr_find.{key} {value!r}: expected a learning rate > 0")
    if not isinstance(lr_find.get("cached", False), bool):
        raise ResultsError(f"lr_find.cached {lr_find.get('cached')!r}: expected true or false")
