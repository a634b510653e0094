"""Which differences between the models of one dataset hold, from the runs' result files.

For each model (its selected schedule): the test accuracy with its 95 % interval, a test against
the most accurate model (Holm-corrected across models), a test between every pair (Holm-corrected
across pairs), the intervals of the steps (epochs, seconds) to the target accuracy, and one sentence
that says what holds. The statistics are in ``cnnbench.report.stats``; this module picks the runs,
reads their ``test_predictions.npz`` (``cnnbench.rundir.TestPredictions``) and decides which test
applies. Run directories without that file (written before it existed) still get intervals, from
their accuracy and test size; they are left out of the tests, and ``notes`` says so.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnbench.report.aggregate import AggregateRow
from cnnbench.report.intervals import PredictionStore, accuracy_interval, run_images, target_interval, target_values
from cnnbench.report.records import RunRecord
from cnnbench.report.stats import (
    ALPHA,
    Interval,
    PairedTest,
    format_p,
    holm,
    mcnemar_exact,
    seeds_images_test,
    welch_test,
)
from cnnbench.rundir import PREDICTIONS_FILE

# summary.json figures of the cost to reach the target accuracy, finest first; a run written before
# one of them existed simply lacks it
TO_TARGET = ("steps_to_target", "images_to_target", "epochs_to_target", "time_to_target_s")


@dataclass(frozen=True)
class ModelAccuracy:
    """One model's test accuracy, its interval, and how it compares with the most accurate model."""

    model: str
    schedule: str
    accuracy: float | None  # mean over the finished seeds
    interval: Interval | None  # None when the test size is unknown
    seeds: tuple[int | None, ...]  # the finished seeds averaged
    per_seed: tuple[float, ...]  # test accuracy of each, in the order of ``seeds``
    images: int | None  # test images each seed was scored on
    tested_seeds: tuple[int | None, ...] = ()  # the seeds with usable per-image predictions
    is_best: bool = False
    vs_best: PairedTest | None = None  # None: the best itself, or not testable
    p_vs_best: float | None = None  # Holm-adjusted over the models compared with the best
    distinguishable_from_best: bool | None = None  # None: not tested

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "schedule": self.schedule,
            "accuracy": self.accuracy,
            "interval": self.interval.to_dict() if self.interval else None,
            "seeds": list(self.seeds),
            "per_seed": list(self.per_seed),
            "images": self.images,
            "tested_seeds": list(self.tested_seeds),
            "is_best": self.is_best,
            "vs_best": self.vs_best.to_dict() if self.vs_best else None,
            "p_vs_best_holm": self.p_vs_best,
            "distinguishable_from_best": self.distinguishable_from_best,
        }


@dataclass(frozen=True)
class PairComparison:
    """Model ``a`` against model ``b``: better, worse, or the same as far as the data can tell."""

    a: str
    b: str
    test: PairedTest  # difference = a - b
    p_holm: float  # adjusted over every pair of the dataset
    verdict: str  # "better" | "worse" (a than b, p_holm < alpha) | "same" (cannot be told apart)

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "verdict": self.verdict, "p_holm": self.p_holm, "test": self.test.to_dict()}


@dataclass(frozen=True)
class TargetCost:
    """One model's cost to reach the target (one figure of TO_TARGET) over its seeds."""

    model: str
    figure: str
    values: tuple[float, ...]  # one per seed that reached the target
    seeds: int  # finished seeds
    mean: float | None
    interval: Interval | None  # t over the seeds that reached it (≥ 2)
    vs_fastest: PairedTest | None = None  # Welch, when every seed of both reached it (≥ 2 each)
    p_vs_fastest: float | None = None  # Holm-adjusted
    distinguishable_from_fastest: bool | None = None
    is_fastest: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "figure": self.figure,
            "values": list(self.values),
            "reached": len(self.values),
            "seeds": self.seeds,
            "mean": self.mean,
            "interval": self.interval.to_dict() if self.interval else None,
            "is_fastest": self.is_fastest,
            "vs_fastest": self.vs_fastest.to_dict() if self.vs_fastest else None,
            "p_vs_fastest_holm": self.p_vs_fastest,
            "distinguishable_from_fastest": self.distinguishable_from_fastest,
        }


