"""steps.csv: training figures every few optimiser steps, so that runs shorter than an epoch have curves."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from cnnbench.engine import TrainConfig, fit
from cnnbench.engine.runlog import step_log_interval
from cnnbench.report.fig_curves import Curve, curve_data, fig_training_curves
from cnnbench.report.style import png_bytes
from cnnbench.rundir.tables import METRIC_COLUMNS, STEP_COLUMNS, StepLog, read_metrics, read_steps


@pytest.mark.parametrize(
    ("steps_per_epoch", "planned", "interval"),
    [
        (113, 40, 4),  # the quick preset's 40 steps: 10 points
        (844, 844 * 30, 84),  # MNIST at batch 64: 10 points per epoch
        (844, 844 * 200, 168),  # a long run: ~1,000 rows in all
        (5, 9, 1),  # fewer steps than points wanted: every step
    ],
)
def test_interval_gives_short_runs_points_and_long_runs_a_small_file(steps_per_epoch, planned, interval):
    assert step_log_interval(steps_per_epoch, planned) == interval
    assert planned // interval >= min(planned, 8)


def _rows(path):
    with path.open() as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def _forty_steps(**overrides: object) -> TrainConfig:
    """lenet5 on synthetic data (113 steps of 16 images per epoch), stopped after 40 optimiser steps."""
    return TrainConfig(
        data="synthetic",
        model="lenet5",
        batch_size=16,
        lr=3e-3,
        epochs=3,
        max_steps=40,
        warmup_epochs=0.1,
        progress=False,
        **overrides,
    )


@pytest.mark.slow
def test_a_run_of_40_steps_in_a_113_step_epoch_has_ten_points(tmp_path, isolated_cache):
    summary = fit(_forty_steps(), tmp_path / "run", quiet=True)
    assert summary["status"] == "completed" and summary["steps"] == 40
    assert summary["epochs_run"] == pytest.approx(40 / 113, abs=1e-4)  # the fraction of the epoch trained
    run = tmp_path / "run"
    header, steps = _rows(run / "steps.csv")
    assert tuple(header) == STEP_COLUMNS
    assert [int(r["step"]) for r in steps] == list(range(4, 41, 4))
    assert {int(r["steps_averaged"]) for r in steps} == {4}
    assert [float(r["epoch"]) for r in steps] == pytest.approx([s / 113 for s in range(4, 41, 4)], abs=1e-5)
    # the per-epoch file keeps its columns and order (a trailing step column is the only addition)
    header, epochs = _rows(run / "metrics.csv")
    assert tuple(header) == METRIC_COLUMNS and header[-1] == "step" and len(epochs) == 1
    assert int(epochs[0]["step"]) == 40
    # the windows split the epoch's samples evenly: their mean is the epoch's training loss
    window_losses = [float(r["train_loss"]) for r in steps]
    assert np.mean(window_losses) == pytest.approx(float(epochs[0]["train_loss"]), rel=1e-5)
    # what the report's curve figure draws: 10 training points against optimiser steps, validation at step 40
    data = curve_data(read_metrics(run), read_steps(run))
    assert data.x == "step" and data.points == 10 and data.interval == 4
    assert data.val_x.tolist() == [40.0] and data.steps == 40
    lr = data.lr
    assert lr.max() / lr.min() > 10  # warm-up then cosine: drawn on a log axis
    fig = fig_training_curves(
        "lenet5", "#1f77b4", [Curve("cosine, seed 0", read_metrics(run), 1, "completed", read_steps(run), True)]
    )
    assert png_bytes(fig).startswith(b"\x89PNG")
    # TensorBoard has the step scalars too, against the global step
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tb" / "steps"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss/train")] == list(range(4, 41, 4))
    assert len(events.Scalars("lr")) == 10


def test_resume_keeps_the_step_rows_up_to_the_checkpoint(tmp_path):
    path = tmp_path / "steps.csv"
    log = StepLog(path)
    log.extend([{"step": s, "epoch": s / 10, "train_loss": 1.0 / s, "steps_averaged": 2} for s in (2, 4, 6, 8)])
    again = StepLog.resume(path, 5)
    assert [r["step"] for r in again.rows] == [2, 4]
    again.extend([{"step": 6, "epoch": 0.6, "train_loss": 0.1}])
    assert [int(r["step"]) for r in _rows(path)[1]] == [2, 4, 6]


def test_long_runs_are_drawn_per_epoch_and_old_runs_without_steps_too(tmp_path):
    from support.synthetic_study import SyntheticStudy, write_synthetic_study

    study = write_synthetic_study(tmp_path / "s", SyntheticStudy(models=("lenet5", "vgg11"), short=("vgg11",)))
    long_run, short_run = study / "runs" / "mnist__lenet5__cosine__s0", study / "runs" / "mnist__vgg11__cosine__s0"
    long = curve_data(read_metrics(long_run), read_steps(long_run))
    assert long.x == "epoch" and long.points == len(read_metrics(long_run)) >= 9
    short = curve_data(read_metrics(short_run), read_steps(short_run))
    assert short.x == "step" and short.points == 10
    (short_run / "steps.csv").unlink()  # a run written before steps.csv: its one epoch, as before
    old = curve_data(read_metrics(short_run), read_steps(short_run))
    assert old.x == "epoch" and old.points == 1


@pytest.mark.slow
def test_a_run_stopped_mid_epoch_and_resumed_logs_the_same_steps(tmp_path, isolated_cache, monkeypatch):
    from cnnbench.engine import runlog
    from cnnbench.engine.stop import STOP

    cfg = _forty_steps(deterministic=True)
    fit(cfg, tmp_path / "whole", quiet=True)
    advance = runlog.Progress.advance
    calls = []

    def stop_after_step_8(self, info=""):
        calls.append(1)
        if len(calls) == 8:
            STOP.request("SIGTERM")  # as the signal would: the epoch stops before step 9, with a checkpoint
        advance(self, info)

    monkeypatch.setattr(runlog.Progress, "advance", stop_after_step_8)
    assert fit(cfg, tmp_path / "cut", quiet=True)["status"] == "interrupted"
    assert [int(r["step"]) for r in _rows(tmp_path / "cut" / "steps.csv")[1]] == [4, 8]
    monkeypatch.setattr(runlog.Progress, "advance", advance)
    assert fit(cfg, tmp_path / "cut", quiet=True, resume=True)["status"] == "completed"
    assert _rows(tmp_path / "cut" / "steps.csv") == _rows(tmp_path / "whole" / "steps.csv")
