"""One training step and one training epoch.

The step keeps everything on the device: loss and correct-prediction sums accumulate in device
tensors and are read once per call (an epoch, or the chunk of it to the next validation pass or
checkpoint; plus a NaN check every ``nan_check_every`` steps), so a GPU
never waits on the host inside an epoch. Step-level points (``log_every``) are copies of those
running sums, taken on the device and read with the epoch's figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from cnnbench.utils.env import synchronize


@dataclass
class EpochStats:
    loss: float  # mean training loss over the samples seen
    accuracy: float  # training accuracy (on augmented batches)
    samples: int
    steps: int  # optimiser steps taken in this call
    seconds: float  # synchronised wall time of training only
    last_lr: float
    diverged_step: int | None = None  # global step whose loss was NaN/Inf
    stopped_at_batch: int | None = None  # batch index the epoch was cut at (interrupt or step cap)
    loss_sum: float = 0.0  # raw sums, to carry an interrupted epoch over a resume
    correct: int = 0
    points: list[StepPoint] = field(default_factory=list)  # every ``log_every`` steps, and at the end

    def partial(self) -> EpochPartial:
        return EpochPartial(
            loss_sum=self.loss_sum,
            correct=self.correct,
            samples=self.samples,
            seconds=self.seconds,
            last_lr=self.last_lr,
        )


@dataclass
class StepPoint:
    """Training figures of the steps since the previous point of the same call (at most ``log_every``)."""

    step: int  # global optimiser steps done at this point
    batch: int  # batches of the epoch done at this point
    loss_sum: float  # summed per-sample training loss over the window's samples
    correct: int
    samples: int
    steps: int  # optimiser steps in the window
    lr: float  # lr of the window's last step

    @property
    def loss(self) -> float:
        return self.loss_sum / self.samples if self.samples else float("nan")

    @property
    def accuracy(self) -> float:
        return self.correct / self.samples if self.samples else float("nan")


@dataclass
class EpochPartial:
    """Training sums since the last validation pass (an epoch, or a --val-every-steps window), saved
    in a checkpoint taken inside it, so a resumed run reports the same statistics."""

    loss_sum: float = 0.0
    correct: int = 0
    samples: int = 0
    seconds: float = 0.0
    last_lr: float = float("nan")  # lr of the window's last step


class EagerStep:
    """forward, loss, backward, clip, optimiser step, EMA — as ordinary PyTorch calls.

    ``__call__`` returns device tensors (loss summed over the batch, number correct) and never syncs.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        label_smoothing: float = 0.0,
        grad_clip: float | None = None,
        autocast_dtype: torch.dtype | None = None,
        scaler: torch.amp.GradScaler | None = None,
        ema=None,
        channels_last: bool = False,
    ) -> None:
        self.model = model
        self.optimizer = optimizer
        self.label_smoothing = label_smoothing
        self.grad_clip = grad_clip
        self.autocast_dtype = autocast_dtype
        self.scaler = scaler
        self.ema = ema
        self.channels_last = channels_last

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        device_type = x.device.type
        with torch.autocast(device_type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            logits = self.model(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if self.grad_clip is not None:
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if self.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
        if self.ema is not None:
            self.ema.update(_unwrap(self.model))
        with torch.no_grad():
            correct = (logits.argmax(dim=1) == y).sum()
        return loss.detach() * y.shape[0], correct


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


#: Running sums copied on the device at a step: (global step, batches done, samples, lr, loss_sum, correct).
_Mark = tuple[int, int, int, float, torch.Tensor, torch.Tensor]


@dataclass
class _Marks:
    """Copies of the running sums every ``every`` global steps and at the end of a call (0: none)."""

    every: int
    items: list[_Mark] = field(default_factory=list)

    def at_multiple(self, step: int, batch: int, samples: int, lr: float, loss: torch.Tensor, correct: torch.Tensor):
        if self.every and step % self.every == 0:
            self.items.append((step, batch, samples, lr, loss.clone(), correct.clone()))

    def at_end(self, step: int, batch: int, samples: int, lr: float, loss: torch.Tensor, correct: torch.Tensor):
        if self.every and (not self.items or self.items[-1][0] != step):
            self.items.append((step, batch, samples, lr, loss.clone(), correct.clone()))


@dataclass
class EpochRun:
    """What ``train_one_epoch`` trains: the step, the batches, and where they stand in the run."""

    step: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # EagerStep or CudaGraphStep
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]]  # the epoch's batches from ``start_batch`` on
    device: torch.device
    first_step: int  # global optimiser step of the first batch here (drives the lr schedule)
    lr_for_step: Callable[[int], float]
    set_lr: Callable[[float], None]
    start_batch: int = 0
    nan_check_every: int = 1  # read the loss for NaN/Inf every this many steps (each read syncs)
    max_steps: int | None = None  # global step cap (time budgets, --val-every-steps); the epoch stops there
    log_every: int = 0  # > 0: a StepPoint whenever the global step reaches a multiple of it, and at the end


