"""The learning-rate range test (--lr auto, cnnbench lr-find): its pick, its determinism, its place in a run."""

from __future__ import annotations

import csv
import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cnnbench.engine import TrainConfig, fit
from cnnbench.engine.lr_find import LrFindResult, find_lr, ramp_lr, range_test, smooth, smoothing, suggest_lr
from cnnbench.errors import ConfigError
from conftest import run_cli

# LeNet-5 on 640 generated shapes: a problem small enough to sweep the learning rate in a test
SMALL = {
    "model": "lenet5",
    "data": "synthetic",
    "batch_size": 32,
    "max_train_samples": 640,
    "max_test_samples": 300,
    "drop_rate": 0.0,
    "augment": "none",
    "precise_bn_samples": 0,
    "progress": False,
    "device": "cpu",
}


def test_ramp_is_exponential_from_start_to_end():
    lrs = [ramp_lr(i, 61, 1e-5, 1.0) for i in range(61)]
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(1.0)
    assert lrs[12] == pytest.approx(1e-4)  # 12 steps per decade
    assert np.allclose(np.diff(np.log(lrs)), math.log(10) / 12)


def test_smoothing_is_a_debiased_moving_average():
    assert smooth([2.0, 2.0, 2.0]) == pytest.approx([2.0, 2.0, 2.0])  # no pull towards 0 at the start
    s = smooth([1.0, 0.0], beta=0.9)
    assert s[1] == pytest.approx(0.9 * 0.1 / (1 - 0.81))


def test_the_pick_is_half_a_decade_below_the_smoothed_minimum():
    lrs = [ramp_lr(i, 61) for i in range(61)]  # 12 points a decade
    x = np.log10(lrs)
    # a loss that falls from 1e-3 on, is lowest at lr 0.1 and rises sharply after it
    loss = 2.3 - 1.5 / (1 + np.exp(-(x + 2) * 4)) + np.where(x > -1, (x + 1) * 20, 0)
    index = suggest_lr(lrs, list(loss))
    assert int(np.argmin(loss)) - index == 6  # half of 12 points
    assert lrs[index] == pytest.approx(0.1 / 10**0.5, rel=1e-6)


def test_a_lucky_first_batch_is_not_the_minimum_of_a_short_ramp():
    """A 20-step ramp whose first loss is a low outlier and whose loss falls later (measured on lenet5,
    synthetic data): the debiased average starts at that single batch; the pick must come from the fall."""
    lrs = [ramp_lr(i, 20) for i in range(20)]
    loss = [2.28, 2.31, 2.30, 2.33, 2.31, 2.32, 2.30, 2.29, 2.30, 2.29, 2.28, 2.27, 2.25, 2.26, 3.0, 2.3, 8.5]
    index = suggest_lr(lrs[: len(loss)], smooth(loss, smoothing(20)), 20)
    assert 1e-3 < lrs[index] < 3e-2


def test_a_cached_test_whose_pick_was_edited_is_run_again(tmp_path):
    """The pick must be the curve's own point on the ramp: an lr of 1e9 or 0.5 written by hand is no cache hit."""
    from cnnbench.engine.lr_find import _read_cached

    lrs = [ramp_lr(i, 20) for i in range(20)]
    good = LrFindResult(lrs=lrs, losses=[2.0] * 20, smoothed=[2.0] * 20, lr=lrs[7], index=7, steps=20)
    path = tmp_path / "entry.json"
    path.write_text(json.dumps(good.to_dict()))
    assert _read_cached(path).lr == lrs[7]
    for edited in (1e9, 0.5, -0.01):
        path.write_text(json.dumps({**good.to_dict(), "lr": edited}))
        assert _read_cached(path) is None, edited
    path.write_text(json.dumps({**good.to_dict(), "index": 99}))
    assert _read_cached(path) is None


def test_a_curve_that_only_rises_picks_the_start_and_says_so():
    lrs = [ramp_lr(i, 30) for i in range(30)]
    loss = [2.0 + 0.01 * i for i in range(30)]  # lowest at the first point
    assert suggest_lr(lrs, loss) == 0
    batches = iter([(torch.zeros(2, 1), torch.zeros(2, dtype=torch.long))] * 20)
    losses = iter(range(1, 21))

    def step(x, y):
        return torch.tensor(float(next(losses)) * 2), torch.tensor(0)  # summed over the batch of 2

    result = range_test(step, batches, lambda lr: None, 20)
    assert result.index == 0 and any("did not fall" in n for n in result.notes)