@dataclass
class DatasetComparison:
    """Everything the report says about which differences hold on one dataset."""

    dataset: str
    models: list[ModelAccuracy]  # in the results table's order
    pairs: list[PairComparison]
    to_target: dict[str, list[TargetCost]]  # figure -> one per model with a value
    summary: str  # the sentence: which differences hold ("" when nothing could be tested)
    notes: list[str] = field(default_factory=list)  # what was left out, and why
    alpha: float = ALPHA

    @property
    def best(self) -> ModelAccuracy | None:
        return next((m for m in self.models if m.is_best), None)

    def model(self, name: str) -> ModelAccuracy | None:
        return next((m for m in self.models if m.model == name), None)

    def pair(self, a: str, b: str) -> PairComparison | None:
        """``a`` against ``b`` (the stored pair, turned around when it was stored as b against a)."""
        for p in self.pairs:
            if (p.a, p.b) == (a, b):
                return p
            if (p.a, p.b) == (b, a):
                turned = {"better": "worse", "worse": "better"}.get(p.verdict, p.verdict)
                test = dataclasses.replace(
                    p.test, difference=-p.test.difference, only_a=p.test.only_b, only_b=p.test.only_a
                )
                return PairComparison(a, b, test, p.p_holm, turned)
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "alpha": self.alpha,
            "summary": self.summary,
            "models": [m.to_dict() for m in self.models],
            "pairs": [p.to_dict() for p in self.pairs],
            "to_target": {k: [c.to_dict() for c in v] for k, v in self.to_target.items()},
            "notes": list(self.notes),
        }


@dataclass
class _Model:
    """A model's finished runs and the per-image correctness of those with usable predictions."""

    row: AggregateRow
    runs: list[RunRecord]
    correct: dict[str, np.ndarray] = field(default_factory=dict)  # seed key -> (N,) bool

    @property
    def name(self) -> str:
        return self.row.model


def compare_dataset(
    dataset: str,
    rows: Sequence[AggregateRow],
    store: PredictionStore | None = None,
    alpha: float = ALPHA,
) -> DatasetComparison:
    """Intervals, tests and the summary sentence for one dataset.

    Args:
        rows: the results table's rows (one per model, its selected schedule), in display order; their
            ``averaged`` runs are the ones compared.
        store: the predictions already read (a new, empty store by default).
        alpha: a difference holds when its Holm-adjusted p-value is below this.
    """
    store = store or PredictionStore()
    notes: list[str] = []
    models = [_Model(row, list(row.averaged)) for row in rows if row.ok]
    models = [m for m in models if any(r.figures.get("test_accuracy") is not None for r in m.runs)]
    _load_correctness(models, store, notes)
    accuracies = _accuracies(models, store)
    best = max(accuracies, key=lambda a: a.accuracy if a.accuracy is not None else -math.inf, default=None)
    testable = [m for m in models if m.correct]
    accuracies = _against_best(models, accuracies, best, testable, alpha, notes)
    pairs = _pairs(testable, alpha)
    to_target = {f: _target_costs(models, f, alpha) for f in TO_TARGET}
    comparison = DatasetComparison(
        dataset, accuracies, pairs, {k: v for k, v in to_target.items() if v}, "", notes, alpha
    )
    comparison.summary = summary_sentence(comparison)
    if len(models) > 1 and len(testable) < 2:
        notes.insert(0, _untested_note(models))
    elif len(models) > 1 and not comparison.summary and best is not None:
        # the first note is what the Findings section shows when there is no sentence: say why
        notes.insert(
            0,
            f"Which differences hold is not tested: the most accurate model, {best.model}, has no usable "
            f"per-image predictions ({PREDICTIONS_FILE}) to compare the others with.",
        )
    return comparison


def _load_correctness(models: list[_Model], store: PredictionStore, notes: list[str]) -> None:
    """Fill each model's per-image correctness; runs whose images differ from the first model's are left out."""
    reference: tuple[str, np.ndarray] | None = None  # the first run read: (run id, its targets)
    for model in models:
        for run in model.runs:
            preds, problem = store.get(run)
            if problem:
                notes.append(problem)
            if preds is None:
                continue
            if reference is None:
                reference = (run.run_id, preds.target)
            elif preds.target.shape != reference[1].shape or not np.array_equal(preds.target, reference[1]):
                notes.append(
                    f"{run.run_id} was tested on other images than {reference[0]} (another test split or "
                    "--max-test-samples): left out of the tests"
                )
                continue
            model.correct[_seed_key(run)] = preds.correct
        lacking = [r.run_id for r in model.runs if _seed_key(r) not in model.correct]
        if model.correct and lacking:
            notes.append(
                f"{model.name}: tested on the seeds with per-image predictions only (not {', '.join(lacking)})"
            )


