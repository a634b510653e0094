"""The learning-rate range test (Smith, "Cyclical Learning Rates", 2015; fastai's ``lr_find``,
Lightning's ``Tuner.lr_find``): train from the run's own initial weights while the learning rate
grows exponentially, one step per value, record the loss, and pick the learning rate from the curve.

It is the tuning procedure behind ``--lr auto``: every architecture of a comparison gets the same
procedure (the same ramp, the same number of steps, the same pick rule) instead of one constant that
suits only some of them. The test trains a throw-away copy: the run itself starts again from the
seeded initial weights, so a run with ``--lr auto`` is the same run as one given the picked value.

The pick rule (``suggest_lr``) is half a decade below the learning rate at the smoothed loss's minimum,
chosen by measurement against a sweep of fixed learning rates on the seed-mnist models, beside fastai's
"minimum ÷ 10" and Lightning's "steepest descent" (docs/studies.md).
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnbench.errors import CnnbenchError
from cnnbench.utils.io import atomic_write_json, atomic_write_text

LR_FIND_START = 1e-5  # below this AdamW and SGD barely move a freshly initialised CNN in a few steps
LR_FIND_END = 1.0  # above this every model of the zoo diverges within a step
DIVERGE_FACTOR = 4.0  # the ramp stops once the smoothed loss exceeds 4× its minimum (fastai's rule)
SMOOTHING_STEPS = 6  # the loss EMA's memory, 1/(1-β), is the ramp's length / 6 (β 0.9 at 60 steps)
PICK_DECADES = 0.5  # the pick: half a decade below the smoothed loss's minimum (suggest_lr)
PICK_RULE = "min/3.2"  # its name in lr_find.csv's run, summary.json and the report


class RangeTestStopped(Exception):
    """A stop signal (Ctrl-C, SIGTERM) arrived during the range test: the run ends before its first step."""


@dataclass
class LrFindResult:
    """The curve of one range test and the learning rate picked from it."""

    lrs: list[float]  # the learning rate of each step taken
    losses: list[float]  # its training loss (mean over the batch)
    smoothed: list[float]  # debiased EMA of ``losses``
    lr: float  # the pick
    index: int  # the step whose lr (``lrs[index]``) is the pick
    rule: str = PICK_RULE
    steps: int = 0  # steps planned (the ramp's length); ``len(lrs)`` may be fewer (divergence)
    start_lr: float = LR_FIND_START
    end_lr: float = LR_FIND_END
    seconds: float = 0.0  # wall time of the test (machine-dependent; not part of the result)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LrFindResult:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def csv_text(self) -> str:
        """``lr_find.csv``: one row per step (step, lr, loss, smoothed_loss, picked)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(("step", "lr", "loss", "smoothed_loss", "picked"))
        for i, (lr, loss, smooth) in enumerate(zip(self.lrs, self.losses, self.smoothed, strict=True)):
            writer.writerow((i, f"{lr:.6g}", f"{loss:.6g}", f"{smooth:.6g}", int(i == self.index)))
        return buf.getvalue()


def ramp_lr(step: int, steps: int, start: float = LR_FIND_START, end: float = LR_FIND_END) -> float:
    """The exponential ramp: ``start`` at step 0, ``end`` at step ``steps - 1``."""
    if steps <= 1:
        return start
    return start * (end / start) ** (step / (steps - 1))


def smoothing(steps: int) -> float:
    """β of the loss's moving average for a ramp of ``steps``: its memory (``1/(1-β)`` steps) is a fixed
    share of the ramp, so it spans the same learning-rate range (about 0.8 decade from 1e-5 to 1) on any
    length. fastai's fixed 0.98 lags 50 steps, most of a short ramp; 0.9 on a 20-step ramp lags 2.5
    decades and its minimum falls on the first, unsmoothed points."""
    return min(0.98, max(0.5, 1.0 - SMOOTHING_STEPS / max(1, steps)))


def smooth(losses: list[float], beta: float | None = None) -> list[float]:
    """Debiased exponential moving average (fastai's and Lightning's smoothing of the range test);
    ``beta`` defaults to ``smoothing(len(losses))``."""
    beta = smoothing(len(losses)) if beta is None else beta
    out, avg = [], 0.0
    for i, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta ** (i + 1)))
    return out


