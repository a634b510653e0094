"""One pass over a split: loss, top-1, top-5, per-class accuracy, the confusion matrix and, when asked,
every sample's prediction (the test pass keeps them: ``test_predictions.npz``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cnnbench.engine import distributed as ddp
from cnnbench.rundir import TestPredictions


@dataclass
class EvalResult:
    loss: float
    accuracy: float
    top5: float
    mean_class_accuracy: float
    per_class_accuracy: list[float]
    confusion: np.ndarray  # (K, K) int64, rows = truth, columns = prediction
    samples: int
    # with keep_predictions: what this process predicted for each sample it evaluated, in the order of the
    # batches (under DDP its shard only: see predictions_in_dataset_order)
    predictions: TestPredictions | None = None


class EvalAccumulator:
    """Sums kept on the device; one host sync at the end (no ``.item()`` per batch)."""

    def __init__(self, num_classes: int, device: torch.device, keep_predictions: bool = False) -> None:
        self.num_classes = num_classes
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.top5_hits = torch.zeros((), dtype=torch.int64, device=device)
        self.confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
        # per batch (pred (B,), targets (B,), top-k (B, k)), kept on the device until result()
        self.kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = [] if keep_predictions else None

    def add(self, logits: torch.Tensor, targets: torch.Tensor) -> None:
        logits = logits.float()
        self.loss_sum += F.cross_entropy(logits, targets, reduction="sum").double()
        k = min(5, self.num_classes)
        top = logits.topk(k, dim=1).indices
        self.top5_hits += (top == targets[:, None]).any(dim=1).sum()
        pred = logits.argmax(dim=1)
        self.confusion += torch.bincount(targets * self.num_classes + pred, minlength=self.num_classes**2)
        if self.kept is not None:
            self.kept.append((pred, targets, top))

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
            predictions=self._predictions(),
        )

    def _predictions(self) -> TestPredictions | None:
        if self.kept is None:
            return None
        k = min(5, self.num_classes)
        if not self.kept:
            empty = np.zeros(0, dtype=np.int64)
            return TestPredictions(empty, empty, np.zeros((0, k), dtype=np.int64))
        pred, target, top = (torch.cat(parts).cpu().numpy() for parts in zip(*self.kept, strict=True))
        return TestPredictions(predicted=pred, target=target, top5=top)


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    keep_predictions: bool = False,
) -> EvalResult:
    """Evaluate ``model`` over ``batches`` (already on ``device``), reduced across DDP ranks.

    Args:
        keep_predictions: also return each sample's prediction (``EvalResult.predictions``), in batch order.
    """
    was_training = model.training
    model.eval()
    acc = EvalAccumulator(num_classes, device, keep_predictions)
    for x, y in batches:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(x)
        acc.add(logits, y)
    acc.all_reduce()
    model.train(was_training)
    return acc.result()


def predictions_in_dataset_order(
    local: TestPredictions, order: np.ndarray, info: ddp.DistInfo = ddp.DistInfo()
) -> TestPredictions:
    """Every rank's predictions, each sample at its index in the split: the whole split, in dataset order.

    Under DDP each rank evaluated its shard (``DeviceLoader.sample_order`` says which samples, in which
    order); the shards are gathered on every rank (a collective: every rank calls this) and put back
    in place. A single process only reorders.

    Args:
        local: this rank's ``EvalResult.predictions``.
        order: the split index of each of them (``loader.sample_order()``).
    """
    pieces = ddp.all_gather_object((np.asarray(order), local), info)
    return merge_predictions(pieces)


def merge_predictions(pieces: Sequence[tuple[np.ndarray, TestPredictions]]) -> TestPredictions:
    """Shards (split indices, their predictions) → one ``TestPredictions`` in split order.

    Raises:
        RuntimeError: the shards do not cover the split exactly once (a sharding bug, never a user's error).
    """
    order = np.concatenate([np.asarray(o, dtype=np.int64) for o, _ in pieces])
    total = len(order)
    if sum(len(p) for _, p in pieces) != total or not np.array_equal(np.sort(order), np.arange(total)):
        raise RuntimeError(
            f"the evaluated shards do not cover the split exactly once ({total} indices for "
            f"{sum(len(p) for _, p in pieces)} predictions): cannot write the per-image predictions"
        )

    def merged(name: str) -> np.ndarray:
        values = np.concatenate([getattr(p, name) for _, p in pieces])
        out = np.empty_like(values)
        out[order] = values
        return out

    return TestPredictions(predicted=merged("predicted"), target=merged("target"), top5=merged("top5"))
