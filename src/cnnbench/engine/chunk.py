"""Training one chunk of a run: from where it stands to its next stop (a validation pass, a checkpoint,
the last step) or the epoch's end, with the time-budget probe first when the run has a time budget.

A chunk is ``train_one_epoch`` (engine/loop.py) over the epoch's remaining batches, with the lr of each
step from the run's schedule; its figures are summed over DDP ranks and added to the run's state.
"""

from __future__ import annotations

import torch

from cnnbench.engine import distributed as ddp
from cnnbench.engine.loop import EpochRun, EpochStats, train_one_epoch
from cnnbench.engine.oom import is_oom, retry_smaller
from cnnbench.engine.optim import set_lr
from cnnbench.engine.runlog import step_log_interval, step_rows
from cnnbench.engine.state import FitRun
from cnnbench.engine.stop import StopRequest

PROBE_STEPS = 5  # steps timed to turn a time budget into a fixed number of steps


def train_chunk(run: FitRun, stop: StopRequest) -> EpochStats | None:
    """Train from where the run stands to its next stop (``_next_stop``) or the epoch's end.

    Returns None when the device ran out of memory and the epoch must start again at half the batch.
    """
    state = run.state
    epoch = state.epoch
    start_batch = _begin_epoch(run, epoch)
    train_time_before = state.train_time_s
    try:
        stats = _chunk_batches(run, stop, start_batch)
    except _Diverged as d:
        stats = d.stats
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        if not is_oom(exc):
            raise
        run.logs.progress.end_epoch("")
        retry_smaller(run, exc, epoch)
        run.say(run.state.notes[-1])
        return None
    run.logs.progress.end_epoch("")
    _sum_over_ranks(run, stats)
    state.add_chunk(stats, epoch, train_time_before)
    if run.main and stats.points:
        rows = step_rows(stats.points, epoch, run.steps_per_epoch, state.batch_size)
        run.logs.steps.extend(rows)
        run.logs.tb.steps(rows)
    return stats


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    # Dropout and other in-model randomness restart from a value derived from (seed, epoch, rank),
    # so an epoch replayed after a crash draws exactly what the lost one drew.
    return (seed * 1_000_003 + epoch * 7919 + rank * 104_729) % 2**63


def _begin_epoch(run: FitRun, epoch: int) -> int:
    """Freeze what the fine-tuning mode freezes, seed the epoch at its start; the first batch to train."""
    from cnnbench.models import freeze_backbone

    cfg, trainer = run.cfg, run.trainer
    if cfg.finetune == "head" or (cfg.finetune == "two-phase" and epoch < cfg.head_epochs):
        freeze_backbone(trainer.model, True)
    elif cfg.finetune == "two-phase":
        freeze_backbone(trainer.model, False)
    trainer.train_loader.set_epoch(epoch)
    start_batch = run.state.batch_in_epoch
    if start_batch == 0:
        torch.manual_seed(_epoch_seed(cfg.seed, epoch, trainer.dist.rank))
    run.logs.progress.start_epoch(epoch, run.epochs_planned(), run.steps_per_epoch, start_batch)
    return start_batch


def _next_stop(run: FitRun) -> int | None:
    """The global step the next chunk stops at (None: the epoch's end)."""
    state, cfg = run.state, run.cfg
    stops = [state.total_steps] if state.total_steps is not None else []
    for every in (cfg.val_every_steps, cfg.checkpoint_every_steps):
        if every:
            stops.append((state.step // every + 1) * every)
    return min(stops) if stops else None


def _chunk_batches(run: FitRun, stop: StopRequest, start_batch: int) -> EpochStats:
    """The chunk's batches; under a time budget not yet turned into steps, the timed probe first."""
    probe_points: list = []
    partial = None
    if run.cfg.time_budget_s and run.state.total_steps is None:
        probe = _probe_time_budget(run, start_batch)
        start_batch += probe.steps
        probe_points = probe.points
        partial = probe.partial() if probe.diverged_step is None else None
        if probe.diverged_step is not None:
            run.state.step -= probe.steps  # the probe counted them; train_chunk counts the chunk's once
            raise _Diverged(probe)
    nan_check_every = 1 if run.trainer.device.type == "cpu" else run.cfg.nan_check_every
    epoch = _epoch_run(run, start_batch, _next_stop(run), nan_check_every)
    stats = train_one_epoch(
        epoch, partial=partial, should_stop=lambda: stop.set, on_step=lambda b, s: run.logs.progress.advance()
    )
    stats.points[:0] = probe_points
    return stats


def _epoch_run(run: FitRun, start_batch: int, max_steps: int | None, nan_check_every: int) -> EpochRun:
    """The current epoch's batches from ``start_batch`` on, through the step (``state.step`` is the first)."""
    trainer, state = run.trainer, run.state
    planned = state.total_steps or run.cfg.epochs * run.steps_per_epoch
    return EpochRun(
        step=trainer.step_fn,
        batches=trainer.train_loader.batches(start=start_batch),
        device=trainer.device,
        first_step=state.step,
        start_batch=start_batch,
        lr_for_step=run.lr_for_step,
        set_lr=lambda lr: set_lr(trainer.optimizer, lr),
        max_steps=max_steps,
        nan_check_every=nan_check_every,
        log_every=step_log_interval(run.steps_per_epoch, planned),
    )


def _probe_time_budget(run: FitRun, start_batch: int) -> EpochStats:
    """Time a few steps, then fix the number of steps for the whole run (the schedule is a function
    of the step, so it must know the total)."""
    cfg, state, spe = run.cfg, run.state, run.steps_per_epoch
    probe = train_one_epoch(_epoch_run(run, start_batch, state.step + PROBE_STEPS, nan_check_every=1))
    per_step = probe.seconds / max(1, probe.steps)
    remaining = max(0.0, cfg.time_budget_s - probe.seconds)
    state.total_steps = min(cfg.epochs * spe, state.step + probe.steps + int(remaining / per_step))
    state.total_steps = max(state.total_steps, state.step + probe.steps)
    run.plan_schedule()
    state.notes.append(
        f"time budget {cfg.time_budget_s:g} s: {state.total_steps} steps of batch {state.batch_size} "
        f"(≈{state.total_steps / spe:.2f} epochs, {per_step * 1000:.0f} ms/step measured)"
    )
    state.step += probe.steps
    return probe


def _sum_over_ranks(run: FitRun, stats: EpochStats) -> None:
    """Under DDP every rank saw its own shard: the chunk's training figures are the sums over ranks."""
    dist, device = run.trainer.dist, run.trainer.device
    if not dist.enabled or stats.diverged_step is not None:
        return
    loss_sum, correct, samples = ddp.all_reduce_sum([stats.loss_sum, stats.correct, stats.samples], device, dist)
    stats.loss, stats.accuracy = loss_sum / samples, correct / samples
    stats.loss_sum, stats.correct, stats.samples = loss_sum, int(correct), int(samples)
    if not stats.points:
        return
    # step points of every rank's shard, summed like the chunk's figures (one all-reduce)
    flat = ddp.all_reduce_sum([v for p in stats.points for v in (p.loss_sum, p.correct, p.samples)], device, dist)
    for i, p in enumerate(stats.points):
        p.loss_sum, p.correct, p.samples = flat[3 * i], int(flat[3 * i + 1]), int(flat[3 * i + 2])


class _Diverged(Exception):
    """The time-budget probe diverged: its figures are the chunk's."""

    def __init__(self, stats: EpochStats) -> None:
        self.stats = stats
