"""``results.csv`` (one row per run) and ``aggregate.csv`` (mean ± std and 95 % intervals), written atomically."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnbench.report.aggregate import aggregate
from cnnbench.report.intervals import PredictionStore, accuracy_interval, target_interval
from cnnbench.report.records import FIGURES, RESULT_COLUMNS, Results
from cnnbench.report.significance import TO_TARGET
from cnnbench.rundir import StudyFiles
from cnnbench.utils.io import atomic_write_text

# Figures whose 95 % interval aggregate.csv gives (``<figure>_ci_low``, ``<figure>_ci_high``), after
# every mean/std/n column: test accuracy (its method in ``test_accuracy_ci_method``) and, over seeds,
# the cost to the target (summary.json keys a run written before them lacks: the cells stay empty).
INTERVAL_FIGURES = ("test_accuracy", *TO_TARGET)

AGGREGATE_ID_COLUMNS = (
    "dataset",
    "model",
    "schedule",
    "recipe_hash",
    "recipe",
    "runs",
    "ok",
    "seeds",
    "statuses",
    "duplicates",
)


@dataclass(frozen=True)
class ResultsFiles:
    results_csv: Path
    aggregate_csv: Path


def aggregate_columns() -> list[str]:
    """The columns of aggregate.csv: the group, then ``<figure>_mean``, ``<figure>_std``, ``<figure>_n``, then
    the intervals (INTERVAL_FIGURES) and the method of the test accuracy's."""
    cols = list(AGGREGATE_ID_COLUMNS)
    for key in FIGURES:
        cols += [f"{key}_mean", f"{key}_std", f"{key}_n"]
    for key in INTERVAL_FIGURES:
        cols += [f"{key}_ci_low", f"{key}_ci_high"]
    cols.append("test_accuracy_ci_method")
    return cols


def write_results(results: Results, out_dir: str | os.PathLike[str]) -> ResultsFiles:
    """Write ``results.csv`` and ``aggregate.csv`` into ``out_dir``, replacing earlier versions.

    Both files are a function of the run directories alone, one row per ``run_id`` (``collect`` keeps
    each run once), so calling this after every finished run leaves a complete, duplicate-free table.
    """
    files = StudyFiles(out_dir)
    results_path, aggregate_path = files.results, files.aggregate
    atomic_write_text(results_path, _csv(list(RESULT_COLUMNS), [r.row() for r in results.runs]))
    rows = []
    store = PredictionStore()
    for row in aggregate(results.runs):
        values: dict[str, Any] = {
            "dataset": row.dataset,
            "model": row.arch or row.model,
            "schedule": row.schedule,
            "recipe_hash": row.recipe,
            "recipe": row.variant,
            "runs": row.runs,
            "ok": row.ok,
            "seeds": " ".join(str(s) for s in row.seeds),
            "statuses": " ".join(f"{k}={v}" for k, v in row.statuses.items()),
            "duplicates": " ".join(row.duplicates),
        }
        for key in FIGURES:
            stat = row.stats[key]
            values[f"{key}_mean"] = stat.mean
            values[f"{key}_std"] = stat.std
            values[f"{key}_n"] = stat.n
        intervals = {"test_accuracy": accuracy_interval(row.averaged, store)}
        intervals.update({key: target_interval(row.averaged, key) for key in TO_TARGET})
        for key, interval in intervals.items():
            values[f"{key}_ci_low"] = interval.low if interval else None
            values[f"{key}_ci_high"] = interval.high if interval else None
        values["test_accuracy_ci_method"] = intervals["test_accuracy"].method if intervals["test_accuracy"] else None
        rows.append(values)
    atomic_write_text(aggregate_path, _csv(aggregate_columns(), rows))
    return ResultsFiles(results_path, aggregate_path)


def _csv(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buf.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # round-trips exactly
    return str(value)