def _seed_key(run: RunRecord) -> str:
    return str(run.seed) if run.seed is not None else run.run_id


def _accuracies(models: list[_Model], store: PredictionStore) -> list[ModelAccuracy]:
    out = []
    for m in models:
        scored = [r for r in m.runs if r.figures.get("test_accuracy") is not None]
        accs = tuple(float(r.figures["test_accuracy"]) for r in scored)
        sizes = {run_images(r, store) for r in scored}
        out.append(
            ModelAccuracy(
                model=m.name,
                schedule=m.row.schedule,
                accuracy=sum(accs) / len(accs),
                interval=accuracy_interval(scored, store),
                seeds=tuple(r.seed for r in scored),
                per_seed=accs,
                images=sizes.pop() if len(sizes) == 1 else None,
                tested_seeds=tuple(r.seed for r in scored if _seed_key(r) in m.correct),
            )
        )
    return out


def _against_best(
    models: list[_Model],
    accuracies: list[ModelAccuracy],
    best: ModelAccuracy | None,
    testable: list[_Model],
    alpha: float,
    notes: list[str],
) -> list[ModelAccuracy]:
    """Each model's test against the most accurate one, Holm-adjusted across the models tested."""
    if best is None:
        return accuracies
    by_name = {m.name: m for m in models}
    leader = by_name[best.model]
    others = [m for m in testable if m is not leader]
    tests = {m.name: _paired_test(m, leader) for m in others} if leader.correct else {}
    adjusted = dict(zip(tests, holm([t.p_value for t in tests.values()]), strict=True))
    out = []
    for acc in accuracies:
        if acc.model == best.model:
            out.append(dataclasses.replace(acc, is_best=True))
        elif acc.model in tests:
            p = adjusted[acc.model]
            out.append(
                dataclasses.replace(acc, vs_best=tests[acc.model], p_vs_best=p, distinguishable_from_best=p < alpha)
            )
        else:
            out.append(acc)
    return out


def _paired_test(a: _Model, b: _Model) -> PairedTest:
    """a against b on the same images: over seeds and images when they share ≥ 2 seeds, else McNemar.

    Runs of one seed are paired (they share the data order); with one seed in common McNemar takes
    that seed, with none the lowest seed of each (runs scored on the same images pair by image).
    """
    common = sorted(set(a.correct) & set(b.correct), key=_seed_order)
    if len(common) >= 2:
        return seeds_images_test(np.stack([a.correct[s] for s in common]), np.stack([b.correct[s] for s in common]))
    sa = common[0] if common else min(a.correct, key=_seed_order)
    sb = common[0] if common else min(b.correct, key=_seed_order)
    return mcnemar_exact(a.correct[sa], b.correct[sb])


def _seed_order(key: str) -> tuple[int, int | str]:
    return (0, int(key)) if key.lstrip("-").isdigit() else (1, key)


def _pairs(testable: list[_Model], alpha: float) -> list[PairComparison]:
    """Every pair, in table order, Holm-adjusted across all of them."""
    tests = [(a, b, _paired_test(a, b)) for i, a in enumerate(testable) for b in testable[i + 1 :]]
    adjusted = holm([t.p_value for _, _, t in tests])
    out = []
    for (a, b, test), p in zip(tests, adjusted, strict=True):
        verdict = "same" if p >= alpha else ("better" if test.difference > 0 else "worse")
        out.append(PairComparison(a.name, b.name, test, p, verdict))
    return out


