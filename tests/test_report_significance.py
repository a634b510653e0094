"""Which differences hold, in the report: intervals, tests against the best and between pairs, the
sentence at the top, aggregate.csv's interval columns and ``--json``'s statistics — on study directories
in the documented formats, on real runs of the engine, and on runs written before test_predictions.npz."""

from __future__ import annotations

import csv
import json
import shutil
from html import escape
from pathlib import Path

import numpy as np
import pytest

from cnnbench.report import build_report, collect
from cnnbench.report.aggregate import aggregate, select_schedules
from cnnbench.report.significance import (
    DatasetComparison,
    ModelAccuracy,
    PairComparison,
    compare_dataset,
    summary_sentence,
)
from cnnbench.report.stats import (
    MCNEMAR,
    PAIRED_SEEDS_IMAGES,
    SEEDS_AND_IMAGES,
    WILSON,
    PairedTest,
    mcnemar_exact,
    seeds_images_test,
    wilson_interval,
)
from cnnbench.rundir import PREDICTIONS_FILE, RunSummary, TestPredictions
from support.synthetic_study import SyntheticStudy, write_synthetic_study
from test_report_build import _column, _tables

ONE_SEED = {"schedules": ("cosine",), "seeds": (0,), "analysis": False, "samples": False, "gpu": False}


def _study(path: Path, **spec) -> Path:
    return write_synthetic_study(path, SyntheticStudy(**{**ONE_SEED, **spec}))


def _run(study: Path, model: str, seed: int = 0) -> Path:
    return study / "runs" / f"mnist__{model}__cosine__s{seed}"


def _edit_summary(run_dir: Path, **changes) -> None:
    path = run_dir / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _near_copy(study: Path, source: str, model: str, errors: int) -> None:
    """``model`` predicts what ``source`` predicts but gets ``errors`` more images wrong (and its summary says so)."""
    preds = TestPredictions.read(_run(study, source))
    predicted = preds.predicted.copy()
    right = np.flatnonzero(preds.correct)[:errors]
    predicted[right] = (preds.target[right] + 1) % 10
    TestPredictions(predicted, preds.target, preds.top5).write(_run(study, model))
    _edit_summary(_run(study, model), test_accuracy=float(np.mean(predicted == preds.target)))


def _aggregate(paths) -> dict[str, dict[str, str]]:
    with open(paths.aggregate_csv, newline="") as f:
        return {row["model"]: row for row in csv.DictReader(f)}


def _stats(paths) -> dict:
    return json.loads(json.dumps(paths.to_dict()))["statistics"]["mnist"]  # what --json prints


def _statistics(study: Path) -> dict:
    """The same statistics without drawing the report's figures."""
    results = collect(study)
    rows = list(select_schedules(aggregate(results.runs)).values())
    return compare_dataset("mnist", rows).to_dict()


