"""Speed measurements on the CPU: latency, ONNX Runtime, sizes, the CLI contract."""

import json

import pytest

from cnnbench.bench import measure_model
from conftest import run_cli


def test_measure_model_on_the_cpu_states_what_it_measured():
    r = measure_model("lenet5", (1, 28, 28), num_classes=10, device="cpu", onnx=True)
    assert r.params == 44_426 and r.flops == 563_280 and r.size_mb == pytest.approx(0.17, abs=0.01)
    assert r.gpu_throughput is None and r.gpu_name is None  # no GPU here: nothing invented
    assert 0 < r.cpu_latency_ms <= r.cpu_latency_p90_ms
    assert r.onnx_latency_ms is not None and r.onnx_latency_ms > 0, r.notes
    assert r.cpu_threads >= 1 and r.versions["torch"]


def test_speed_cli_json_for_a_group(tmp_path):
    proc = run_cli("speed", "--models", "lenet5,squeezenet1_1", "--input", "1x28x28", "--out", str(tmp_path), "--json")
    data = json.loads(proc.stdout)
    assert [m["model"] for m in data["models"]] == ["lenet5", "squeezenet1_1"]
    assert data["input"] == [1, 28, 28] and data["device"]["type"] in ("cpu", "cuda")
    assert json.loads((tmp_path / "squeezenet1_1.json").read_text())["input"] == [1, 28, 28]


def test_speed_cli_rejects_a_bad_input_shape():
    proc = run_cli("speed", "--models", "lenet5", "--input", "28x28", check=False)
    assert proc.returncode == 2 and "--input '28x28': expected CxHxW" in proc.stderr