def suggest_lr(lrs: list[float], smoothed: list[float], steps: int | None = None) -> int:
    """Index of the picked learning rate: half a decade (÷√10 ≈ 3.2) below the one where the smoothed loss
    is lowest, on the ramp's own points.

    Below the minimum the loss still falls, and a model trained there is stable; at the minimum it is at
    the edge of divergence. The debiased moving average lags the raw loss by about ten steps (close to a
    decade on a 60-step ramp), so its minimum sits past the raw one: half a decade below it picked, on the
    ten seed-mnist models, a rate within 3× of the best of a sweep for every model (docs/studies.md), where
    fastai's "minimum ÷ 10" was up to 10× too low and Lightning's "steepest descent" chased noise.
    """
    values = np.asarray(smoothed, dtype=np.float64)
    if not np.isfinite(values).any() or len(lrs) < 2:
        return 0
    # The first points of a debiased average are single batches' losses, not an average: a lucky first
    # batch would be "the minimum" of a curve that falls later. Look for the minimum past them (fastai's
    # and Lightning's plots skip the ramp's start for the same reason).
    # ``steps``: the ramp's planned length (a diverged ramp took fewer); 0 when the loss never fell.
    skip = min(len(values) // 4, round(1.0 / (1.0 - smoothing(steps or len(values)))))
    values = np.where(np.isfinite(values), values, np.inf)
    best = skip + int(np.argmin(values[skip:]))
    if best == skip and values[skip] >= values[: skip + 1].min():
        return 0  # the loss never fell below where the search starts
    per_decade = (len(lrs) - 1) / max(1e-12, math.log10(lrs[-1] / lrs[0]))
    return max(0, best - int(round(PICK_DECADES * per_decade)))


def range_test(
    step: Callable[[Any, Any], tuple[Any, Any]],
    batches: Iterator[tuple[Any, Any]],
    set_lr: Callable[[float], None],
    steps: int,
    start_lr: float = LR_FIND_START,
    end_lr: float = LR_FIND_END,
    should_stop: Callable[[], bool] = lambda: False,
) -> LrFindResult:
    """Run the ramp: ``steps`` optimiser steps, the lr of step i ``ramp_lr(i)``, stopping early once
    the smoothed loss is non-finite or above ``DIVERGE_FACTOR`` × its minimum.

    Raises:
        RangeTestStopped: ``should_stop()`` became true before a step (a stop signal; nothing is picked).

    Args:
        step: the training step (``EagerStep``): returns (loss summed over the batch, correct), both tensors.
        batches: training batches, at least ``steps`` of them (restarted by the caller when shorter).
        set_lr: sets the optimiser's learning rate.
    """
    t0 = time.perf_counter()
    lrs, losses, notes = _ramp(step, batches, set_lr, steps, (start_lr, end_lr), should_stop)
    smoothed = smooth(losses, smoothing(steps))
    index = suggest_lr(lrs, smoothed, steps) if lrs else 0
    picked = lrs[index] if lrs else start_lr
    if lrs and index == 0:
        notes.append(
            "the loss did not fall during the ramp: the pick is its first learning rate; a longer ramp "
            "(--lr-find-steps) or an explicit --lr may train better"
        )
    return LrFindResult(
        lrs=lrs,
        losses=losses,
        smoothed=smoothed,
        lr=picked,
        index=index,
        steps=steps,
        start_lr=start_lr,
        end_lr=end_lr,
        seconds=time.perf_counter() - t0,
        notes=notes,
    )


def _ramp(step, batches, set_lr, steps: int, lr_range: tuple[float, float], should_stop: Callable[[], bool]):
    """(lrs, losses, notes) of the ramp's steps, until ``steps`` or the stop rule."""
    lrs: list[float] = []
    losses: list[float] = []
    notes: list[str] = []
    average, lowest, beta = 0.0, math.inf, smoothing(steps)
    for i in range(steps):
        if should_stop():
            raise RangeTestStopped(f"stopped after {i} of {steps} range-test steps")
        try:
            x, y = next(batches)
        except StopIteration:
            notes.append(f"the training split ran out after {i} of {steps} steps")
            break
        lr = ramp_lr(i, steps, *lr_range)
        set_lr(lr)
        loss_sum, _ = step(x, y)
        loss = float(loss_sum.item()) / int(y.shape[0])  # one sync per step: the stop rule needs the value
        loss = loss if math.isfinite(loss) else math.inf
        lrs.append(lr)
        losses.append(loss)
        average = beta * average + (1 - beta) * loss  # smooth()'s values, kept step by step
        current = average / (1 - beta ** (i + 1))
        lowest = min(lowest, current)
        if not math.isfinite(current) or current > DIVERGE_FACTOR * lowest:
            notes.append(f"the loss diverged at lr {lr:.3g} (step {i + 1} of {steps}); the ramp stopped there")
            break
    return lrs, losses, notes


def _batches_forever(loader, first_epoch: int = 0) -> Iterator[tuple[Any, Any]]:
    """The loader's batches epoch after epoch (a ramp may be longer than a small dataset's epoch)."""
    epoch = first_epoch
    while True:
        loader.set_epoch(epoch)
        produced = False
        for batch in loader.batches(start=0):
            produced = True
            yield batch
        if not produced:
            return
        epoch += 1


def run_range_test(trainer: Any, should_stop: Callable[[], bool] = lambda: False) -> LrFindResult:
    """The range test of ``trainer.cfg`` (its model, data, optimiser and regularisation), on a throw-away
    copy of the run's seeded initial weights, unsharded (under DDP rank 0 runs it; the caller broadcasts).

    Args:
        trainer: a ``cnnbench.engine.trainer.Trainer``.
    """
    import torch

    from cnnbench.engine.loop import EagerStep
    from cnnbench.engine.optim import build_optimizer, set_lr
    from cnnbench.models import freeze_backbone

    cfg = trainer.cfg
    model = trainer.new_model()  # the run's seeded initial weights, a copy of its own
    if cfg.finetune == "head" or (cfg.finetune == "two-phase" and cfg.head_epochs > 0):
        freeze_backbone(model, True)  # the lr the first epochs train with
    optimizer = build_optimizer(model, cfg.replace(lr=LR_FIND_START), trainer.device)
    scaler = torch.amp.GradScaler("cuda") if trainer.scaler is not None else None
    step = EagerStep(
        model, optimizer, label_smoothing=cfg.label_smoothing, grad_clip=cfg.grad_clip,
        autocast_dtype=trainer.autocast_dtype, scaler=scaler, channels_last=trainer.channels_last,
    )  # fmt: skip
    augment = trainer.train_augmentation()
    loader = trainer.loader(
        trainer.train_split, cfg.batch_size, train=True, augment=augment, seed=cfg.seed, sharded=False
    )
    torch.manual_seed(cfg.seed)  # dropout draws: a function of the seed
    model.train()
    try:
        return range_test(
            step, _batches_forever(loader), lambda lr: set_lr(optimizer, lr), cfg.lr_find_steps, should_stop=should_stop
        )
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        if not isinstance(exc, torch.OutOfMemoryError) and "out of memory" not in str(exc).lower():
            raise
        # Training halves its batch after an out-of-memory error (engine/oom.py); the range test does not:
        # a pick found at another batch would not be the run's. The run fails here, by name.
        raise CnnbenchError(
            f"out of memory in the learning-rate range test at batch size {cfg.batch_size} (model {cfg.model}, "
            f"input {trainer.input_size}px): use a smaller --batch-size or --image-size, another --device, "
            "or an explicit --lr"
        ) from exc


# Recipe options that cannot change a range test: the run's length and schedule, how it is validated,
# stopped, logged and saved. Every other option (new ones included) is part of the cache key.
_NOT_IN_TEST = frozenset(
    {
        "lr", "epochs", "schedule", "min_lr", "warmup_epochs", "warmup_start_lr", "plateau_factor",
        "plateau_patience", "plateau_max_reductions", "step_size", "step_gamma", "patience", "monitor",
        "min_delta", "target_accuracy", "stop_at_target", "val_every_steps", "ema", "precise_bn_samples",
        "eval_batch_size", "test_batch_size", "max_steps", "time_budget_s", "max_val_samples",
        "max_test_samples", "checkpoint_every_steps", "nan_check_every", "progress", "notes", "device",
        "compile", "cuda_graphs", "head_epochs",
    }
)  # fmt: skip


def cache_key(config: dict[str, Any]) -> str:
    """What a range test depends on (model, data, batch, optimiser, regularisation, seed, ramp), hashed:
    the name of its entry in a study's ``lr_find/`` cache."""
    import hashlib
    import json

    values = {k: v for k, v in sorted(config.items()) if k not in _NOT_IN_TEST}
    values["ramp"] = [LR_FIND_START, LR_FIND_END, DIVERGE_FACTOR, SMOOTHING_STEPS, PICK_DECADES, PICK_RULE, "skip"]
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{config.get('model', 'model')}__s{config.get('seed', 0)}__{digest}"


def apply_range_test(trainer: Any, state: Any, csv_path: Path, cache_dir: Path | None) -> bool:
    """--lr auto: the range test's pick becomes the run's lr (``state.lr``, ``state.lr_find``, a note);
    False when a stop signal ended the test first (nothing picked, cached or written; ``--resume`` runs it again).

    Rank 0 runs the test (or reads it from ``cache_dir``, a study's ``lr_find/``, where every run of the
    same model, data, seed and regularisation finds it) and every rank takes its pick. The curve goes
    to ``csv_path`` (the run's lr_find.csv); the pick is saved with the run's state, so a resumed run
    never repeats it.

    Args:
        trainer: the run's ``Trainer``; state: its ``RunState``.
    """
    from cnnbench.engine import distributed as ddp
    from cnnbench.engine.state import say
    from cnnbench.engine.stop import STOP

    cfg, result, cached = trainer.cfg, None, False
    if trainer.dist.is_main:
        path = Path(cache_dir) / f"{cache_key(cfg.to_dict())}.json" if cache_dir else None
        result = _read_cached(path) if path else None
        cached = result is not None
        if result is None and path and path.exists():
            state.notes.append(f"{path} could not be read (damaged or edited): the range test ran again, replacing it")
            say(trainer, state.notes[-1])
        if result is None:
            say(trainer, f"{cfg.model}: learning-rate range test ({cfg.lr_find_steps} steps)")
            try:
                result = run_range_test(trainer, should_stop=lambda: STOP.set)
            except RangeTestStopped:
                result = None  # the other ranks learn it from the broadcast
            if path and result is not None:
                _cache(trainer, path, result)
        if result is not None:
            atomic_write_text(csv_path, result.csv_text())
    shared = ddp.broadcast_object(result.to_dict() if result else None, trainer.dist)
    if shared is None:
        return False
    _adopt(trainer, state, LrFindResult.from_dict(shared), cached)
    return True


def _adopt(trainer: Any, state: Any, result: LrFindResult, cached: bool) -> None:
    """The pick becomes the run's lr; summary.json's ``lr_find`` and the notes say how it was found."""
    from cnnbench.engine.state import say

    state.lr = result.lr
    state.lr_find = {
        "lr": result.lr,
        "rule": result.rule,
        "steps": result.steps,
        "steps_taken": len(result.lrs),
        "start_lr": result.start_lr,
        "end_lr": result.end_lr,
        "seconds": result.seconds,
        "cached": cached,
    }
    how = "read from the study's cache" if cached else f"{len(result.lrs)} steps, {result.seconds:.1f} s"
    state.notes.append(
        f"--lr auto: the range test ({result.start_lr:g} → {result.end_lr:g} over {result.steps} steps, "
        f"rule '{result.rule}'; {how}) picked lr {result.lr:.3g}"
    )
    state.notes.extend(f"range test: {n}" for n in result.notes)
    say(trainer, state.notes[-1 - len(result.notes)])


def _cache(trainer: Any, path: Path, result: LrFindResult) -> None:
    """Keep the test for the study's other runs; a cache that cannot be written costs a repeat, not the run."""
    from cnnbench.engine.state import say

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, result.to_dict())
    except OSError as exc:
        say(trainer, f"the range test is not cached ({path.parent}: {exc.strerror or exc}); other runs repeat it")


