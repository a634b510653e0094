"""Speed measurements: throughput, latency, ONNX Runtime, test-pass time."""

from cnnbench.bench.speed import (
    Latency,
    SpeedResult,
    cpu_latency,
    gpu_throughput,
    measure_model,
    onnx_latency,
    onnx_unavailable,
)

__all__ = [
    "Latency",
    "SpeedResult",
    "cpu_latency",
    "gpu_throughput",
    "measure_model",
    "onnx_latency",
    "onnx_unavailable",
]
