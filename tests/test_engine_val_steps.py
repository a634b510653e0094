"""Validation every N steps (--val-every-steps), runs that stop at their target, and mid-epoch checkpoints."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnbench.engine import TrainConfig, fit

SYNTH = {
    "model": "lenet5",
    "data": "synthetic",
    "batch_size": 32,
    "lr": 3e-3,
    "max_train_samples": 640,  # 20 steps an epoch
    "max_test_samples": 300,
    "progress": False,
    "device": "cpu",
}


def _rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_validation_every_n_steps_writes_one_row_per_pass(tmp_path, isolated_cache):
    summary = fit(TrainConfig(**SYNTH, epochs=2, val_every_steps=7), tmp_path / "run", quiet=True)
    rows = _rows(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == [7, 14, 21, 28, 35, 40]  # and the run's last step
    assert [float(r["epoch"]) for r in rows] == pytest.approx([0.35, 0.7, 1.05, 1.4, 1.75, 2.0])
    assert summary["evaluations"] == 6 and summary["epochs_run"] == 2 and summary["images"] == 1280
    best = max(rows, key=lambda r: float(r["val_acc"]))
    assert summary["best_step"] == int(best["step"]) and summary["best_val_accuracy"] == float(best["val_acc"])
    assert torch.load(tmp_path / "run/checkpoint/best.pt", weights_only=True)["step"] == summary["best_step"]


@pytest.mark.slow
def test_validation_passes_do_not_change_the_training(tmp_path, isolated_cache):
    """Evaluating between steps consumes no randomness and touches no weight: the same run, other rows."""
    cfg = TrainConfig(**SYNTH, epochs=2, deterministic=True, drop_rate=0.5)
    plain = fit(cfg, tmp_path / "plain", quiet=True)
    steps = fit(cfg.replace(val_every_steps=3), tmp_path / "steps", quiet=True)
    assert plain["steps"] == steps["steps"] == 40
    a = torch.load(tmp_path / "plain/checkpoint/last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "steps/checkpoint/last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert len(_rows(tmp_path / "steps")) == 14 and len(_rows(tmp_path / "plain")) == 2


@pytest.mark.slow
def test_stop_at_target_ends_at_the_first_passing_validation(tmp_path, isolated_cache):
    cfg = TrainConfig(**SYNTH, epochs=10, val_every_steps=5, target_accuracy=0.6, stop_at_target=True)
    summary = fit(cfg, tmp_path / "run", quiet=True)
    rows = _rows(tmp_path / "run")
    assert summary["status"] == "early_stopped"
    assert all(float(r["val_acc"]) < 0.6 for r in rows[:-1]) and float(rows[-1]["val_acc"]) >= 0.6
    step = int(rows[-1]["step"])
    assert summary["steps"] == summary["steps_to_target"] == step and step % 5 == 0
    assert summary["images_to_target"] == summary["images"] == step * 32
    assert summary["epochs_to_target"] == pytest.approx(step / 20)
    assert summary["time_to_target_s"] == pytest.approx(float(rows[-1]["train_time_s"]), rel=1e-4)
    assert any(n.startswith("stopped at the target") for n in summary["notes"])
    # the run it stopped: without the stop it trains on (the same schedule) and records the same first passing step
    full = fit(cfg.replace(stop_at_target=False), tmp_path / "full", quiet=True)
    assert full["steps_to_target"] == step and full["steps"] == 200
    # the test pass used the checkpoint of the passing validation
    assert torch.load(tmp_path / "run/checkpoint/best.pt", weights_only=True)["step"] == step


@pytest.mark.slow
def test_a_target_never_reached_leaves_the_costs_empty(tmp_path, isolated_cache):
    cfg = TrainConfig(**SYNTH, epochs=1, max_steps=6, val_every_steps=3, target_accuracy=0.999, stop_at_target=True)
    summary = fit(cfg, tmp_path / "run", quiet=True)
    assert summary["status"] == "completed" and summary["steps"] == 6
    for key in ("steps_to_target", "images_to_target", "epochs_to_target", "time_to_target_s"):
        assert summary[key] is None, key


def _cmd(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "cnnbench", "train", "--model", "lenet5", "--data", "mnist-sample",
        "--batch-size", "16", "--epochs", "3", "--lr", "3e-3", "--deterministic", "--no-progress",
        "--val-every-steps", "40", "--target-accuracy", "0.93", "--stop-at-target", "--out", str(out), *extra,
    ]  # fmt: skip


def _wait_for(path: Path, rows: int, proc: subprocess.Popen, timeout: float = 300) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if path.exists() and len(_rows(path.parent)) >= rows:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the run did not progress")


@pytest.mark.slow
def test_a_stopped_at_target_run_interrupted_mid_window_resumes_to_the_same_stop(tmp_path, isolated_cache):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref = tmp_path / "ref"
    subprocess.run(_cmd(ref), check=True, capture_output=True, env=env, timeout=600)
    reference = json.loads((ref / "summary.json").read_text())
    assert reference["status"] == "early_stopped" and reference["steps"] > 80  # so a stop after row 2 is mid-run
    out = tmp_path / "run"
    proc = subprocess.Popen(_cmd(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _wait_for(out / "metrics.csv", 2, proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    stopped = json.loads((out / "summary.json").read_text())
    assert stopped["status"] == "interrupted"
    state = torch.load(out / "checkpoint/last.pt", weights_only=True)["run_state"]
    assert state["step"] % 40 != 0 or state["partial"] is None  # where it stood, inside a window or at its end
    subprocess.run(_cmd(out, "--resume"), check=True, capture_output=True, env=env, timeout=600)
    resumed = json.loads((out / "summary.json").read_text())
    for key in ("status", "steps", "steps_to_target", "images_to_target", "test_accuracy", "best_step"):
        assert resumed[key] == reference[key], key
    assert [r["val_acc"] for r in _rows(out)] == [r["val_acc"] for r in _rows(ref)]


@pytest.mark.slow
def test_checkpoint_every_steps_saves_inside_the_epoch_and_a_killed_run_resumes_there(tmp_path, isolated_cache):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [
        sys.executable, "-m", "cnnbench", "train", "--model", "lenet5", "--data", "mnist-sample",
        "--batch-size", "16", "--epochs", "1", "--lr", "3e-3", "--deterministic", "--no-progress",
        "--checkpoint-every-steps", "25",
    ]  # fmt: skip
    ref = tmp_path / "ref"
    subprocess.run([*base, "--out", str(ref)], check=True, capture_output=True, env=env, timeout=600)
    out = tmp_path / "run"
    proc = subprocess.Popen([*base, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    last = out / "checkpoint" / "last.pt"
    end = time.time() + 300
    while not last.exists():
        assert proc.poll() is None and time.time() < end, "no mid-epoch checkpoint appeared"
        time.sleep(0.02)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = torch.load(last, weights_only=True)["run_state"]
    assert state["epoch"] == 0 and state["batch_in_epoch"] > 0 and state["step"] % 25 == 0
    subprocess.run([*base, "--out", str(out), "--resume"], check=True, capture_output=True, env=env, timeout=600)
    a, b = (json.loads((d / "summary.json").read_text()) for d in (ref, out))
    assert b["test_accuracy"] == a["test_accuracy"] and b["steps"] == a["steps"]
    assert any(f"resumed after epoch 0 (step {state['step']})" in n for n in b["notes"])
