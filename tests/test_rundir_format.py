"""Run directories written by an earlier cnnbench stay readable (issue [3/5]).

``tests/data/rundir-2026-11-30/`` holds the text files of a run directory as ``cnnbench train`` wrote
them on 2026-11-30, before ``--stop-at-target`` existed (``cnnbench train --model lenet5 --data synthetic
--epochs 2 --max-train-samples 256 --target-accuracy 0.5``; the weights are not kept in git). Whatever
the format becomes, this directory must still be read, and its recipe must keep its hash: otherwise a
report would split runs of one recipe made before and after an upgrade.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import yaml

from cnnbench.engine.config import TrainConfig
from cnnbench.report.stats import wilson_interval
from cnnbench.rundir import DERIVED_SECTIONS, RunSummary, recipe_hash

FROZEN = Path(__file__).resolve().parent / "data" / "rundir-2026-11-30"
RUN = FROZEN / "runs" / "synthetic__lenet5__cosine__s0"


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
