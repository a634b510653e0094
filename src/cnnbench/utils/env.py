"""Where a measurement ran: devices, library versions, seeding, synchronised clocks."""

from __future__ import annotations

import os
import platform
import random
import time
from importlib import metadata
from typing import Any

import numpy as np
import torch

from cnnbench.errors import ConfigError
from cnnbench.utils.threads import load_average

DEVICE_CHOICES = ("auto", "cpu", "cuda")
_VERSIONED = ("cnnbench", "torch", "torchvision", "timm", "numpy", "kornia", "scikit-learn", "openTSNE")


def versions() -> dict[str, str | None]:
    """Versions of Python and the libraries a result depends on."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    out["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
    return out


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` is the first CUDA GPU when there is one, else the CPU.

    Raises:
        ConfigError: naming ``--device`` when the value is unknown or CUDA is asked for but absent.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: no CUDA GPU is visible to PyTorch; use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"--device {device!r}: expected one of {', '.join(DEVICE_CHOICES)} (or cuda:N)")


def device_info(device: torch.device | str = "auto") -> dict[str, Any]:
    """Name and size of the device, plus CPU count and torch threads, for result files."""
    device = resolve_device(device)
    info: dict[str, Any] = {
        "type": device.type,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        # what decides speed on a shared CPU (utils/threads.py); the load is the 1-minute average
        # when this was called: a run's summary calls it at the end of training
        "omp_spin_count": os.environ.get("GOMP_SPINCOUNT"),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average": load_average(),
        # which CPU kernels ran: PyTorch's dispatch level, and oneDNN's cap when set (it decides, for
        # one, whether the engine pads small-map convolutions: models/cpu_conv.py)
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            name=props.name, memory_gb=round(props.total_memory / 2**30, 1), capability=f"{props.major}.{props.minor}"
        )
    else:
        info["name"] = f"CPU ({info['cpu']}, {info['cpu_count']} cores)"
    return info


def device_label(device: torch.device | str = "auto") -> str:
    return str(device_info(device)["name"])


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Ask torch for deterministic kernels (bit-exact reruns on the CPU; slower on a GPU)."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=False)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work, so a clock read afterwards measures it."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """``with Timer(device) as t: ...; t.seconds`` — device-synchronised wall time."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.seconds = 0.0

    def __enter__(self) -> Timer:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start