def _read_cached(path: Path) -> LrFindResult | None:
    """A cached range test, or None when there is none or it cannot be read (it is then run again)."""
    import json

    try:
        result = LrFindResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    # the pick must be the curve's own point on the ramp: a hand-edited lr is a different test, run again
    try:
        own = result.lrs[result.index] == result.lr and result.start_lr <= result.lr <= result.end_lr
    except (IndexError, TypeError):
        return None
    return result if own and isinstance(result.lr, float) and math.isfinite(result.lr) and result.lr > 0 else None


def find_lr(cfg: Any, dataset: Any = None) -> LrFindResult:
    """The range test of one recipe (``cnnbench lr-find``): ``cfg``'s model, data, batch, optimiser and
    regularisation; its ``lr`` is ignored. Nothing is written.

    Args:
        cfg: a ``TrainConfig``.
        dataset: an already loaded dataset (else the one ``cfg`` names is loaded).
    """
    import tempfile

    from cnnbench.engine.trainer import Trainer

    with tempfile.TemporaryDirectory() as tmp:  # the trainer wants a run directory; the test writes nothing
        trainer = Trainer(cfg, tmp, dataset=dataset, quiet=True)
        result = run_range_test(trainer)
    result.notes = [*trainer.split_notes, *result.notes]  # a split with 1 of 10 classes is said, as train says it
    return result
