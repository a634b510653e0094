"""The small files of a run directory: ``test_metrics.json``, ``model.json``, ``data.json`` and PNG figures.

Each reader returns None when its file is absent and raises ``ResultsError`` naming the file when
it is present but unreadable, so the report can list the damage and go on.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench.errors import ResultsError
from cnnbench.rundir.layout import RunFiles
from cnnbench.utils.io import atomic_write_json, loads_json

if TYPE_CHECKING:
    import numpy as np


def read_json_file(path: Path) -> Any:
    """A JSON result file; NaN and Infinity are refused like any other malformed content.

    Raises:
        ResultsError: naming the file when it is missing or not (strict) JSON.
    """
    try:
        return loads_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ResultsError(f"{path} does not exist") from exc
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise ResultsError(f"{path} is not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise ResultsError(f"{path} is not valid JSON (nested thousands of levels deep)") from exc


def read_if_present(path: Path, reader: Any = read_json_file) -> Any:
    """``reader(path)``, or None when there is no file at ``path``."""
    return reader(path) if path.is_file() else None


@dataclass
class TestMetrics:
    """``test_metrics.json``: class names, confusion matrix (K, K) rows = truth, per-class accuracy (K,)."""

    classes: list[str]
    confusion: np.ndarray
    per_class_accuracy: np.ndarray


def write_test_metrics(
    run_dir: str | os.PathLike[str], classes: list[str], confusion_matrix: Any, per_class_accuracy: Any, samples: int
) -> Path:
    """``test_metrics.json`` of the test pass: the confusion matrix (rows = truth) and per-class accuracy."""
    path = RunFiles(run_dir).test_metrics
    values = {
        "classes": list(classes),
        "confusion_matrix": confusion_matrix,
        "per_class_accuracy": per_class_accuracy,
        "samples": samples,
    }
    atomic_write_json(path, values)
    return path


def read_test_metrics(run_dir: Path) -> TestMetrics | None:
    import numpy as np  # here: the readers of the other files stay numpy-free

    path = RunFiles(run_dir).test_metrics
    data = read_if_present(path)
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


def write_model_summary(run_dir: str | os.PathLike[str], summary: dict[str, Any]) -> Path:
    """``model.json``: ``ModelSummary.to_dict()``."""
    atomic_write_json(RunFiles(run_dir).model, summary)
    return RunFiles(run_dir).model


def write_data_info(run_dir: str | os.PathLike[str], info: dict[str, Any]) -> Path:
    """``data.json``: ``Dataset.info()``."""
    atomic_write_json(RunFiles(run_dir).data, info)
    return RunFiles(run_dir).data


def read_model_summary(run_dir: Path) -> dict[str, Any] | None:
    """``model.json``: ModelSummary.to_dict() (params, size_mb, flops, adaptation, layers)."""
    data = read_if_present(RunFiles(run_dir).model)
    return data if isinstance(data, dict) else None


def read_data_info(run_dir: Path) -> dict[str, Any] | None:
    """``data.json``: Dataset.info() — split sizes, source, mean/std, skipped files."""
    data = read_if_present(RunFiles(run_dir).data)
    return data if isinstance(data, dict) else None


def read_png(path: Path) -> bytes | None:
    """A PNG file's bytes, or None when absent or not a PNG."""
    path = Path(path)
    if not path.is_file():
        return None
    data = path.read_bytes()
    return data if data.startswith(b"\x89PNG\r\n\x1a\n") else None
