"""The test pass's per-image predictions: kept by ``evaluate``, put back in dataset order from DDP shards,
and stored by ``cnnbench.rundir.TestPredictions`` (test_predictions.npz)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from cnnbench.data import ArraySplit, DeviceLoader
from cnnbench.engine.evaluate import evaluate, merge_predictions, predictions_in_dataset_order
from cnnbench.errors import CnnbenchError, ConfigError, ResultsError
from cnnbench.rundir import PREDICTIONS_FILE, RunSummary, TestPredictions
from conftest import run_cli

CLASSES = 7


def _split(n: int) -> ArraySplit:
    rng = np.random.default_rng(0)
    return ArraySplit(rng.integers(0, 256, (n, 1, 6, 6), dtype=np.uint8), rng.integers(0, CLASSES, n))


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, CLASSES))


def _loader(split: ArraySplit, rank: int = 0, world_size: int = 1, batch_size: int = 8) -> DeviceLoader:
    return DeviceLoader(
        split,
        batch_size=batch_size,
        device="cpu",
        train=False,
        normalize=([0.5], [0.25]),
        shard=(rank, world_size),
    )


def test_evaluate_keeps_each_prediction_consistent_with_its_figures():
    split = _split(50)
    result = evaluate(_model(), _loader(split), CLASSES, torch.device("cpu"), keep_predictions=True)
    preds = result.predictions
    assert preds is not None and len(preds) == result.samples == 50
    assert np.array_equal(preds.target, split.labels)  # one process: the batches come in dataset order
    assert preds.accuracy == pytest.approx(result.accuracy)
    assert preds.correct_top5.mean() == pytest.approx(result.top5)
    assert preds.top5.shape == (50, 5) and np.array_equal(preds.top5[:, 0], preds.predicted)  # no ties here
    assert evaluate(_model(), _loader(split), CLASSES, torch.device("cpu")).predictions is None  # not asked


@pytest.mark.parametrize(("n", "world_size", "batch_size"), [(101, 2, 8), (37, 3, 5), (9, 4, 2)])
def test_shards_of_every_rank_merge_back_into_dataset_order(n, world_size, batch_size):
    """What DDP's gather does, rank by rank in one process: the merged file equals one process's pass."""
    split, model, cpu = _split(n), _model(), torch.device("cpu")
    whole = evaluate(model, _loader(split, batch_size=batch_size), CLASSES, cpu, keep_predictions=True).predictions
    pieces = []
    for rank in range(world_size):
        loader = _loader(split, rank, world_size, batch_size)
        shard = evaluate(model, loader, CLASSES, cpu, keep_predictions=True).predictions
        order = loader.sample_order()
        assert len(order) == len(shard) == loader.num_samples
        pieces.append((order, shard))
    merged = merge_predictions(pieces)
    assert np.array_equal(merged.target, split.labels)
    assert np.array_equal(merged.predicted, whole.predicted) and np.array_equal(merged.top5, whole.top5)
    # a single process: the same function only puts the batches in order
    single = predictions_in_dataset_order(whole, _loader(split, batch_size=batch_size).sample_order())
    assert np.array_equal(single.predicted, whole.predicted)


def test_shards_that_miss_or_repeat_a_sample_are_a_bug_not_a_file():
    split = _split(10)
    preds = evaluate(_model(), _loader(split), CLASSES, torch.device("cpu"), keep_predictions=True).predictions
    with pytest.raises(RuntimeError, match="exactly once"):
        merge_predictions([(np.arange(10), preds), (np.arange(10), preds)])


def test_predictions_file_round_trips_and_a_damaged_one_names_itself(tmp_path):
    preds = TestPredictions(
        predicted=np.array([3, 1, 300]), target=np.array([3, 2, 300]), top5=np.array([[3, 1], [1, 2], [300, 0]])
    )
    assert preds.predicted.dtype == np.int16  # class indices are small integers
    path = preds.write(tmp_path)
    assert path == tmp_path / PREDICTIONS_FILE
    back = TestPredictions.read(tmp_path)
    assert np.array_equal(back.predicted, preds.predicted) and np.array_equal(back.top5, preds.top5)
    assert back.accuracy == pytest.approx(2 / 3) and back.correct_top5.tolist() == [True, True, True]
    assert TestPredictions.read(tmp_path / "nowhere") is None  # a run written before the file existed
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ResultsError, match=f"{PREDICTIONS_FILE} is not a readable test-predictions file"):
        TestPredictions.read(tmp_path)
    with pytest.raises(ResultsError, match="expected predicted \\(N,\\), target \\(N,\\) and top5 \\(N, k\\)"):
        TestPredictions(predicted=np.array([1, 2]), target=np.array([1]), top5=np.array([[1]]))
    with pytest.raises(ResultsError, match="class indices ≥ 0"):
        TestPredictions(predicted=np.array([-1]), target=np.array([1]), top5=np.array([[1]]))


@pytest.mark.slow  # the session's engine run, and one `cnnbench eval` process
def test_eval_save_predictions_rewrites_the_runs_own_file_and_never_a_contradicting_one(engine_run, tmp_path):
    from cnnbench.engine.evaluate_run import evaluate_run

    run = tmp_path / engine_run.name
    shutil.copytree(engine_run, run)
    written = TestPredictions.read(run)  # by the engine's test pass
    summary = RunSummary.read(run)
    assert len(written) == summary.test_samples and written.accuracy == pytest.approx(summary.test_accuracy)
    (run / PREDICTIONS_FILE).unlink()  # as a run trained before the file existed
    out = json.loads(run_cli("eval", str(run), "--save-predictions", "--json").stdout)
    assert out["predictions"] == str(run / PREDICTIONS_FILE)
    again = TestPredictions.read(run)
    for name in ("predicted", "target", "top5"):
        assert np.array_equal(getattr(again, name), getattr(written, name)), name
    with pytest.raises(ConfigError, match="--save-predictions with --split val"):
        evaluate_run(run, split="val", save_predictions=True)
    with pytest.raises(ConfigError, match="not a run directory"):
        evaluate_run(run / "checkpoint" / "best.pt", save_predictions=True)
    (run / PREDICTIONS_FILE).unlink()
    data = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**data, "test_accuracy": 0.5}))
    with pytest.raises(CnnbenchError, match="would contradict it, nothing written"):
        evaluate_run(run, save_predictions=True, device="cpu")
    assert not (run / PREDICTIONS_FILE).exists()
