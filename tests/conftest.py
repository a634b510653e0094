"""Shared test helpers. Tests run on the CPU with small real or generated data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _no_weight_downloads(monkeypatch):
    """No test downloads pretrained weights from the internet (test_models_download serves them on 127.0.0.1)."""
    monkeypatch.setenv("CNNBENCH_OFFLINE", "1")


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A private dataset/decode cache for this test, never the user's ~/.cache."""
    monkeypatch.setenv("CNNBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CNNBENCH_DATA", str(tmp_path / "data-home"))
    return tmp_path


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
