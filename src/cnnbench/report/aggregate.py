"""Mean ± std over seeds, and the schedule shown per model (which differences hold: significance.py).

Only completed and early-stopped runs enter a mean; the std is the sample standard deviation
(ddof = 1) over seeds, undefined (None) with fewer than two.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cnnbench.report.records import FIGURES, RunRecord

# Where a larger value is better; every other figure is better smaller (times, sizes, epochs, loss).
HIGHER_IS_BETTER = frozenset(
    {"test_accuracy", "test_top5", "test_mean_class_accuracy", "best_val_accuracy", "train_accuracy", "gpu_throughput"}
)


@dataclass(frozen=True)
class Stat:
    """Mean and sample std of one figure over the seeds that measured it."""

    mean: float | None
    std: float | None  # None with fewer than two values
    n: int  # values that went in

    @classmethod
    def of(cls, values: Iterable[float | int | None]) -> Stat:
        xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
        if not xs:
            return cls(None, None, 0)
        mean = sum(xs) / len(xs)
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
        return cls(mean, std, len(xs))


@dataclass
class AggregateRow:
    """One dataset × model × schedule: how many runs, how they ended, and mean ± std per figure."""

    dataset: str
    model: str
    schedule: str
    runs: int  # run directories, whatever their status
    ok: int  # completed or early stopped: the runs averaged
    seeds: tuple[int, ...]  # seeds of the averaged runs
    statuses: dict[str, int]
    stats: dict[str, Stat]
    recipe: str | None = None  # the recipe hash every run of the row shares
    variant: str | None = None  # how this recipe differs from the model's others (None: only one)
    duplicates: tuple[str, ...] = ()  # run ids left out: the same recipe and seed as a run counted
    arch: str = ""  # the zoo name (``model`` carries the recipe label when there are several)
    averaged: tuple[RunRecord, ...] = field(default=(), repr=False)  # the finished runs averaged, one per seed

    def mean(self, key: str) -> float | None:
        return self.stats[key].mean

    def std(self, key: str) -> float | None:
        return self.stats[key].std


def aggregate(runs: Sequence[RunRecord]) -> list[AggregateRow]:
    """Group runs by dataset × model × schedule × recipe and average each figure over the finished seeds.

    Runs of different recipes are never averaged together (``collect`` labels them apart). Two
    finished runs of one recipe with the same seed are one result measured twice: the first (by run
    id) is counted, the other is listed in ``duplicates``.
    """
    groups: dict[tuple[str, str, str, str], list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[(run.dataset, run.model, run.schedule, run.recipe or "")].append(run)
    rows = []
    for (dataset, model, schedule, recipe), members in sorted(groups.items()):
        ok, duplicates, seen = [], [], set()
        for r in sorted((r for r in members if r.ok), key=lambda r: r.run_id):
            if r.seed is not None and r.seed in seen:
                duplicates.append(r.run_id)
                continue
            seen.add(r.seed)
            ok.append(r)
        rows.append(
            AggregateRow(
                dataset=dataset,
                model=model,
                schedule=schedule,
                runs=len(members),
                ok=len(ok),
                seeds=tuple(sorted(r.seed for r in ok if r.seed is not None)),
                statuses=dict(sorted(Counter(r.status for r in members).items())),
                stats={key: Stat.of(r.figures.get(key) for r in ok) for key in FIGURES},
                recipe=recipe or None,
                variant=members[0].variant,
                duplicates=tuple(duplicates),
                arch=members[0].arch,
                averaged=tuple(ok),
            )
        )
    return rows


def select_schedules(rows: Sequence[AggregateRow]) -> dict[tuple[str, str], AggregateRow]:
    """For each dataset × model, the schedule with the best mean validation accuracy.

    Chosen on validation accuracy, never on test accuracy, so the choice does not peek at the test
    split; ties go to the alphabetically first schedule. Rows without a finished run lose to any row
    with one, and are kept only when the model has nothing better (so a failed model still shows).
    """
    chosen: dict[tuple[str, str], AggregateRow] = {}
    for row in rows:
        key = (row.dataset, row.model)
        if key not in chosen or _selection_key(row) > _selection_key(chosen[key]):
            chosen[key] = row
    return chosen


def _selection_key(row: AggregateRow) -> tuple[int, float]:
    val = row.mean("best_val_accuracy")
    test = row.mean("test_accuracy")
    return (row.ok > 0, val if val is not None else (test if test is not None else -math.inf))


def best_value(values: Sequence[float | None], key: str) -> float | None:
    """The best of ``values`` for figure ``key`` (max or min), ignoring missing ones."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return max(present) if key in HIGHER_IS_BETTER else min(present)
