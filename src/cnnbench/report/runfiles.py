"""Readers for the files of one run directory (docs/architecture.md), returning plain data.

Each reader returns None when its file is absent and raises ``ResultsError`` naming the file when
it is present but unreadable, so the report can list the damage and go on.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnbench.errors import ResultsError
from cnnbench.rundir import FIGURE_LIMIT, best_checkpoint_differs
from cnnbench.utils.io import loads_json
from cnnbench.utils.schema import METRIC_COLUMNS, STEP_COLUMNS


def read_json_file(path: Path) -> Any:
    """A JSON result file; NaN and Infinity are refused like any other malformed content."""
    try:
        return loads_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ResultsError(f"{path} does not exist") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ResultsError(f"{path} is not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise ResultsError(f"{path} is not valid JSON (nested thousands of levels deep)") from exc


def read_yaml_file(path: Path) -> Any:
    import yaml

    from cnnbench.utils.yamlfile import load_yaml

    try:
        return load_yaml(Path(path).read_text(encoding="utf-8"), fast=True)  # the C parser: 60 configs in ms
    except FileNotFoundError as exc:
        raise ResultsError(f"{path} does not exist") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ResultsError(f"{path} is not valid YAML ({exc})") from exc


def _optional(path: Path, reader: Any) -> Any:
    return reader(path) if path.is_file() else None


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """``config.yaml``: the resolved TrainConfig plus ``model_args`` and ``data_config``."""
    data = _optional(Path(run_dir) / "config.yaml", read_yaml_file)
    if data is not None and not isinstance(data, dict):
        raise ResultsError(f"{Path(run_dir) / 'config.yaml'} is not a mapping of config keys")
    return data


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
    columns = _read_columns(Path(run_dir) / "metrics.csv", METRIC_COLUMNS)
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
    columns = _read_columns(Path(run_dir) / "steps.csv", STEP_COLUMNS)
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
    columns = _read_columns(Path(run_dir) / "lr_find.csv", LR_FIND_COLUMNS)
    if columns is None:
        return None
    keep = np.isfinite(columns["lr"]) & (columns["lr"] > 0)
    marked = np.flatnonzero(columns["picked"][keep] == 1)
    return LrFindCurve(
        columns["lr"][keep],
        columns["loss"][keep],
        columns["smoothed_loss"][keep],
        int(marked[0]) if marked.size else None,
    )


def _read_columns(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ResultsError(f"{path} is not a readable CSV file ({exc})") from exc
    columns = {name: np.full(len(rows), math.nan, dtype=np.float64) for name in names}
    for i, row in enumerate(rows):
        for name in names:
            columns[name][i] = _cell(path, i + 2, name, row.get(name))  # line 1 is the header
    return columns


def _cell(path: Path, line: int, name: str, value: Any) -> float:
    """One number of metrics.csv / steps.csv: empty is missing (NaN); anything else must be a finite
    number in the column's range, or the file is named as damaged (a curve is never drawn from it)."""
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


@dataclass
class TestMetrics:
    """``test_metrics.json``: class names, confusion matrix (K, K) rows = truth, per-class accuracy (K,)."""

    classes: list[str]
    confusion: np.ndarray
    per_class_accuracy: np.ndarray


def read_test_metrics(run_dir: Path) -> TestMetrics | None:
    path = Path(run_dir) / "test_metrics.json"
    data = _optional(path, read_json_file)
    if data is None:
        return None
    try:
        confusion = np.asarray(data["confusion_matrix"], dtype=np.float64)
        k = confusion.shape[0] if confusion.ndim else 0
        if confusion.shape != (k, k):
            raise ValueError(f"confusion_matrix has shape {confusion.shape}, expected (K, K)")
        if not (np.isfinite(confusion).all() and (confusion >= 0).all() and (confusion == np.round(confusion)).all()):
            raise ValueError("confusion_matrix holds a value that is not a whole count ≥ 0")
        per_class = data.get("per_class_accuracy")
        if per_class is None:  # recompute from the matrix: diagonal over row sums
            per_class = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
        per_class = np.asarray([math.nan if v is None else v for v in per_class], dtype=np.float64)
        if ((per_class < 0) | (per_class > 1)).any():  # NaN (a class absent from the test split) compares False
            raise ValueError("per_class_accuracy holds a value outside 0..1")
        classes = [str(c) for c in data.get("classes") or range(k)]
        if len(classes) != k or per_class.shape != (k,):
            raise ValueError(
                f"{len(classes)} classes and {per_class.shape[0]} per-class accuracies for a {k}x{k} matrix"
            )
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
        raise ResultsError(f"{path}: expected classes, confusion_matrix (K x K), per_class_accuracy ({exc})") from exc
    return TestMetrics(classes, confusion, per_class)


