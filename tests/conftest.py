"""Shared test helpers. Tests run on the CPU with small real or generated data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _no_weight_downloads(monkeypatch):
    """No test downloads anything from the internet, weights or datasets (test_models_download and
    test_data_download serve them on 127.0.0.1 and lift the switch)."""
    monkeypatch.setenv("CNNBENCH_OFFLINE", "1")


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A private dataset/decode cache for this test, never the user's ~/.cache."""
    monkeypatch.setenv("CNNBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CNNBENCH_DATA", str(tmp_path / "data-home"))
    return tmp_path


@pytest.fixture(scope="session")
def engine_run(tmp_path_factory) -> Path:
    """A run directory written by the real engine, once per session (per xdist worker): LeNet-5 trained
    10 epochs on 600 generated shapes (≈ 88 % test accuracy), tested on 300. Tests that add files copy it first."""
    from cnnbench.engine import TrainConfig, fit

    cfg = TrainConfig(
        model="lenet5",
        data="synthetic",
        epochs=10,
        batch_size=64,
        lr=5e-3,
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
    out = tmp_path_factory.mktemp("engine-run") / "synthetic__lenet5__none__s0"
    summary = fit(cfg, out, quiet=True)
    assert summary["status"] == "completed", summary
    return out


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None, check: bool = True):
    """Run ``python -m cnnbench ARGS`` in a subprocess, as a user would."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "2", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "cnnbench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"cnnbench {' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc
