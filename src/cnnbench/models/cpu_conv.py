"""Convolutions that keep oneDNN's fast weight-gradient kernels on maps smaller than the kernel (CPU).

At 28×28 the seed-mnist models end on 2×2 and 4×4 maps, where their 3×3 and 5×5 convolutions see an
input smaller than the kernel. oneDNN's AVX2 kernels (PyTorch's CPU convolutions on a CPU without
AVX-512) then refuse their direct weight-gradient path and fall back to GEMMs (``ONEDNN_VERBOSE=1``
names ``x64:gemm:jit`` instead of ``jit:avx2``); for depthwise layers that is one small GEMM per
channel: 20-25 ms instead of 4-12 ms for MobileNetV3-Small's 576-channel 5×5 layer on 2×2 maps at
batch 64 (2-core AMD EPYC, torch 2.14). Padding the input explicitly and convolving without padding
gives oneDNN an input at least as large as the kernel, and it takes the fast kernel again. Per
training step (measured by ``benchmarks/small_maps_cpu.py``, figures in docs/benchmarks.md) the
lightweight models gain most.

The output is bit-identical (the same forward kernel over the same products); the gradients come
from other kernels that sum in another order (about 1e-6 relative; a depthwise layer's input
gradient stays bit-identical), so a CPU run's last digits differ from the stock layer's, and are as
reproducible. The layer's parameters and ``state_dict``
are unchanged: checkpoints load either way. On a GPU, or on maps at least as large as the kernel,
the layer runs exactly as ``nn.Conv2d``.

Only oneDNN's AVX2 kernels refuse such inputs: its AVX-512 kernels take them directly (2-core Intel
Xeon with AVX-512, torch 2.14: ``jit:avx512_core`` stock and padded), and there the padding only adds
a copy and larger maps (MobileNetV3-Small 0.80x, MNASNet 0.85x, EfficientNet-B0 0.90x per step).
Below AVX2 (SSE4.1, AVX) oneDNN takes the GEMMs either way. So the engine pads only where oneDNN
runs its AVX2 kernels: :func:`onednn_refuses_small_maps`.
"""

from __future__ import annotations

import os
import platform

import torch
import torch.nn.functional as F
from torch import nn


class PaddedConv2d(nn.Conv2d):
    """``nn.Conv2d`` (zero padding) that pads explicitly when a CPU input is smaller than its kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = _effective_kernel(self)
        if x.device.type == "cpu" and (x.shape[-2] < kh or x.shape[-1] < kw):
            ph, pw = self.padding  # type: ignore[misc]  # ints: only such layers are converted
            x = F.pad(x, (pw, pw, ph, ph))
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return super().forward(x)


#: oneDNN's ISA names (``ONEDNN_MAX_CPU_ISA``) of its AVX2 family, whose direct weight-gradient
#: kernels refuse inputs smaller than the kernel (checked with ``ONEDNN_VERBOSE=1``).
_AVX2_ISAS = ("AVX2", "AVX2_VNNI", "AVX2_VNNI_2")
#: CPU features oneDNN's ``avx512_core`` kernels need (their absence leaves it on AVX2).
_AVX512_CORE = ("avx512_f", "avx512_bw", "avx512_vl", "avx512_dq")


def cpu_vector_isa() -> str:
    """The CPU's widest vector ISA as oneDNN would use it: "avx512", "avx2" or "older" (x86 without
    AVX2, or not x86). Read from the hardware (``torch.cpu.get_capabilities()``, cpuinfo), so
    ``ATEN_CPU_CAPABILITY``, which only steers PyTorch's own kernels, does not change it."""
    if platform.machine().lower() not in ("x86_64", "amd64", "x86", "i686"):
        return "older"
    caps = getattr(torch.cpu, "get_capabilities", None)
    if caps is not None:
        features = caps()
        if all(features.get(name) for name in _AVX512_CORE):
            return "avx512"
        return "avx2" if features.get("avx2") else "older"
    level = torch.backends.cpu.get_cpu_capability().upper()  # older torch: ATen's level, close enough
    return {"AVX512": "avx512", "AVX2": "avx2"}.get(level, "older")


def onednn_refuses_small_maps() -> bool:
    """Whether oneDNN's CPU convolutions run its AVX2 kernels, the ones that fall back to GEMMs for a
    weight gradient on an input smaller than the kernel (so :func:`pad_small_maps` pays).

    The CPU's vector ISA (:func:`cpu_vector_isa`), capped by oneDNN's own ``ONEDNN_MAX_CPU_ISA`` (or
    ``DNNL_MAX_CPU_ISA``) when set. oneDNN reads that variable once, at its first convolution: set it
    before then, as for oneDNN itself. False where oneDNN is off, below AVX2 (the GEMMs either way)
    and on other architectures (not measured).
    """
    if not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return False
    hardware = cpu_vector_isa()
    if hardware == "older":
        return False
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    if cap in _AVX2_ISAS:
        return True
    if cap in ("SSE41", "AVX"):
        return False
    return hardware == "avx2"  # unset, "ALL"/"DEFAULT" or an AVX-512 name: the hardware decides


def _effective_kernel(conv: nn.Conv2d) -> tuple[int, int]:
    kh, kw = (d * (k - 1) + 1 for d, k in zip(conv.dilation, conv.kernel_size, strict=True))
    return kh, kw


def _convertible(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv2d  # subclasses (timm's Conv2dSame, ...) have their own forward
        and module.padding_mode == "zeros"
        and isinstance(module.padding, tuple)
        and any(module.padding)
    )


@torch.no_grad()
def pad_small_maps(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Make the zero-padded ``nn.Conv2d`` layers of ``model`` whose input is smaller than their kernel,
    for images of ``input_shape`` (C, H, W), ``PaddedConv2d`` layers, in place; how many there were.

    The input sizes come from one forward pass of a blank image on the CPU, in eval mode (no batch-norm
    statistics change). Parameters, buffers and ``state_dict`` keys stay the same.
    """
    sizes: dict[nn.Module, tuple[int, int]] = {}
    hooks = [
        m.register_forward_pre_hook(lambda mod, args: sizes.__setitem__(mod, tuple(args[0].shape[-2:])))
        for m in model.modules()
        if _convertible(m)
    ]
    was_training = model.training
    try:
        model.eval()(torch.zeros(1, *input_shape))
    except Exception:  # noqa: BLE001  # a speed-up only: the run itself meets (and reports) the failure
        sizes.clear()
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    converted = 0
    for module, (h, w) in sizes.items():
        kh, kw = _effective_kernel(module)  # type: ignore[arg-type]
        if h < kh or w < kw:
            module.__class__ = PaddedConv2d
            converted += 1
    return converted