def _target_costs(models: list[_Model], figure: str, alpha: float) -> list[TargetCost]:
    """Each model's cost to the target over its seeds; the fastest, and who cannot be told apart from it.

    Only models whose every seed (two or more) reached the target are tested: a seed that never reached
    it has no value, and leaving it out would flatter the model.
    """
    costs = []
    for m in models:
        values = target_values(m.runs, figure)
        if not values:
            continue
        interval = target_interval(m.runs, figure)
        costs.append(TargetCost(m.name, figure, values, len(m.runs), sum(values) / len(values), interval))
    eligible = [c for c in costs if len(c.values) == c.seeds >= 2]
    if len(eligible) < 2:
        return costs
    fastest = min(eligible, key=lambda c: c.mean if c.mean is not None else math.inf)
    tests = {c.model: welch_test(c.values, fastest.values) for c in eligible if c is not fastest}
    adjusted = dict(zip(tests, holm([t.p_value for t in tests.values()]), strict=True))
    out = []
    for c in costs:
        if c is fastest:
            out.append(dataclasses.replace(c, is_fastest=True))
        elif c.model in tests:
            p = adjusted[c.model]
            out.append(
                dataclasses.replace(
                    c, vs_fastest=tests[c.model], p_vs_fastest=p, distinguishable_from_fastest=p < alpha
                )
            )
        else:
            out.append(c)
    return out


def summary_sentence(comparison: DatasetComparison) -> str:
    """What holds, in words: the models that cannot be told apart from the best, and whom they beat.

    "resnet18 and googlenet cannot be told apart on these 1,000 test images; both beat
    mobilenet_v3_small (p < 1e-6)." Empty when fewer than two models could be tested.
    """
    best = comparison.best
    tested = [m for m in comparison.models if m.distinguishable_from_best is not None]
    if best is None or not tested:
        return ""
    group = [best] + [m for m in tested if not m.distinguishable_from_best]
    behind = [m for m in tested if m.distinguishable_from_best]
    group.sort(key=lambda m: -(m.accuracy or 0.0))
    behind.sort(key=lambda m: -(m.accuracy or 0.0))
    where = _where(comparison.models)
    names = [m.model for m in group]
    if len(group) > 1:
        head = f"{_join(names)} cannot be told apart {where}"
        if len(group) == 2 and group[1].p_vs_best is not None:
            head += f" ({format_p(group[1].p_vs_best)})"
    else:
        head = f"{best.model} is the most accurate {where}"
    clauses, by_all = [], []
    for m in behind:
        wins = [(g, pc.p_holm) for g in group if (pc := comparison.pair(g.model, m.model)) and pc.verdict == "better"]
        if not wins:  # only the test against the best (its own Holm family) separates them
            wins = [(best, m.p_vs_best or 0.0)]
        beaters = [g for g, _ in wins]
        text = f"{m.model} ({format_p(max(p for _, p in wins))})"  # the weakest of the wins
        if len(beaters) == len(group):
            by_all.append(text)
        else:
            rest = [g.model for g in group if g not in beaters]
            clauses.append(
                f"{_join([g.model for g in beaters])} beat{'s' if len(beaters) == 1 else ''} {text}, "
                f"which cannot be told apart from {_join(rest)}"
            )
    if by_all:
        subject = {1: "it beats", 2: "both beat"}.get(len(group), f"all {len(group)} beat")
        clauses.insert(0, f"{subject} {_join(by_all)}")
    return head + ("; " + "; ".join(clauses) if clauses else "") + "."


def _where(models: Sequence[ModelAccuracy]) -> str:
    sizes = {m.images for m in models if m.images}
    seeds = {len(m.tested_seeds) for m in models if m.distinguishable_from_best is not None or m.is_best}
    text = f"on these {sizes.pop():,} test images" if len(sizes) == 1 else "on these test images"
    if seeds and min(seeds) > 1:
        text += f" over {min(seeds)} seeds" if len(seeds) == 1 else f" over {min(seeds)}–{max(seeds)} seeds"
    return text


def _join(items: Sequence[str]) -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _untested_note(models: list[_Model]) -> str:
    missing = sum(1 for m in models for r in m.runs if not (r.path and (r.path / PREDICTIONS_FILE).is_file()))
    if missing:
        return (
            f"Which differences hold is not tested: {missing} of the finished runs have no {PREDICTIONS_FILE} "
            "(run directories written before it existed). The 95 % intervals come from each accuracy and the "
            f"test size; `cnnbench eval RUN_DIR --save-predictions` adds the file to a run."
        )
    return "Which differences hold is not tested: fewer than two models have usable per-image predictions."