def test_lr_auto_and_its_steps_are_validated():
    assert TrainConfig(lr="AUTO").lr == "auto" and TrainConfig(lr="auto").lr_auto
    with pytest.raises(ConfigError, match=r"--lr 'fast': expected a number, or auto"):
        TrainConfig(lr="fast")
    with pytest.raises(ConfigError, match=r"--lr-find-steps 3: expected a number ≥ 10"):
        TrainConfig(lr="auto", lr_find_steps=3)
    with pytest.raises(ConfigError, match=r"--val-every-steps 0: expected a whole number ≥ 1"):
        TrainConfig(val_every_steps=0)


def _final_val_loss(tmp_path: Path, lr: float, steps: int) -> float:
    cfg = TrainConfig(**SMALL, lr=lr, schedule="none", epochs=50, max_steps=steps)
    summary = fit(cfg, tmp_path / f"sweep-{lr:g}", quiet=True)
    with (tmp_path / f"sweep-{lr:g}" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert summary["status"] in ("completed", "diverged")
    return float(rows[-1]["val_loss"]) if summary["status"] == "completed" and rows else math.inf


@pytest.mark.slow
def test_the_pick_is_within_a_factor_of_10_of_the_best_learning_rate_of_a_sweep(tmp_path, isolated_cache):
    """The stated factor: the pick lies within 10× of the lr that a sweep finds best (lowest validation loss
    after 60 steps at a constant lr), on a problem small enough to sweep here."""
    sweep = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1]
    losses = {lr: _final_val_loss(tmp_path, lr, 60) for lr in sweep}
    best = min(losses, key=losses.get)
    assert losses[best] < 0.5 * losses[sweep[0]]  # the sweep itself is informative: the best lr learns
    result = find_lr(TrainConfig(**SMALL, lr="auto"))
    assert best / 10 <= result.lr <= best * 10, (result.lr, losses)
    assert len(result.lrs) <= result.steps and result.rule == "min/3.2"


@pytest.mark.slow
def test_the_same_seed_gives_the_same_curve_and_pick(isolated_cache):
    a = find_lr(TrainConfig(**SMALL, lr="auto", lr_find_steps=30))
    b = find_lr(TrainConfig(**SMALL, lr="auto", lr_find_steps=30))
    assert a.losses == b.losses and a.lr == b.lr and a.index == b.index
    c = find_lr(TrainConfig(**SMALL, lr="auto", lr_find_steps=30, seed=1))
    assert c.losses != a.losses  # another seed: other initial weights and batches


