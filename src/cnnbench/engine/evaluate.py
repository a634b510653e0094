"""One pass over a split: loss, top-1, top-5, per-class accuracy and the confusion matrix."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    top5: float
    mean_class_accuracy: float
    per_class_accuracy: list[float]
    confusion: np.ndarray  # (K, K) int64, rows = truth, columns = prediction
    samples: int


class EvalAccumulator:
    """Sums kept on the device; one host sync at the end (no ``.item()`` per batch)."""

    def __init__(self, num_classes: int, device: torch.device) -> None:
        self.num_classes = num_classes
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.top5_hits = torch.zeros((), dtype=torch.int64, device=device)
        self.confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)

    def add(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        logits = logits.float()
        self.loss_sum += F.cross_entropy(logits, targets, reduction="sum").double()
        k = min(5, self.num_classes)
        self.top5_hits += (logits.topk(k, dim=1).indices == targets[:, None]).any(dim=1).sum()
        pred = logits.argmax(dim=1)
        self.confusion += torch.bincount(targets * self.num_classes + pred, minlength=self.num_classes**2)

    def all_reduce(self) -> None:
        """Sum across DDP ranks (each rank evaluated its own shard)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            for t in (self.loss_sum, self.top5_hits, self.confusion):
                dist.all_reduce(t)

    def result(self) -> EvalResult:
        confusion = self.confusion.view(self.num_classes, self.num_classes).cpu().numpy()
        n = int(confusion.sum())
        per_class_total = confusion.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class = np.where(per_class_total > 0, np.diag(confusion) / np.maximum(per_class_total, 1), np.nan)
        present = per_class_total > 0
        return EvalResult(
            loss=float(self.loss_sum.item()) / max(n, 1),
            accuracy=float(np.trace(confusion)) / max(n, 1),
            top5=float(self.top5_hits.item()) / max(n, 1),
            mean_class_accuracy=float(per_class[present].mean()) if present.any() else float("nan"),
            per_class_accuracy=[None if np.isnan(v) else float(v) for v in per_class],
            confusion=confusion,
            samples=n,
        )


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> EvalResult:
    """Evaluate ``model`` over ``batches`` (already on ``device``), reduced across DDP ranks."""
    was_training = model.training
    model.eval()
    acc = EvalAccumulator(num_classes, device)
    for x, y in batches:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(x)
        acc.add(logits, y)
    acc.all_reduce()
    model.train(was_training)
    return acc.result()
