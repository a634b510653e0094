"""Speed, measured the same way for every model: GPU throughput, CPU latency, ONNX Runtime latency.

Protocol (timm's benchmark.py, airbench): eval mode, ``torch.inference_mode``, warm-up iterations
first, the device synchronised before each clock read, and the dtype, batch and device stated with
every number. A GPU out-of-memory halves the batch and says so.
"""

from __future__ import annotations

import contextlib
import importlib.util
import statistics
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from cnnbench.utils.env import resolve_device, synchronize, versions
from cnnbench.utils.threads import load_average


@dataclass
class SpeedResult:
    model: str
    input: list[int]  # [C, H, W]
    num_classes: int
    params: int
    size_mb: float
    flops: int  # 2 × MACs at this input size
    gpu_throughput: float | None = None  # images/s, eval, batch gpu_batch_size
    gpu_name: str | None = None
    gpu_dtype: str | None = None
    gpu_batch_size: int | None = None
    gpu_compiled: bool = False
    cpu_latency_ms: float | None = None  # batch 1, median (p50) over cpu_latency_repeats timed calls
    cpu_latency_p90_ms: float | None = None  # 90th percentile over the same calls
    cpu_latency_repeats: int | None = None
    cpu_threads: int | None = None  # torch intra-op threads during the CPU timing
    load_average: float | None = None  # 1-minute load average just before the CPU timing (None where unknown)
    onnx_latency_ms: float | None = None  # ONNX Runtime, CPU, batch 1, median
    test_time_s: float | None = None  # one pass over a test split at test_batch_size (when data given)
    test_batch_size: int | None = None
    notes: list[str] = field(default_factory=list)
    versions: dict[str, Any] = field(default_factory=versions)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@torch.inference_mode()
def gpu_throughput(
    model: torch.nn.Module,
    input_shape: tuple[int, int, int],
    device: torch.device,
    *,
    batch_size: int = 256,
    dtype: torch.dtype = torch.bfloat16,
    channels_last: bool = True,
    warmup: int = 10,
    iters: int = 30,
    notes: list[str] | None = None,
) -> tuple[float, int]:
    """Images per second of ``model`` in eval mode; returns (throughput, batch size used)."""
    model = model.to(device).eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    while True:
        try:
            x = torch.randn(batch_size, *input_shape, device=device)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
                for _ in range(warmup):
                    model(x)
                synchronize(device)
                start = time.perf_counter()
                for _ in range(iters):
                    model(x)
                synchronize(device)
            return batch_size * iters / (time.perf_counter() - start), batch_size
        except torch.OutOfMemoryError:
            if batch_size == 1:
                raise
            del x
            torch.cuda.empty_cache()
            if notes is not None:
                notes.append(f"out of memory at batch {batch_size}; retried at {batch_size // 2}")
            batch_size //= 2


class Latency(NamedTuple):
    """Batch-1 latency over repeated timed calls, in ms."""

    p50_ms: float  # median
    p90_ms: float
    repeats: int  # timed calls after the warm-up


@torch.inference_mode()
def cpu_latency(
    model: torch.nn.Module,
    input_shape: tuple[int, int, int],
    *,
    warmup: int = 5,
    iters: int = 30,
    max_seconds: float = 5,
) -> Latency:
    """Median and 90th-percentile latency of one image on the CPU (fp32), over ``iters`` timed calls
    (at least 5, fewer than ``iters`` when they take more than ``max_seconds``)."""
    model = model.to("cpu").eval()
    x = torch.randn(1, *input_shape)
    for _ in range(warmup):
        model(x)
    times: list[float] = []
    budget_end = time.perf_counter() + max_seconds
    while len(times) < iters and (len(times) < 5 or time.perf_counter() < budget_end):
        t0 = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return Latency(statistics.median(times), times[min(len(times) - 1, int(0.9 * len(times)))], len(times))


#: Modules ``--onnx`` needs; the ``onnx`` extra of pyproject.toml installs them.
ONNX_MODULES = ("onnx", "onnxruntime")