def read_model_summary(run_dir: Path) -> dict[str, Any] | None:
    """``model.json``: ModelSummary.to_dict() (params, size_mb, flops, adaptation, layers)."""
    data = _optional(Path(run_dir) / "model.json", read_json_file)
    return data if isinstance(data, dict) else None


def read_data_info(run_dir: Path) -> dict[str, Any] | None:
    """``data.json``: Dataset.info() — split sizes, source, mean/std, skipped files."""
    data = _optional(Path(run_dir) / "data.json", read_json_file)
    return data if isinstance(data, dict) else None


@dataclass
class ClusterScores:
    """The clustering scores of one run's embedding (``analysis.json``); None where not measured."""

    kmeans_ari: float | None
    kmeans_nmi: float | None
    dbscan_ari: float | None
    dbscan_nmi: float | None
    knn_accuracy: float | None
    raw_kmeans_ari: float | None  # the same scores on the raw high-dimensional features
    raw_kmeans_nmi: float | None
    dbscan_noise_points: float | None
    map_dims: int = 2  # the t-SNE map's dimensions (tsne.n_components; 3 with --n-components 3)
    checkpoint_sha256: str | None = None  # of the checkpoint analysed (analyses since round 3 record it)
    checkpoint_epoch: int | None = None


# what each score of analysis.json can be (an adjusted Rand index goes below 0; the others are fractions)
_SCORE_RANGES = {"ari": (-1.0, 1.0), "nmi": (0.0, 1.0), "knn_accuracy": (0.0, 1.0), "n_components": (1.0, 3.0)}


def read_analysis(run_dir: Path) -> ClusterScores | None:
    """``analysis.json`` read defensively (docs/analysis.md): top-level or ``tsne``-nested scores."""
    path = Path(run_dir) / "analysis.json"
    data = _optional(path, read_json_file)
    if not isinstance(data, dict):
        return None
    two_d = data.get("tsne") if isinstance(data.get("tsne"), dict) else data
    raw = data.get("raw") if isinstance(data.get("raw"), dict) else {}

    def get(obj: Any, *keys: str) -> float | None:
        for key in keys:
            obj = obj.get(key) if isinstance(obj, dict) else None
        if not isinstance(obj, (int, float)) or isinstance(obj, bool):
            return None
        low, high = _SCORE_RANGES.get(keys[-1], (0.0, FIGURE_LIMIT))
        if not low <= obj <= high:  # JSON cannot hold NaN here (refused when read)
            raise ResultsError(f"{path}: {'.'.join(keys)} {obj!r}: expected a number between {low:g} and {high:g}")
        return float(obj)

    def first(*values: float | None) -> float | None:
        return next((v for v in values if v is not None), None)

    return ClusterScores(
        kmeans_ari=first(get(two_d, "kmeans", "ari"), get(data, "kmeans", "ari")),
        kmeans_nmi=first(get(two_d, "kmeans", "nmi"), get(data, "kmeans", "nmi")),
        dbscan_ari=first(get(two_d, "dbscan", "ari"), get(data, "dbscan", "ari")),
        dbscan_nmi=first(get(two_d, "dbscan", "nmi"), get(data, "dbscan", "nmi")),
        knn_accuracy=first(get(data, "knn_accuracy"), get(two_d, "knn_accuracy"), get(raw, "knn_accuracy")),
        raw_kmeans_ari=get(raw, "kmeans", "ari"),
        raw_kmeans_nmi=get(raw, "kmeans", "nmi"),
        dbscan_noise_points=first(get(two_d, "dbscan", "noise_points"), get(data, "dbscan", "noise_points")),
        map_dims=3 if get(two_d, "n_components") == 3 else 2,
        checkpoint_sha256=data.get("checkpoint_sha256") if isinstance(data.get("checkpoint_sha256"), str) else None,
        checkpoint_epoch=data.get("checkpoint_epoch") if type(data.get("checkpoint_epoch")) is int else None,
    )


def analysis_is_outdated(run_dir: Path, scores: ClusterScores) -> bool:
    """Whether ``analysis.json`` was made from another checkpoint than the run's best one now (``cnnbench
    embed --force`` while the run trained on, or a run resumed after its analysis): its recorded hash is
    not in ``checkpoint/best.pt.sha256``. An analysis that records no hash (older versions) is not judged."""
    return best_checkpoint_differs(run_dir, scores.checkpoint_sha256)


def read_png(path: Path) -> bytes | None:
    """A PNG file's bytes, or None when absent or not a PNG."""
    path = Path(path)
    if not path.is_file():
        return None
    data = path.read_bytes()
    return data if data.startswith(b"\x89PNG\r\n\x1a\n") else None
