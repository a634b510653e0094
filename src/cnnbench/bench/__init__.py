"""Speed measurements: throughput, latency, ONNX Runtime, test-pass time."""

from cnnbench.bench.speed import SpeedResult, cpu_latency, gpu_throughput, measure_model, onnx_latency

__all__ = ["SpeedResult", "cpu_latency", "gpu_throughput", "measure_model", "onnx_latency"]