def test_one_seed_tests_match_mcnemar_on_the_files_and_the_report_says_what_holds(tmp_path):
    study = _study(tmp_path / "s", models=("lenet5", "resnet18", "googlenet"))
    _near_copy(study, "resnet18", "googlenet", errors=4)  # 4 images of 10,000 apart: p = 0.125 (McNemar)
    paths = build_report(study)
    stats = _stats(paths)
    models = {m["model"]: m for m in stats["models"]}
    assert models["resnet18"]["is_best"]  # about 99.5 % (synthetic traits), lenet5 about 98.9 %
    preds = {m: TestPredictions.read(_run(study, m)) for m in models}
    for name, m in models.items():
        acc = RunSummary.read(_run(study, name)).test_accuracy
        assert m["interval"]["method"] == WILSON and m["images"] == 10_000
        expected = wilson_interval(round(acc * 10_000), 10_000)
        assert (m["interval"]["low"], m["interval"]["high"]) == pytest.approx((expected.low, expected.high))
    lenet = mcnemar_exact(preds["lenet5"].correct, preds["resnet18"].correct)
    assert models["lenet5"]["vs_best"]["p_value"] == pytest.approx(lenet.p_value)
    assert models["lenet5"]["vs_best"]["method"] == MCNEMAR
    assert models["lenet5"]["distinguishable_from_best"] is True
    assert models["googlenet"]["distinguishable_from_best"] is False
    assert models["googlenet"]["vs_best"]["p_value"] == pytest.approx(0.125)  # 0 vs 4 discordant: 2 · 0.5⁴
    # Holm over the two models compared with the best: the smaller p doubled, the larger kept (or raised)
    raw = sorted(models[m]["vs_best"]["p_value"] for m in ("lenet5", "googlenet"))
    assert models["lenet5"]["p_vs_best_holm"] == pytest.approx(min(1.0, 2 * raw[0]))
    verdicts = {(p["a"], p["b"]): p["verdict"] for p in stats["pairs"]}
    assert verdicts == {
        ("lenet5", "resnet18"): "worse",
        ("lenet5", "googlenet"): "worse",
        ("resnet18", "googlenet"): "same",
    }
    assert stats["summary"].startswith("resnet18 and googlenet cannot be told apart on these 10,000 test images")
    assert "both beat lenet5 (p < 1e-6)" in stats["summary"]
    html = paths.html.read_text()
    assert html.index('<section id="findings">') < html.index('<section id="study">')  # the answer comes first
    assert escape(stats["summary"]) in html
    assert "resnet18 and googlenet cannot be told apart on these 10,000 test images" in paths.markdown.read_text()
    # the results table: ≈ on googlenet (cannot be told apart), not on lenet5; its interval beside it
    rows = {r[0]: r for r in _tables(html)["results-table"]}
    intervals = _column(html, "results-table", "95 % interval")
    assert all(text.startswith("[") and text.endswith("]") for text in intervals)
    assert html.count('class="tie"') == 1 and "cannot be told apart from the best (exact McNemar test" in html
    assert rows["lenet5"][0] == "lenet5"
    pairwise = _tables(html)["pairwise"]
    assert [r[0] for r in pairwise] == ["lenet5", "resnet18", "googlenet"]
    assert pairwise[1][1].startswith("better") and pairwise[0][2].startswith("worse")
    assert pairwise[1][3].startswith("same")


def test_two_identical_prediction_files_give_p_1_and_not_distinguishable(tmp_path):
    study = _study(tmp_path / "s", models=("lenet5", "resnet18"))
    shutil.copy(_run(study, "resnet18") / PREDICTIONS_FILE, _run(study, "lenet5") / PREDICTIONS_FILE)
    _edit_summary(_run(study, "lenet5"), test_accuracy=RunSummary.read(_run(study, "resnet18")).test_accuracy)
    stats = _statistics(study)
    other = next(m for m in stats["models"] if not m["is_best"])
    assert other["vs_best"]["p_value"] == 1.0 and other["p_vs_best_holm"] == 1.0
    assert other["vs_best"]["only_a"] == other["vs_best"]["only_b"] == 0
    assert other["distinguishable_from_best"] is False
    assert [p["verdict"] for p in stats["pairs"]] == ["same"]
    assert "cannot be told apart" in stats["summary"] and "(p = 1)" in stats["summary"]


def test_an_old_study_without_prediction_files_reports_intervals_and_says_why_nothing_is_tested(tmp_path):
    study = _study(tmp_path / "s", models=("lenet5", "resnet18"), predictions=False)
    paths = build_report(study)
    stats = _stats(paths)
    assert stats["pairs"] == [] and stats["summary"] == ""
    assert all(m["vs_best"] is None and m["distinguishable_from_best"] is None for m in stats["models"])
    assert PREDICTIONS_FILE in stats["notes"][0] and "--save-predictions" in stats["notes"][0]
    row = _aggregate(paths)["lenet5"]
    acc, n = float(row["test_accuracy_mean"]), RunSummary.read(_run(study, "lenet5")).test_samples
    expected = wilson_interval(round(acc * n), n)  # from the accuracy and the test size alone
    assert float(row["test_accuracy_ci_low"]) == pytest.approx(expected.low)
    assert float(row["test_accuracy_ci_high"]) == pytest.approx(expected.high)
    assert row["test_accuracy_ci_method"] == WILSON and row["steps_to_target_ci_low"] == ""
    html = paths.html.read_text()
    assert "Which differences hold is not tested" in html and "pairwise" not in _tables(html)
    assert len(_column(html, "results-table", "95 % interval")) == 2