@pytest.mark.slow
def test_lr_auto_records_the_pick_and_trains_exactly_as_the_picked_lr_would(tmp_path, isolated_cache):
    cfg = TrainConfig(**SMALL, lr="auto", epochs=2, lr_find_steps=40)
    auto = fit(cfg, tmp_path / "auto", quiet=True)
    picked = auto["lr_find"]["lr"]
    assert auto["status"] == "completed" and auto["lr"] == picked > 0
    assert auto["lr_find"]["rule"] == "min/3.2" and auto["lr_find"]["steps"] == 40
    config = yaml.safe_load((tmp_path / "auto" / "config.yaml").read_text())
    assert config["lr"] == "auto" and config["resolved"]["lr"] == picked
    curve = (tmp_path / "auto" / "lr_find.csv").read_text().splitlines()
    assert curve[0] == "step,lr,loss,smoothed_loss,picked" and len(curve) - 1 == auto["lr_find"]["steps_taken"]
    assert sum(line.endswith(",1") for line in curve[1:]) == 1
    assert any(n.startswith("--lr auto: the range test") and f"{picked:.3g}" in n for n in auto["notes"])
    # the test trained a copy: the run itself is the run of the picked value, from the same initial weights
    explicit = fit(cfg.replace(lr=picked), tmp_path / "explicit", quiet=True)
    assert explicit["test_accuracy"] == auto["test_accuracy"]
    a = torch.load(tmp_path / "auto/checkpoint/last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "explicit/checkpoint/last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_study_cache_serves_the_second_run_of_the_same_model_and_seed(tmp_path, isolated_cache):
    cfg = TrainConfig(**SMALL, lr="auto", epochs=1, lr_find_steps=20)
    first = fit(cfg, tmp_path / "a", quiet=True, lr_find_dir=tmp_path / "lr_find")
    cached = list((tmp_path / "lr_find").glob("*.json"))
    assert len(cached) == 1 and cached[0].name.startswith("lenet5__s0__")
    second = fit(cfg.replace(schedule="plateau"), tmp_path / "b", quiet=True, lr_find_dir=tmp_path / "lr_find")
    assert second["lr_find"]["cached"] and not first["lr_find"]["cached"]
    assert second["lr"] == first["lr"]
    assert (tmp_path / "b" / "lr_find.csv").read_text() == (tmp_path / "a" / "lr_find.csv").read_text()
    # another seed is another test
    fit(cfg.replace(seed=1), tmp_path / "c", quiet=True, lr_find_dir=tmp_path / "lr_find")
    assert len(list((tmp_path / "lr_find").glob("*.json"))) == 2
    # a damaged cache entry is run again, not trusted
    cached[0].write_text("{not json")
    again = fit(cfg, tmp_path / "d", quiet=True, lr_find_dir=tmp_path / "lr_find")
    assert not again["lr_find"]["cached"] and again["lr"] == first["lr"]
    said = f"{cached[0]} could not be read (damaged or edited): the range test ran again, replacing it"
    assert said in again["notes"]
    assert LrFindResult.from_dict(json.loads(cached[0].read_text())).lr == first["lr"]


def _train_auto(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "cnnbench", "train", "--model", "lenet5", "--data", "synthetic",
        "--batch-size", "32", "--max-train-samples", "640", "--epochs", "1", "--lr", "auto",
        "--lr-find-steps", "600", "--deterministic", "--no-progress", "--out", str(out), *extra,
    ]  # fmt: skip


def _signal_during_the_range_test(out: Path, sig: signal.Signals) -> subprocess.Popen:
    """A run with a 600-step range test, sent ``sig`` 0.5 s after the test began; returns the ended process."""
    proc = subprocess.Popen(_train_auto(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    while "range test" not in line:
        assert line, "the run ended before its range test started"
        line = proc.stderr.readline()
    time.sleep(0.5)
    proc.send_signal(sig)
    proc.communicate(timeout=120)
    return proc


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_run_stopped_during_its_range_test_resumes_to_the_same_pick(tmp_path, isolated_cache, sig):
    """A range test is not checkpointed: the resumed run repeats it (it is deterministic) and gets the same lr.
    SIGINT is honoured between two steps of the ramp (it once waited for the whole test): the run ends
    interrupted, exit 130, with no pick, no cache and no checkpoint."""
    ref = tmp_path / "ref"
    subprocess.run(_train_auto(ref), check=True, capture_output=True, timeout=600)
    out = tmp_path / "stopped"
    proc = _signal_during_the_range_test(out, sig)
    assert not (out / "lr_find.csv").exists() and not (out / "checkpoint" / "last.pt").exists()
    if sig == signal.SIGKILL:
        assert not (out / "summary.json").exists()
    else:
        assert proc.returncode == 130  # and the error says it stopped inside the test, not after it
        summary = json.loads((out / "summary.json").read_text())
        assert summary["status"] == "interrupted" and summary["lr"] is None and summary.get("lr_find") is None
        assert "during the learning-rate range test" in summary["error"]
    subprocess.run(_train_auto(out, "--resume"), check=True, capture_output=True, timeout=600)
    a, b = (json.loads((d / "summary.json").read_text()) for d in (ref, out))
    assert b["status"] == "completed" and b["lr"] == a["lr"] and b["test_accuracy"] == a["test_accuracy"]
    assert (out / "lr_find.csv").read_text() == (ref / "lr_find.csv").read_text()


@pytest.mark.slow
def test_lr_find_command_prints_the_curve_and_the_pick(tmp_path, isolated_cache):
    args = [
        "lr-find",
        "--model",
        "lenet5",
        "--data",
        "synthetic",
        "--max-train-samples",
        "640",
        "--lr-find-steps",
        "30",
    ]
    proc = run_cli(*args, "--json", "--csv", str(tmp_path / "curve.csv"))
    result = json.loads(proc.stdout)
    assert result["model"] == "lenet5" and len(result["lrs"]) == len(result["losses"]) <= 30
    assert result["lr"] == result["lrs"][result["index"]]
    assert (tmp_path / "curve.csv").read_text().count("\n") == len(result["lrs"]) + 1
    table = run_cli(*args)
    assert "← pick" in table.stdout and f"lr {result['lr']:.3g}" in table.stderr
    bad = run_cli("lr-find", "--model", "lenet5", "--lr", "1e-3", check=False)
    assert bad.returncode == 2 and "unrecognized arguments: --lr" in bad.stderr
    bad = run_cli(*args, "--csv", str(tmp_path), check=False)  # refused before the test, not after it
    assert bad.returncode == 2 and f"--csv {tmp_path}: is a directory" in bad.stderr
    for empty in ("", "-"):  # an empty path wrote nothing and said nothing; '-' wrote a file named '-'
        bad = run_cli(*args, "--csv", empty, check=False, cwd=tmp_path)
        assert bad.returncode == 2 and f"--csv {empty!r}: expected the path of a file" in bad.stderr
    assert not (tmp_path / "-").exists()
    one = json.loads(run_cli(*args[:5], "--max-train-samples", "1", "--lr-find-steps", "10", "--json").stdout)
    assert any("holds 1 of 10 classes" in n for n in one["notes"])  # as train warns of the same split
