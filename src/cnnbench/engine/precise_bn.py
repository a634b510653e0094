"""Precise BatchNorm: recompute BN running statistics from training batches before evaluating.

BatchNorm evaluates with running averages updated by ``momentum`` each training step. Several
ImageNet architectures use a small momentum (torchvision's MobileNetV3 and EfficientNet 0.01,
MNASNet 0.0003), so after a few hundred steps their running statistics still hold the initial
values and the model, accurate in training mode, is at chance in eval mode. Recomputing the
statistics as a plain average over a few batches (Wu & Johnson, "Rethinking Batch in BatchNorm",
2021; pycls / fvcore ``update_bn_stats``) removes that dependence on the number of steps.

Only BN layers are in training mode during the pass: dropout stays off, no RNG is consumed, no
weight changes, so a run stays deterministic and resumable.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@torch.no_grad()
def update_bn_stats(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], channels_last: bool = False
) -> int:
    """Replace every BN layer's running mean/var by the average over ``batches``.

    Returns:
        The number of batches used (0 when the model has no BN layer, which is left untouched).
    """
    bns = [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats]
    if not bns:
        return 0
    was_training = model.training
    momenta = [bn.momentum for bn in bns]
    model.eval()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average: the plain mean over the batches seen
        bn.train()
    used = 0
    try:
        for x, _ in batches:
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            model(x)
            used += 1
    finally:
        for bn, momentum in zip(bns, momenta, strict=True):
            bn.momentum = momentum
        model.train(was_training)
    return used
