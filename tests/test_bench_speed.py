"""Speed measurements on the CPU: latency, ONNX Runtime, sizes, the CLI contract."""

import json
import sys

import pytest

from cnnbench.bench import measure_model
from cnnbench.cli import main
from conftest import run_cli


@pytest.fixture
def argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["cnnbench"])  # main(argv) rewrites sys.argv


def test_measure_model_on_the_cpu_states_what_it_measured():
    r = measure_model("lenet5", (1, 28, 28), num_classes=10, device="cpu", onnx=True)
    assert r.params == 44_426 and r.flops == 563_280 and r.size_mb == pytest.approx(0.17, abs=0.01)
    assert r.gpu_throughput is None and r.gpu_name is None  # no GPU here: nothing invented
    assert 0 < r.cpu_latency_ms <= r.cpu_latency_p90_ms and 5 <= r.cpu_latency_repeats <= 30
    assert r.load_average is None or r.load_average >= 0
    assert r.onnx_latency_ms is not None and r.onnx_latency_ms > 0, r.notes
    assert r.cpu_threads >= 1 and r.versions["torch"]


@pytest.mark.slow
def test_speed_cli_json_for_a_group(tmp_path):
    proc = run_cli("speed", "--models", "lenet5,squeezenet1_1", "--input", "1x28x28", "--out", str(tmp_path), "--json")
    data = json.loads(proc.stdout)
    assert [m["model"] for m in data["models"]] == ["lenet5", "squeezenet1_1"]
    assert data["input"] == [1, 28, 28] and data["device"]["type"] in ("cpu", "cuda")
    assert json.loads((tmp_path / "squeezenet1_1.json").read_text())["input"] == [1, 28, 28]


@pytest.mark.slow
def test_speed_cli_rejects_a_bad_input_shape():
    proc = run_cli("speed", "--models", "lenet5", "--input", "28x28", check=False)
    assert proc.returncode == 2 and "--input '28x28': expected CxHxW" in proc.stderr


def test_speed_table_gives_p50_p90_threads_and_load_average(argv, capsys):
    assert main(["speed", "--models", "lenet5", "--input", "1x28x28"]) == 0
    out = capsys.readouterr().out  # not a terminal: plain lines
    header, row = (line.split() for line in out.splitlines()[1:3])
    assert header[-6:] == ["CPU", "ms", "p90", "ONNX", "ms", "p50"] and row[0] == "lenet5"
    p50, p90 = float(row[-3]), float(row[-2])
    assert 0 < p50 <= p90 and row[-1] == "—"  # no --onnx
    conditions = out.splitlines()[3]
    assert "p50/p90 over" in conditions and "repeats" in conditions
    assert f"{__import__('torch').get_num_threads()} torch thread(s)" in conditions
    assert "load average" in conditions


def test_speed_onnx_without_onnx_runtime_says_why_on_stderr(argv, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the onnx extra were not installed
    assert main(["speed", "--models", "lenet5", "--input", "1x28x28", "--onnx"]) == 0
    captured = capsys.readouterr()
    assert "--onnx: ONNX latency not measured: onnxruntime is not installed" in captured.err
    assert "pip install 'cnnbench[onnx]'" in captured.err
    assert captured.err.count("onnxruntime is not installed") == 1  # once, not once per model
    assert captured.out.splitlines()[2].split()[-1] == "—"
    r = measure_model("lenet5", (1, 28, 28), device="cpu", onnx=True)
    assert r.onnx_latency_ms is None and any("onnxruntime is not installed" in n for n in r.notes)
