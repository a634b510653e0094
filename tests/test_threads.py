"""CPU thread settings: what is set before torch loads, what torch then sees, and --threads on the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from cnnbench.errors import ConfigError
from cnnbench.utils.threads import (
    SPIN_COUNT,
    check_threads,
    configure_cpu_threads,
    openmp_waits_briefly,
    threads_from_argv,
)

CLEAN_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CNNBENCH_THREADS")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_KEYS}
    env.update(extra)
    return env


def test_fills_in_the_spin_count_and_threads() -> None:
    env: dict[str, str] = {}
    s = configure_cpu_threads(3, env=env)
    assert env["GOMP_SPINCOUNT"] == str(SPIN_COUNT)
    assert env["OMP_NUM_THREADS"] == "3" and env["MKL_NUM_THREADS"] == "3"
    assert (s.threads, s.spin_count, s.source) == (3, str(SPIN_COUNT), "cnnbench")


def test_a_users_own_openmp_settings_win() -> None:
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    s = configure_cpu_threads(None, env=env)
    assert "GOMP_SPINCOUNT" not in env and "OMP_NUM_THREADS" not in env
    assert (s.wait_policy, s.source) == ("ACTIVE", "user environment")
    env = {"GOMP_SPINCOUNT": "5"}
    assert configure_cpu_threads(None, env=env).spin_count == "5"


def test_openmp_waits_briefly_reads_the_wait_policy_and_spin_count() -> None:
    env: dict[str, str] = {}
    assert not openmp_waits_briefly(env)  # libgomp's default: 300,000 spins
    configure_cpu_threads(None, env=env)
    assert openmp_waits_briefly(env)
    assert openmp_waits_briefly({"OMP_WAIT_POLICY": "PASSIVE"})
    assert not openmp_waits_briefly({"OMP_WAIT_POLICY": "active", "GOMP_SPINCOUNT": "0"})
    assert not openmp_waits_briefly({"GOMP_SPINCOUNT": "300000"}) and not openmp_waits_briefly({"GOMP_SPINCOUNT": "3M"})


def test_threads_default_from_the_environment_variable() -> None:
    env = {"CNNBENCH_THREADS": "2"}
    assert configure_cpu_threads(None, env=env).threads == 2
    with pytest.raises(ConfigError, match="CNNBENCH_THREADS 'many'"):
        configure_cpu_threads(None, env={"CNNBENCH_THREADS": "many"})


@pytest.mark.parametrize("value,expected", [(None, None), ("auto", None), ("0", None), ("4", 4), (2, 2)])
def test_check_threads(value, expected) -> None:
    assert check_threads(value) == expected


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_check_threads_names_the_flag(value) -> None:
    with pytest.raises(ConfigError, match=f"--threads '{value}'.*positive whole number"):
        check_threads(value)


def test_threads_from_argv() -> None:
    assert threads_from_argv(["train", "--threads", "3", "--model", "x"]) == "3"
    assert threads_from_argv(["train", "--threads=auto"]) == "auto"
    assert threads_from_argv(["train", "--model", "x"]) is None
    assert threads_from_argv(["train", "--", "--threads", "3"]) is None


@pytest.mark.slow
def test_python_api_sets_what_torch_sees_when_called_first() -> None:
    code = (
        "import os\n"
        "from cnnbench.utils.threads import configure_cpu_threads\n"
        "s = configure_cpu_threads(1)\n"
        "import torch\n"
        "print(torch.get_num_threads(), os.environ['GOMP_SPINCOUNT'], s.source)\n"
        "late = configure_cpu_threads(2)\n"
        "print(torch.get_num_threads(), late.source)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == f"1 {SPIN_COUNT} cnnbench"
    # later, the thread count still changes (set_num_threads); the spin setting is the one already read
    assert out[1] == "2 cnnbench"


@pytest.mark.slow
def test_called_after_torch_it_says_so() -> None:
    code = (
        "import torch\n"
        "from cnnbench.utils.threads import configure_cpu_threads\n"
        "s = configure_cpu_threads(1)\n"
        "print(torch.get_num_threads(), s.source, '|', s.notes[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=clean_env(), capture_output=True, text=True, check=True)
    assert out.stdout.startswith("1 too late (torch was already imported) | torch was imported before")


@pytest.mark.slow
def test_train_threads_flag_reaches_torch_and_the_summary(tmp_path) -> None:
    out = tmp_path / "run"
    subprocess.run(
        [sys.executable, "-m", "cnnbench", "train", "--model", "lenet5", "--data", "synthetic", "--epochs", "1",
         "--max-steps", "3", "--no-progress", "--threads", "1", "--out", str(out)],
        env=clean_env(), check=True, capture_output=True, text=True,
    )  # fmt: skip
    device = json.loads((out / "summary.json").read_text())["device"]
    assert device["torch_threads"] == 1
    assert device["omp_spin_count"] == str(SPIN_COUNT)
    assert device["omp_wait_policy"] is None
    assert isinstance(device["load_average"], float)
    assert device["cpu_capability"] in ("AVX2", "AVX512", "DEFAULT", "NO AVX", "VSX", "ZVECTOR", "SVE256")
    assert device["onednn_max_cpu_isa"] == (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA"))


@pytest.mark.slow
def test_a_bad_threads_value_exits_2_before_any_work(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "cnnbench", "train", "--model", "lenet5", "--threads", "lots",
         "--out", str(tmp_path / "r")],
        env=clean_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--threads 'lots'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r").exists()


def test_report_states_threads_spin_and_load_range() -> None:
    from cnnbench.report.sections.header import _cpu_text

    devices = [
        {"type": "cpu", "cpu_count": 2, "torch_threads": 2, "omp_spin_count": "10000", "load_average": 0.4},
        {"type": "cpu", "cpu_count": 2, "torch_threads": 2, "omp_spin_count": "10000", "load_average": 3.25},
        {"type": "cuda", "name": "H100"},
    ]
    text = _cpu_text(devices)
    assert text is not None
    assert text.startswith(
        "2 torch threads; GOMP_SPINCOUNT=10000; load average 0.4–3.2 at the end of training on 2 cores"
    )
    assert _cpu_text([{"type": "cuda"}, None]) is None
