"""The training engine end to end on the CPU: real data, real models, real processes."""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnbench.engine import TrainConfig, fit
from cnnbench.errors import CnnbenchError
from conftest import run_cli

SYNTH = {"data": "synthetic", "model": "lenet5", "batch_size": 64, "lr": 3e-3, "progress": False}


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.slow
def test_lenet5_on_mnist_sample_reaches_95_percent(tmp_path, isolated_cache):
    proc = run_cli(
        "train",
        "--model",
        "lenet5",
        "--data",
        "mnist-sample",
        "--epochs",
        "12",
        "--lr",
        "4e-3",
        "--batch-size",
        "128",
        "--out",
        str(tmp_path / "run"),
        "--json",
    )
    summary = json.loads(proc.stdout)  # --json: exactly one JSON object on stdout
    assert summary["status"] == "completed"
    assert summary["test_accuracy"] >= 0.95, summary
    assert summary["train_time_s"] > 0
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.csv", "summary.json", "test_metrics.json", "model.json", "data.json"):
        assert (run / name).is_file(), name
    assert (run / "checkpoint" / "best.pt").is_file() and (run / "checkpoint" / "last.pt").is_file()
    assert any((run / "tb").iterdir())  # TensorBoard events
    rows = _metrics(run)
    assert [int(r["epoch"]) for r in rows] == list(range(1, 13))
    assert float(rows[-1]["lr"]) < float(rows[0]["lr"])  # cosine decayed
    for key in ("test_top5", "test_mean_class_accuracy", "params", "flops", "size_mb", "versions", "device"):
        assert summary[key] is not None, key
    assert summary["params"] == 44_426
    # `cnnbench eval` of the saved run reproduces the test accuracy
    evaluated = json.loads(run_cli("eval", str(run), "--json").stdout)
    assert evaluated["accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-9)
    assert evaluated["samples"] == 1000


@pytest.mark.slow
def test_early_stopping_stops_and_tests_the_best_checkpoint(tmp_path, isolated_cache):
    # lr so low that validation accuracy barely moves: patience 1 must end the run early
    cfg = TrainConfig(**{**SYNTH, "lr": 1e-6, "epochs": 15, "patience": 1, "max_train_samples": 256})
    summary = fit(cfg, tmp_path / "run", quiet=True)
    assert summary["status"] == "early_stopped"
    assert summary["epochs_run"] < 15
    assert summary["epochs_run"] - summary["best_epoch"] == 1
    best = torch.load(tmp_path / "run/checkpoint/best.pt", weights_only=True)
    assert best["epoch"] == summary["best_epoch"]


@pytest.mark.slow
def test_time_budget_fixes_the_step_count_and_states_it(tmp_path, isolated_cache):
    cfg = TrainConfig(**{**SYNTH, "epochs": 50, "time_budget_s": 2.0})
    summary = fit(cfg, tmp_path / "run", quiet=True)
    assert summary["status"] == "completed"
    assert any(n.startswith("time budget 2 s:") for n in summary["notes"]), summary["notes"]
    # the budget fixed the step count once, from a timed probe; the run then took exactly those steps
    noted = int(re.search(r"time budget 2 s: (\d+) steps", " ".join(summary["notes"])).group(1))
    assert summary["steps"] == noted
    rows = _metrics(tmp_path / "run")
    # the budget's last step falls inside an epoch: that epoch counts as the fraction trained
    assert summary["epochs_run"] == float(rows[-1]["epoch"]) and len(rows) == math.ceil(summary["epochs_run"])
    assert int(rows[-1]["step"]) == summary["steps"] and summary["test_accuracy"] is not None


@pytest.mark.slow
def test_target_accuracy_records_epoch_and_time(tmp_path, isolated_cache):
    cfg = TrainConfig(**{**SYNTH, "epochs": 4, "target_accuracy": 0.3})
    summary = fit(cfg, tmp_path / "run", quiet=True)
    rows = _metrics(tmp_path / "run")
    first = next(int(r["epoch"]) for r in rows if float(r["val_acc"]) >= 0.3)
    assert summary["epochs_to_target"] == first
    assert summary["time_to_target_s"] == pytest.approx(float(rows[first - 1]["train_time_s"]), rel=1e-4)
    assert first < cfg.epochs  # so that stopping there is visible below

    stopped = fit(cfg.replace(stop_at_target=True), tmp_path / "stopped", quiet=True)
    assert stopped["status"] == "early_stopped"
    assert len(_metrics(tmp_path / "stopped")) == first == stopped["epochs_to_target"]
    assert any("stopped at the target" in n for n in stopped["notes"])


def test_stop_at_target_needs_a_target_and_leaves_older_recipe_hashes_alone():
    with pytest.raises(CnnbenchError, match="--stop-at-target: needs --target-accuracy"):
        TrainConfig(stop_at_target=True)
    # runs written before the option existed must still group with today's runs of the same recipe
    cfg = TrainConfig(target_accuracy=0.9)
    later = ("stop_at_target", "lr_find_steps", "val_every_steps")  # options added after the first runs
    before = {k: v for k, v in cfg.to_dict().items() if k not in ("progress", "notes", "device", *later)}
    old_hash = hashlib.sha256(json.dumps(before, sort_keys=True, default=str).encode()).hexdigest()[:16]
    assert cfg.hash() == old_hash
    assert cfg.replace(stop_at_target=True).hash() != old_hash


class _NanAt(torch.nn.Module):
    """Wraps a model; its forward returns NaN from training call ``step`` on (a fault injection)."""

    def __init__(self, inner: torch.nn.Module, step: int) -> None:
        super().__init__()
        self.inner, self.step, self.calls = inner, step, 0
        self.num_features = inner.num_features

    def forward(self, x):
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls > self.step:
                return out * float("nan")
        return out


@pytest.mark.slow
def test_nan_at_a_chosen_step_marks_the_run_diverged_and_keeps_the_last_good_checkpoint(
    tmp_path, isolated_cache, monkeypatch
):
    import cnnbench.models as models

    real = models.create_model
    monkeypatch.setattr(models, "create_model", lambda *a, **k: _NanAt(real(*a, **k), step=40))
    cfg = TrainConfig(**{**SYNTH, "epochs": 5, "max_train_samples": 1280})  # 20 steps per epoch
    summary = fit(cfg, tmp_path / "run", quiet=True)
    assert summary["status"] == "diverged"
    assert "NaN/Inf at epoch 3, step 40" in summary["error"]
    last = torch.load(tmp_path / "run/checkpoint/last.pt", weights_only=True)
    assert last["epoch"] == 2  # the last good one: nothing written after the NaN
    assert all(torch.isfinite(t).all() for t in last["model"].values() if t.is_floating_point())
    assert torch.load(tmp_path / "run/checkpoint/best.pt", weights_only=True)["epoch"] <= 2
    assert len(_metrics(tmp_path / "run")) == 2


@pytest.mark.slow
def test_huge_learning_rate_diverges_cleanly(tmp_path, isolated_cache):
    cfg = TrainConfig(**{**SYNTH, "epochs": 3, "lr": 1e6, "optimizer": "sgd", "max_train_samples": 512})
    summary = fit(cfg, tmp_path / "run", quiet=True)
    assert summary["status"] == "diverged" and "NaN/Inf" in summary["error"]
    assert (tmp_path / "run/summary.json").is_file()
    # the same divergence inside the timed probe of --time-budget counts its steps once
    from cnnbench.engine.chunk import PROBE_STEPS

    assert summary["steps"] <= PROBE_STEPS  # so that the budgeted run below diverges inside its probe
    budget = fit(cfg.replace(time_budget_s=60.0), tmp_path / "budget", quiet=True)
    assert budget["status"] == "diverged" and budget["steps"] == summary["steps"]


class _OomAbove(torch.nn.Module):
    """Wraps a model; raises CUDA's out-of-memory error for training batches above ``limit``."""

    def __init__(self, inner: torch.nn.Module, limit: int) -> None:
        super().__init__()
        self.inner, self.limit = inner, limit
        self.num_features = inner.num_features

    def forward(self, x):
        if self.training and x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate for batch {x.shape[0]}")
        return self.inner(x)


@pytest.mark.slow
def test_out_of_memory_halves_the_batch_and_finishes(tmp_path, isolated_cache, monkeypatch):
    import cnnbench.models as models

    real = models.create_model
    monkeypatch.setattr(models, "create_model", lambda *a, **k: _OomAbove(real(*a, **k), limit=20))
    cfg = TrainConfig(**{**SYNTH, "epochs": 2, "batch_size": 64, "lr": 4e-3, "max_train_samples": 512})
    summary = fit(cfg, tmp_path / "run", quiet=True)
    assert summary["status"] == "completed"
    assert summary["batch_size"] == 16 and summary["lr"] == pytest.approx(1e-3)
    oom_notes = [n for n in summary["notes"] if "out of memory" in n]
    assert len(oom_notes) == 2 and "batch 64" in oom_notes[0] and "batch 16" in oom_notes[1]
    assert [int(r["batch_size"]) for r in _metrics(tmp_path / "run")] == [16, 16]


@pytest.mark.slow
def test_out_of_memory_at_batch_one_is_a_clear_error(tmp_path, isolated_cache, monkeypatch):
    import cnnbench.models as models

    real = models.create_model
    monkeypatch.setattr(models, "create_model", lambda *a, **k: _OomAbove(real(*a, **k), limit=0))
    cfg = TrainConfig(**{**SYNTH, "epochs": 1, "batch_size": 4, "max_train_samples": 64})
    with pytest.raises(CnnbenchError, match="out of memory at batch size 1 .*model lenet5"):
        fit(cfg, tmp_path / "run", quiet=True)


def _train_cmd(out: Path, epochs: int, *extra: str, data: str = "synthetic", batch: int = 32) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cnnbench",
        "train",
        "--model",
        "lenet5",
        "--data",
        data,
        "--epochs",
        str(epochs),
        "--batch-size",
        str(batch),
        "--lr",
        "3e-3",
        "--deterministic",
        "--seed",
        "3",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def _wait_for_rows(run_dir: Path, rows: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if (run_dir / "metrics.csv").exists() and len(_metrics(run_dir)) >= rows:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("run did not progress")


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_gives_the_same_metrics(tmp_path, isolated_cache):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # mnist-sample at batch 16: ~225 steps an epoch (synthetic data's epochs were so short that a quiet
    # machine finished all four within the 0.3 s this test once waited)
    cmd = functools.partial(_train_cmd, data="mnist-sample", batch=16)
    ref = tmp_path / "ref"
    subprocess.run(cmd(ref, 4), check=True, capture_output=True, env=env, timeout=300)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(cmd(killed, 4), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _wait_for_rows(killed, 2, proc)
    time.sleep(0.1)  # inside epoch 3
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(_metrics(killed)) < 4 and not (killed / "summary.json").exists()
    subprocess.run(cmd(killed, 4, "--resume"), check=True, capture_output=True, env=env, timeout=300)
    exact = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "batch_size")
    ref_rows, got_rows = _metrics(ref), _metrics(killed)
    assert [[r[k] for k in exact] for r in got_rows] == [[r[k] for k in exact] for r in ref_rows]
    a, b = _summary(ref), _summary(killed)
    for key in ("test_accuracy", "test_loss", "best_epoch", "epochs_run", "steps"):
        assert a[key] == b[key], key
    assert any("resumed after epoch" in n for n in b["notes"])
    wa = torch.load(ref / "checkpoint/last.pt", weights_only=True)["model"]
    wb = torch.load(killed / "checkpoint/last.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # bit-identical weights


@pytest.mark.slow
def test_sigterm_saves_mid_epoch_and_resume_completes(tmp_path, isolated_cache):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    # mnist-sample at batch 16: ~225 steps an epoch, so a signal 0.1 s after epoch 1's row lands inside
    # epoch 2 or 3 (a fast machine ran all of epoch 2 in 0.5 s)
    cmd = functools.partial(_train_cmd, data="mnist-sample", batch=16)
    proc = subprocess.Popen(cmd(out, 3), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _wait_for_rows(out, 1, proc)
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143  # 128 + SIGTERM, as a shell reports it
    summary = _summary(out)
    assert summary["status"] == "interrupted" and "SIGTERM" in summary["error"]
    ckpt = torch.load(out / "checkpoint/last.pt", weights_only=True)
    assert ckpt["run_state"]["batch_in_epoch"] > 0  # saved inside the epoch
    subprocess.run(cmd(out, 3, "--resume"), check=True, capture_output=True, env=env, timeout=300)
    ref = tmp_path / "ref"
    subprocess.run(cmd(ref, 3), check=True, capture_output=True, env=env, timeout=300)
    assert _summary(out)["status"] == "completed"
    assert _summary(out)["test_accuracy"] == _summary(ref)["test_accuracy"]
    assert [r["val_acc"] for r in _metrics(out)] == [r["val_acc"] for r in _metrics(ref)]


@pytest.mark.slow
def test_invalid_flags_are_rejected_before_any_work(tmp_path):
    proc = run_cli("train", "--model", "lenet5", "--epochs", "-2", "--out", str(tmp_path / "r"), check=False)
    assert proc.returncode == 2
    assert "--epochs -2: expected a whole number ≥ 1" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()
    proc = run_cli("train", "--model", "lenet6", "--data", "synthetic", "--out", str(tmp_path / "r"), check=False)
    assert proc.returncode == 2 and "lenet6" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("train", "--schedule", "linear", check=False)
    assert proc.returncode == 2 and "invalid choice: 'linear'" in proc.stderr


@pytest.mark.slow
def test_ddp_two_gloo_ranks_write_one_run_directory(tmp_path, isolated_cache):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--standalone",
        "-m",
        "cnnbench",
        "train",
        "--model",
        "lenet5",
        "--data",
        "synthetic",
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--lr",
        "3e-3",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = _summary(out)
    assert summary["world_size"] == 2 and summary["status"] == "completed"
    assert summary["test_accuracy"] > 0.3  # 10 classes: well above chance
    rows = _metrics(out)
    assert len(rows) == 3 and all(0 <= float(r["val_acc"]) <= 1 for r in rows)
    assert summary["test_samples"] == json.loads((out / "data.json").read_text())["test_size"]
    # each rank tested its own shard; the predictions file holds every test image once, in dataset order
    from cnnbench.checkpoints import run_data_config
    from cnnbench.data import load_dataset
    from cnnbench.rundir import TestPredictions

    preds = TestPredictions.read(out)
    assert (preds.target == load_dataset(run_data_config(out)).test.labels).all()
    assert preds.accuracy == pytest.approx(summary["test_accuracy"], abs=1e-12)
    assert preds.correct_top5.mean() == pytest.approx(summary["test_top5"], abs=1e-12)


@pytest.mark.slow  # trains two runs of a few steps
def test_a_dataset_given_to_fit_is_recorded_as_loaded_so_eval_reloads_the_same_images(tmp_path):
    import dataclasses

    from cnnbench.checkpoints import run_data_config
    from cnnbench.data import DataConfig, load_dataset

    ds = load_dataset(DataConfig(name="synthetic", synthetic_train=300, synthetic_test=100))
    cfg = TrainConfig(model="lenet5", data="synthetic", epochs=1, max_steps=2, device="cpu", progress=False)
    summary = fit(cfg, tmp_path / "run", dataset=ds, quiet=True)
    reloaded = load_dataset(run_data_config(tmp_path / "run"))
    assert (len(reloaded.train), len(reloaded.test)) == (len(ds.train), 100)  # not the flags' 2,000 / 500
    assert any("synthetic_train=300" in n and "synthetic_test=100" in n for n in summary["notes"])
    # a Dataset built by hand has no DataConfig: the flags' one is recorded, and the run says so
    by_hand = dataclasses.replace(ds, config=None)
    summary = fit(cfg, tmp_path / "by-hand", dataset=by_hand, quiet=True)
    assert any("without the DataConfig it was loaded with" in n for n in summary["notes"])
    plain = fit(cfg, tmp_path / "plain", quiet=True)  # loaded from the flags: nothing to say
    assert not any("DataConfig" in n or "other options" in n for n in plain["notes"])