def train_one_epoch(
    epoch: EpochRun,
    *,
    partial: EpochPartial | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    on_step: Callable[[int, int], None] | None = None,
) -> EpochStats:
    """Train over ``epoch.batches`` (an epoch's batches from ``epoch.start_batch`` on).

    Args:
        partial: sums carried over from the part of this epoch done before an interruption.
        should_stop: polled between steps (SIGTERM/Ctrl-C); the epoch returns where it stands.
        on_step: called with (batch index, global step) after each step, e.g. a progress bar.
    """
    sums = _Sums.zero(epoch.device, epoch.log_every)
    lr = epoch.lr_for_step(epoch.first_step)
    diverged: int | None = None
    stopped: int | None = None
    synchronize(epoch.device)
    start = time.perf_counter()
    batch_index = epoch.start_batch
    for batch_index, (x, y) in enumerate(epoch.batches, start=epoch.start_batch):
        global_step = epoch.first_step + sums.steps
        if (epoch.max_steps is not None and global_step >= epoch.max_steps) or should_stop():
            stopped = batch_index
            break
        epoch.set_lr(lr := epoch.lr_for_step(global_step))
        batch_loss, batch_correct = epoch.step(x, y)
        sums.add(batch_loss, batch_correct, y.shape[0])
        if sums.steps % epoch.nan_check_every == 0 and not torch.isfinite(batch_loss).item():
            diverged = global_step
            break
        sums.marks.at_multiple(global_step + 1, batch_index + 1, sums.samples, lr, sums.loss, sums.correct)
        if on_step is not None:
            on_step(batch_index, global_step)
    if diverged is None and sums.steps % epoch.nan_check_every != 0:
        diverged = _late_divergence(sums.loss, epoch.first_step + sums.steps - 1)
    if sums.steps:  # the batch after the last one trained: where a resume would start
        end_batch = batch_index + (stopped is None)
        sums.marks.at_end(epoch.first_step + sums.steps, end_batch, sums.samples, lr, sums.loss, sums.correct)
    synchronize(epoch.device)
    seconds = time.perf_counter() - start
    stats = _epoch_stats(sums, partial, seconds, lr, epoch.first_step)
    stats.diverged_step, stats.stopped_at_batch = diverged, stopped
    return stats


@dataclass
class _Sums:
    """The running sums of an epoch, on the device so that the steps add to them without a host sync:
    the loss sum (float64, so that a long epoch's sum keeps its last digits) and the correct count (int64)."""

    loss: torch.Tensor
    correct: torch.Tensor
    marks: _Marks
    samples: int = 0
    steps: int = 0

    @classmethod
    def zero(cls, device: torch.device, log_every: int) -> _Sums:
        loss = torch.zeros((), dtype=torch.float64, device=device)
        return cls(loss, torch.zeros((), dtype=torch.int64, device=device), _Marks(log_every))

    def add(self, batch_loss: torch.Tensor, batch_correct: torch.Tensor, batch_size: int) -> None:
        self.loss += batch_loss.double()
        self.correct += batch_correct
        self.samples += batch_size
        self.steps += 1


def _late_divergence(loss_sum: torch.Tensor, last_step: int) -> int | None:
    """``last_step`` when the epoch's loss sum is NaN/Inf: a divergence the sparse NaN checks missed,
    caught at the epoch end (the step is approximate)."""
    return None if torch.isfinite(loss_sum).item() else last_step


def _epoch_stats(
    sums: _Sums, partial: EpochPartial | None, seconds: float, last_lr: float, first_step: int
) -> EpochStats:
    """This call's figures added to those of ``partial`` (the part of the epoch done before an
    interruption). Reads the device sums: call it once the epoch's clock has stopped."""
    partial = partial or EpochPartial()
    seconds = seconds + partial.seconds
    total_samples = sums.samples + partial.samples
    loss_total = float(sums.loss.item()) + partial.loss_sum
    correct_total = int(sums.correct.item()) + partial.correct
    return EpochStats(
        loss=loss_total / total_samples if total_samples else float("nan"),
        accuracy=correct_total / total_samples if total_samples else float("nan"),
        samples=total_samples,
        steps=sums.steps,
        seconds=seconds,
        last_lr=last_lr,
        loss_sum=loss_total,
        correct=correct_total,
        points=_points(sums.marks.items, first_step),
    )


def _points(marks: list[_Mark], first_step: int) -> list[StepPoint]:
    """Running sums at the marks -> per-window figures (one read of all the sums, after the epoch)."""
    if not marks:
        return []
    sums = torch.stack([torch.stack((m[4].double(), m[5].double())) for m in marks]).tolist()  # (P, 2)
    points, prev = [], (first_step, 0, 0.0, 0)
    for (step, batch, samples, lr, _, _), (loss_sum, correct) in zip(marks, sums, strict=True):
        points.append(
            StepPoint(
                step=step,
                batch=batch,
                loss_sum=loss_sum - prev[2],
                correct=int(round(correct)) - prev[3],
                samples=samples - prev[1],
                steps=step - prev[0],
                lr=lr,
            )
        )
        prev = (step, samples, loss_sum, int(round(correct)))
    return points
