"""The 95 % intervals of a group of runs (one model's seeds), and the per-image test predictions behind them.

The test accuracy's interval comes from each run's ``test_predictions.npz`` when every run has one
(read once per report by ``PredictionStore`` and checked against its summary.json), else from the
accuracy and the test size; the interval of a cost to the target comes from the seeds that reached it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cnnbench.errors import ResultsError
from cnnbench.report.records import RunRecord
from cnnbench.report.stats import Interval, seeds_images_interval, student_interval, wilson_interval
from cnnbench.rundir import RunFiles, TestPredictions
from cnnbench.rundir.layout import SUMMARY_FILE


class PredictionStore:
    """Each run's ``test_predictions.npz``, read once and checked against its ``summary.json``."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[TestPredictions | None, str | None]] = {}

    def get(self, run: RunRecord) -> tuple[TestPredictions | None, str | None]:
        """(predictions, None), (None, why they are left out), or (None, None) when the run has none."""
        key = str(run.path)
        if key not in self._cache:
            self._cache[key] = _read_predictions(run)
        return self._cache[key]


def _read_predictions(run: RunRecord) -> tuple[TestPredictions | None, str | None]:
    if run.path is None:
        return None, None
    try:
        preds = TestPredictions.read(run.path)
    except ResultsError as exc:
        return None, f"{exc}: left out of the tests"
    if preds is None or not len(preds):
        return None, None
    where = RunFiles(run.path).predictions
    samples = run.summary.get("test_samples")
    if isinstance(samples, int) and not isinstance(samples, bool) and samples != len(preds):
        return None, f"{where} holds {len(preds):,} images, {SUMMARY_FILE} {samples:,}: left out of the tests"
    acc = run.figures.get("test_accuracy")
    # a file from another evaluation (another checkpoint, other data) must not stand for this run
    if acc is not None and abs(preds.accuracy - acc) > 0.5 / len(preds):
        return None, (
            f"{where} gives test accuracy {preds.accuracy:.4f}, {SUMMARY_FILE} {acc:.4f}: "
            "they are not of the same evaluation, left out of the tests"
        )
    return preds, None


def run_images(run: RunRecord, store: PredictionStore) -> int | None:
    """How many test images a run was scored on: its predictions, else summary.json's test_samples."""
    preds, _ = store.get(run)
    if preds is not None:
        return len(preds)
    samples = run.summary.get("test_samples")
    if isinstance(samples, int) and not isinstance(samples, bool) and samples > 0:
        return samples
    return None


def accuracy_interval(runs: Sequence[RunRecord], store: PredictionStore) -> Interval | None:
    """The 95 % interval of the mean test accuracy of ``runs`` (one per seed, all finished).

    One seed: Wilson over its test images. Several: t over seeds and images, the per-image variance
    from the predictions when every run has them, else its upper bound p̄(1 − p̄). None when the test
    size is unknown (and, for several seeds, a t interval over seeds alone).
    """
    scored = [r for r in runs if r.figures.get("test_accuracy") is not None]
    accs = [float(r.figures["test_accuracy"]) for r in scored]
    if not accs:
        return None
    sizes = {run_images(r, store) for r in scored}
    images = sizes.pop() if len(sizes) == 1 else None
    if len(accs) == 1:
        return wilson_interval(round(accs[0] * images), images) if images else None
    if not images:
        return student_interval(accs, bounds=(0.0, 1.0))
    known = [p for p in (store.get(r)[0] for r in scored) if p is not None]
    if len(known) == len(scored) and same_images(known):
        per_image = np.stack([p.correct for p in known]).mean(axis=0)  # (N,) each image's accuracy over the seeds
        variance = float(per_image.var(ddof=1)) if images > 1 else 0.0
    else:
        mean = sum(accs) / len(accs)
        variance = mean * (1 - mean)  # the largest variance a seed-averaged 0/1 per image can have
    return seeds_images_interval(accs, variance, images)


def same_images(preds: Sequence[TestPredictions]) -> bool:
    first = preds[0].target
    return all(p.target.shape == first.shape and np.array_equal(p.target, first) for p in preds[1:])


def target_interval(runs: Sequence[RunRecord], figure: str) -> Interval | None:
    """The t interval over seeds of ``figure`` (one of TO_TARGET) of the runs that reached the target; None
    with fewer than two."""
    values = target_values(runs, figure)
    return student_interval(values, bounds=(0.0, math.inf)) if len(values) > 1 else None


def target_values(runs: Sequence[RunRecord], figure: str) -> tuple[float, ...]:
    """``figure`` of each run that has it (reached the target), from summary.json (collect's figures else)."""
    out = []
    for run in runs:
        value = run.summary.get(figure, run.figures.get(figure))
        if not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value):
            out.append(float(value))
    return tuple(out)