def test_damaged_or_stale_prediction_files_are_left_out_with_a_note(tmp_path):
    study = _study(tmp_path / "s", models=("lenet5", "resnet18", "googlenet"))
    damaged = _run(study, "googlenet") / PREDICTIONS_FILE
    damaged.write_bytes(damaged.read_bytes()[:100])
    _edit_summary(_run(study, "lenet5"), test_accuracy=0.5)  # the file is now of another evaluation
    stats = _statistics(study)
    notes = " ".join(stats["notes"])
    assert f"{damaged} is not a readable test-predictions file" in notes
    assert "not of the same evaluation" in notes and "mnist__lenet5__cosine__s0" in notes
    assert stats["pairs"] == []  # one model left with usable predictions: nothing to pair
    assert all(m["interval"] for m in stats["models"])  # every model keeps its interval


def test_without_the_best_models_predictions_nothing_is_tested_against_it_and_the_report_says_so(tmp_path):
    models = ("lenet5", "resnet18", "googlenet")
    study = _study(tmp_path / "s", models=models)
    best = max(models, key=lambda m: RunSummary.read(_run(study, m)).test_accuracy)
    (_run(study, best) / PREDICTIONS_FILE).unlink()
    stats = _statistics(study)
    assert stats["summary"] == "" and f"the most accurate model, {best}, has no usable" in stats["notes"][0]
    assert all(m["distinguishable_from_best"] is None for m in stats["models"])
    assert len(stats["pairs"]) == 1 and best not in (stats["pairs"][0]["a"], stats["pairs"][0]["b"])


def _accuracy(model, accuracy, p=None, best=False):
    test = None if p is None else PairedTest(MCNEMAR, 0.0, p, images=1000)
    return ModelAccuracy(
        model, "cosine", accuracy, None, (0,), (accuracy,), 1000, (0,), best, test, p, None if p is None else p < 0.05
    )


def _verdicts(*pairs):
    return [PairComparison(a, b, PairedTest(MCNEMAR, 0.01, p, images=1000), p, verdict) for a, b, verdict, p in pairs]


def test_the_sentence_names_who_cannot_be_told_apart_and_whom_they_beat():
    models = [
        _accuracy("googlenet", 0.932, p=0.41),
        _accuracy("resnet18", 0.935, best=True),
        _accuracy("mobilenet_v3_small", 0.88, p=1e-9),
    ]
    pairs = _verdicts(
        ("resnet18", "googlenet", "same", 0.41),
        ("resnet18", "mobilenet_v3_small", "better", 3e-9),
        ("googlenet", "mobilenet_v3_small", "better", 2e-7),
    )
    assert summary_sentence(DatasetComparison("mnist", models, pairs, {}, "")) == (
        "resnet18 and googlenet cannot be told apart on these 1,000 test images (p = 0.41); "
        "both beat mobilenet_v3_small (p < 1e-6)."
    )
    pairs[2] = PairComparison("googlenet", "mobilenet_v3_small", pairs[2].test, 0.2, "same")
    assert summary_sentence(DatasetComparison("mnist", models, pairs, {}, "")) == (
        "resnet18 and googlenet cannot be told apart on these 1,000 test images (p = 0.41); "
        "resnet18 beats mobilenet_v3_small (p < 1e-6), which cannot be told apart from googlenet."
    )
    alone = [models[1], _accuracy("lenet5", 0.5, p=0.003)]
    pairs = _verdicts(("lenet5", "resnet18", "worse", 0.003))
    assert summary_sentence(DatasetComparison("mnist", alone, pairs, {}, "")) == (
        "resnet18 is the most accurate on these 1,000 test images; it beats lenet5 (p = 0.003)."
    )


STEPS = {"resnet18": [120, 150, 135], "lenet5": [300, 280, 330], "googlenet": [100, 110, None]}


@pytest.fixture(scope="module")
def three_seeds(tmp_path_factory):
    """Three models × three seeds, with steps to the target (a summary.json key of newer runs) in each."""
    study = _study(tmp_path_factory.mktemp("seeds") / "s", models=("lenet5", "resnet18", "googlenet"), seeds=(0, 1, 2))
    for model, values in STEPS.items():
        for seed, value in enumerate(values):
            _edit_summary(_run(study, model, seed), steps_to_target=value)
    return study, build_report(study)


