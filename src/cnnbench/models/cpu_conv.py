"""Depthwise convolutions that keep oneDNN's fast weight-gradient kernel on small maps (CPU).

At 28×28 the lightweight seed-mnist models end on 2×2 and 4×4 maps, where their 5×5 (and 3×3)
depthwise convolutions see an input smaller than the kernel. oneDNN (PyTorch's CPU convolutions)
then refuses its depthwise weight-gradient kernel and falls back to one small GEMM per channel:
20-25 ms instead of 4-12 ms for a 576-channel 5×5 layer on 2×2 maps at batch 64 (2-core AMD EPYC,
torch 2.14; ``ONEDNN_VERBOSE=1`` names ``x64:gemm:jit`` instead of ``jit:avx2``). Padding the input
explicitly and convolving without padding gives oneDNN an input at least as large as the kernel,
and it takes the fast kernel again. MobileNetV3-Small trained 1.4× faster per step, MNASNet 1.8×,
EfficientNet-B0 1.5×, ShuffleNetV2 1.25× (``benchmarks/depthwise_cpu.py``, docs/benchmarks.md).

The output and the input gradient are bit-identical (the same products summed in the same order);
the weight gradient is summed in another order (about 1e-6 relative), so a CPU run's last digits
differ from the stock layer's, and are as reproducible. The layer's parameters and ``state_dict``
are unchanged: checkpoints load either way. On a GPU, or on maps at least as large as the kernel,
the layer runs exactly as ``nn.Conv2d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PaddedDepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` (depthwise, zero padding) that pads explicitly when a CPU input is smaller than its kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = (d * (k - 1) + 1 for d, k in zip(self.dilation, self.kernel_size, strict=True))
        if x.device.type == "cpu" and (x.shape[-2] < kh or x.shape[-1] < kw):
            ph, pw = self.padding  # type: ignore[misc]  # ints: only such layers are converted
            x = F.pad(x, (pw, pw, ph, ph))
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return super().forward(x)


def _convertible(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv2d  # subclasses (timm's Conv2dSame, ...) have their own forward
        and module.groups > 1
        and module.groups == module.in_channels
        and module.padding_mode == "zeros"
        and isinstance(module.padding, tuple)
        and any(module.padding)
    )


def pad_small_depthwise(model: nn.Module) -> int:
    """Make every zero-padded depthwise ``nn.Conv2d`` of ``model`` a ``PaddedDepthwiseConv2d``, in place.

    Returns how many layers were converted. Parameters, buffers and ``state_dict`` keys stay the same.
    """
    converted = 0
    for module in model.modules():
        if _convertible(module):
            module.__class__ = PaddedDepthwiseConv2d
            converted += 1
    return converted
