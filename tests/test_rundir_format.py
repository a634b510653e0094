"""Run directories written by an earlier cnnbench stay readable (issue [3/5]; issue 28: format versions).

``tests/data/rundir-2026-11-30/`` holds the text files of a run directory as ``cnnbench train`` wrote
them on 2026-11-30, before ``--stop-at-target`` existed (``cnnbench train --model lenet5 --data synthetic
--epochs 2 --max-train-samples 256 --target-accuracy 0.5``; the weights are not kept in git).

``tests/data/rundir-2026-12-07/`` is a whole run directory (weights and test predictions included, the
TensorBoard events left out) as main wrote it on 2026-12-07 at 47c6335, the last version before
summary.json and config.yaml carried a ``format`` key: ``cnnbench train --model lenet5 --data synthetic
--epochs 2 --max-train-samples 256 --target-accuracy 0.5 --optimizer sgd --momentum 0 --val-every-steps 4``
(SGD without momentum keeps last.pt small; ``--lr auto`` was train's default, so it holds a range test).

Whatever the format becomes, these directories must still be read, resumed and reported, and their
recipes must keep their hashes: otherwise a report would split runs of one recipe made before and
after an upgrade.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from cnnbench.engine.config import TrainConfig
from cnnbench.report.stats import wilson_interval
from cnnbench.rundir import DERIVED_SECTIONS, SUMMARY_FORMAT, RunConfig, RunSummary, TestPredictions, recipe_hash

FROZEN = Path(__file__).resolve().parent / "data" / "rundir-2026-11-30"
RUN = FROZEN / "runs" / "synthetic__lenet5__cosine__s0"
FROZEN_2 = Path(__file__).resolve().parent / "data" / "rundir-2026-12-07"
RUN_2 = FROZEN_2 / "runs" / "synthetic__lenet5__onecycle__s0"


def _config() -> dict:
    return yaml.safe_load((RUN / "config.yaml").read_text())


def test_the_summary_is_read_with_every_key_known():
    summary = RunSummary.read(RUN)
    assert summary.extra == {}  # no key of that day's summary.json is unknown to today's reader
    assert summary.ok and summary.status == "completed"
    assert (summary.model, summary.dataset, summary.steps, summary.epochs_run) == ("lenet5", "synthetic", 8, 2)
    assert summary.test_accuracy == 0.1 and summary.target_accuracy == 0.5 and summary.epochs_to_target is None


def test_the_config_rebuilds_the_recipe_with_the_hashes_it_was_written_with():
    config = _config()
    recipe = {k: v for k, v in config.items() if k not in DERIVED_SECTIONS}
    cfg = TrainConfig.from_dict(recipe, "config.yaml")  # options added since take their defaults
    assert cfg.stop_at_target is False
    summary = RunSummary.read(RUN)
    assert cfg.hash() == summary.config_hash == config["resolved"]["config_hash"]
    assert recipe_hash(config) == recipe_hash(cfg.to_dict()) == summary.recipe_hash


def test_the_report_reads_the_old_run(tmp_path):
    from cnnbench.report import build_report

    study = tmp_path / "study"
    shutil.copytree(FROZEN, study)
    build_report(study)
    with (study / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["model"], r["status"], r["test_accuracy"]) for r in rows] == [("lenet5", "completed", "0.1")]
    assert rows[0]["recipe_hash"] == RunSummary.read(RUN).recipe_hash
    assert "lenet5" in (study / "report.md").read_text()
    # no test_predictions.npz then: the 95 % interval comes from the accuracy and the test size (50 of 500)
    with (study / "aggregate.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    expected = wilson_interval(50, 500)
    assert (float(row["test_accuracy_ci_low"]), float(row["test_accuracy_ci_high"])) == (expected.low, expected.high)


def test_the_second_run_directory_reads_with_every_key_known_and_no_format():
    summary, config = RunSummary.read(RUN_2), RunConfig.read(RUN_2)
    assert summary.extra == {} and summary.format is None and config.format is None  # written before the key
    assert summary.to_dict() == json.loads((RUN_2 / "summary.json").read_text())  # read and written back: the same
    assert (summary.status, summary.steps, summary.evaluations, summary.test_samples) == ("completed", 8, 2, 500)
    assert summary.lr_find is not None and summary.lr == config.resolved["lr"]
    predictions = TestPredictions.read(RUN_2)
    assert len(predictions) == 500 and predictions.accuracy == summary.test_accuracy


def test_the_second_run_directory_keeps_its_hashes():
    config = RunConfig.read(RUN_2)
    cfg = TrainConfig.from_dict(config.options, "config.yaml")
    summary = RunSummary.read(RUN_2)
    assert cfg.hash() == summary.config_hash == config.config_hash
    assert recipe_hash(config.values) == recipe_hash(cfg.to_dict()) == summary.recipe_hash


def test_a_config_written_today_keeps_the_hashes_of_one_written_before_the_format_key(tmp_path):
    old = RunConfig.read(RUN_2)
    new = RunConfig.build(old.options, old.model_args, old.data_config, old.resolved)
    new.write(tmp_path)
    assert RunConfig.read(tmp_path).format == "cnnbench-config-v1"
    assert recipe_hash(RunConfig.read(tmp_path).values) == recipe_hash(old.values)
    summary = RunSummary.read(RUN_2)
    written = RunSummary.read(summary.write(tmp_path).parent)
    assert written.format == SUMMARY_FORMAT and written.to_dict() == {"format": SUMMARY_FORMAT, **summary.to_dict()}


def test_a_summary_of_an_unknown_format_is_refused_naming_it(tmp_path):
    from cnnbench.errors import ResultsError

    (tmp_path / "summary.json").write_text(json.dumps({**RunSummary.read(RUN_2).to_dict(), "format": "other-v9"}))
    with pytest.raises(ResultsError, match="summary.json: format 'other-v9'"):
        RunSummary.read(tmp_path)


def test_the_report_reads_the_second_run(tmp_path):
    from cnnbench.report import build_report

    study = tmp_path / "study"
    shutil.copytree(FROZEN_2, study)
    build_report(study)
    with (study / "results.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    summary = RunSummary.read(RUN_2)
    assert (row["model"], row["schedule"], row["status"], row["recipe_hash"]) == (
        "lenet5",
        "onecycle",
        "completed",
        summary.recipe_hash,
    )
    assert float(row["test_accuracy"]) == summary.test_accuracy and float(row["params"]) == summary.params


@pytest.mark.slow  # trains nothing, but runs the engine's resume and test pass
def test_the_second_run_resumes_to_the_same_result(tmp_path):
    from cnnbench.engine import fit

    run = tmp_path / "run"
    shutil.copytree(RUN_2, run)
    before = RunSummary.read(run)
    config = RunConfig.read(run)
    summary = fit(TrainConfig.from_dict(config.options, "config.yaml"), run, resume=True, quiet=True)
    assert summary["status"] == "completed" and summary["steps"] == before.steps == 8
    assert "resumed after epoch 2 (step 8)" in summary["notes"]
    assert (summary["config_hash"], summary["recipe_hash"]) == (before.config_hash, before.recipe_hash)
    # the test pass runs again on the old best.pt: the same images right, within a borderline image or two
    assert abs(summary["test_accuracy"] - before.test_accuracy) <= 2 / before.test_samples
    assert RunConfig.read(run).format == "cnnbench-config-v1" and RunSummary.read(run).format == SUMMARY_FORMAT