def onnx_unavailable() -> str | None:
    """Why ONNX Runtime latency cannot be measured here (a missing package), or None when it can."""
    missing = [m for m in ONNX_MODULES if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (
        f"ONNX latency not measured: {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed "
        "(pip install 'cnnbench[onnx]', or pip install -e '.[onnx]' in a checkout)"
    )


def onnx_latency(model: torch.nn.Module, input_shape: tuple[int, int, int], *, iters: int = 30) -> float:
    """Export to ONNX and time ONNX Runtime on the CPU at batch 1 (median ms)."""
    import numpy as np
    import onnxruntime as ort

    model = model.to("cpu").eval()
    x = torch.randn(1, *input_shape)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        # The TorchScript exporter (deprecated since 2.9, still shipped) exports every zoo model at any
        # input size; say so once in the docs rather than on every run.
        with contextlib.redirect_stdout(None), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(model, (x,), str(path), input_names=["x"], output_names=["logits"], dynamo=False)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy().astype(np.float32)}
        for _ in range(5):
            session.run(None, feed)
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


@torch.inference_mode()
def test_pass_seconds(model: torch.nn.Module, loader, device: torch.device) -> float:
    """One pass over ``loader`` (the test split at its batch size), synchronised."""
    model = model.to(device).eval()
    synchronize(device)
    start = time.perf_counter()
    for x, _ in loader:
        model(x)
    synchronize(device)
    return time.perf_counter() - start


def _measure_gpu(result: SpeedResult, model: torch.nn.Module, dev: torch.device, batch_size: int, compile: bool):
    """The GPU figures of ``result``: throughput at the largest batch that fits (up to ``batch_size``), bf16."""
    gpu_model = model.to(dev)
    if compile:
        gpu_model = torch.compile(gpu_model)
        result.gpu_compiled = True
    input_shape = tuple(result.input)
    result.gpu_throughput, result.gpu_batch_size = gpu_throughput(
        gpu_model, input_shape, dev, batch_size=batch_size, notes=result.notes
    )
    result.gpu_name, result.gpu_dtype = torch.cuda.get_device_name(dev), "bf16"


def measure_model(
    name: str,
    input_shape: tuple[int, int, int],
    *,
    num_classes: int = 10,
    device: str | torch.device = "auto",
    gpu_batch_size: int = 256,
    onnx: bool = False,
    compile: bool = False,
    test_loader=None,
    model: torch.nn.Module | None = None,
) -> SpeedResult:
    """Measure one model at one input size; the GPU part only when a GPU is there.

    Args:
        model: an already built (e.g. trained) model; default: ``create_model(name, ...)``.
        test_loader: batches of a test split (at its batch size) for ``test_time_s``.
    """
    from cnnbench.models import create_model, summarize

    dev = resolve_device(device)
    c, h, w = input_shape
    if model is None:
        model = create_model(name, num_classes=num_classes, in_chans=c, input_size=h)
    summary = summarize(model, input_shape, layers=False)
    result = SpeedResult(
        model=name,
        input=[c, h, w],
        num_classes=num_classes,
        params=summary.params,
        size_mb=summary.size_mb,
        flops=summary.flops,
    )
    if dev.type == "cuda":
        _measure_gpu(result, model, dev, gpu_batch_size, compile)
    if test_loader is not None:
        result.test_time_s = test_pass_seconds(model, test_loader, dev)
        result.test_batch_size = getattr(test_loader, "batch_size", None)
    result.load_average = load_average()
    result.cpu_threads = torch.get_num_threads()
    latency = cpu_latency(model, input_shape)
    result.cpu_latency_ms, result.cpu_latency_p90_ms = latency.p50_ms, latency.p90_ms
    result.cpu_latency_repeats = latency.repeats
    if onnx:
        _measure_onnx(result, model, input_shape)
    model.to("cpu")
    return result


def _measure_onnx(result: SpeedResult, model: torch.nn.Module, input_shape: tuple[int, int, int]) -> None:
    """The ONNX Runtime latency of ``result``, or a note saying why there is none."""
    if (reason := onnx_unavailable()) is not None:
        result.notes.append(reason)
        return
    try:
        result.onnx_latency_ms = onnx_latency(model, input_shape)
    except Exception as exc:  # an exporter gap for one architecture must not stop a study
        result.notes.append(f"ONNX export/run failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