def test_several_seeds_pair_by_seed_and_image_and_give_the_per_seed_values(three_seeds):
    study, paths = three_seeds
    stats = _stats(paths)
    models = {m["model"]: m for m in stats["models"]}
    lenet = models["lenet5"]
    assert lenet["seeds"] == [0, 1, 2] and lenet["tested_seeds"] == [0, 1, 2]
    assert lenet["per_seed"] == [RunSummary.read(_run(study, "lenet5", s)).test_accuracy for s in (0, 1, 2)]
    assert lenet["interval"]["method"] == SEEDS_AND_IMAGES
    assert lenet["interval"]["low"] < np.mean(lenet["per_seed"]) < lenet["interval"]["high"]

    def correct(model):
        return np.stack([TestPredictions.read(_run(study, model, s)).correct for s in (0, 1, 2)])

    best = next(m["model"] for m in stats["models"] if m["is_best"])
    expected = seeds_images_test(correct("lenet5"), correct(best))
    assert lenet["vs_best"]["method"] == PAIRED_SEEDS_IMAGES
    assert lenet["vs_best"]["p_value"] == pytest.approx(expected.p_value)
    assert lenet["distinguishable_from_best"] is True
    assert "over 3 seeds" in stats["summary"]
    row = _aggregate(paths)["lenet5"]
    assert float(row["test_accuracy_ci_low"]) == pytest.approx(lenet["interval"]["low"])
    html = paths.html.read_text()
    assert "Per seed (%)" in html and "paired by seed and by image" in html


def test_steps_to_target_over_seeds_get_intervals_and_a_test_against_the_fastest(three_seeds):
    _, paths = three_seeds
    costs = {c["model"]: c for c in _stats(paths)["to_target"]["steps_to_target"]}
    assert costs["resnet18"]["is_fastest"]  # googlenet is faster where it arrived, but one seed never did
    assert costs["googlenet"]["reached"] == 2 and costs["googlenet"]["vs_fastest"] is None
    assert costs["lenet5"]["distinguishable_from_fastest"] is True
    low, high = costs["resnet18"]["interval"]["low"], costs["resnet18"]["interval"]["high"]
    assert low < 135 < high
    row = _aggregate(paths)["resnet18"]
    assert (float(row["steps_to_target_ci_low"]), float(row["steps_to_target_ci_high"])) == pytest.approx((low, high))
    table = _tables(paths.html.read_text())["target-intervals"]
    googlenet = next(r for r in table if r[0] == "googlenet")
    assert "(2/3)" in googlenet[1]


@pytest.mark.slow  # trains a run of one step beside the session's trained engine run
def test_a_trained_and_an_untrained_engine_run_are_told_apart(engine_run, tmp_path):
    """Real runs: the engine's own test_predictions.npz, a trained LeNet-5 against one of a single step."""
    from cnnbench.engine import TrainConfig, fit

    runs = tmp_path / "runs"
    shutil.copytree(engine_run, runs / engine_run.name)
    cfg = TrainConfig(  # conftest's engine_run, the same data and test images, stopped after one tiny step
        model="lenet5",
        data="synthetic",
        epochs=1,
        max_steps=1,
        batch_size=64,
        lr=1e-5,
        optimizer="adam",
        weight_decay=0.0,
        schedule="none",
        target_accuracy=0.5,
        max_train_samples=600,
        max_test_samples=300,
        precise_bn_samples=0,
        device="cpu",
        progress=False,
    )
    untrained = fit(cfg, runs / "synthetic__lenet5__none__untrained", quiet=True)
    assert untrained["status"] == "completed" and untrained["test_accuracy"] < 0.3
    paths = build_report(tmp_path)
    stats = json.loads(json.dumps(paths.to_dict()))["statistics"]["synthetic"]
    worse = [m for m in stats["models"] if m["distinguishable_from_best"]]
    assert len(stats["models"]) == 2 and len(worse) == 1
    assert worse[0]["accuracy"] == pytest.approx(untrained["test_accuracy"])
    assert worse[0]["vs_best"]["method"] == MCNEMAR and worse[0]["p_vs_best_holm"] < 1e-6
    assert [p["verdict"] for p in stats["pairs"]] in (["better"], ["worse"])
    assert "beats" in stats["summary"] and "300 test images" in stats["summary"]
