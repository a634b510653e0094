"""A validation pass: it closes a window (the steps since the previous pass) and decides what follows.

Per window: its metrics.csv row, the plateau rule, the target, early stopping and the best
checkpoint; then whether the run ends here (early stopping, the target, a stop asked during the pass).
Without ``--val-every-steps`` a window is an epoch.
"""

from __future__ import annotations

import math

from cnnbench.engine.checkpoint import save_last, weights_state
from cnnbench.engine.evaluate import EvalResult
from cnnbench.engine.loop import EpochPartial
from cnnbench.engine.state import FitRun
from cnnbench.engine.stop import RESUME_HINT, StopRequest
from cnnbench.rundir import Status

Ending = tuple[str, str | None]  # (status, error) of a run that ends here


def evaluate_window(run: FitRun, stop: StopRequest) -> Ending | None:
    """Validate, record the window, and decide whether the run ends here."""
    trainer = run.trainer
    trainer.recalibrate_bn(run.state.epoch)
    val = trainer.evaluate(trainer.val_loader)
    if not math.isfinite(val.loss):
        # the last step's update made the weights non-finite after a finite loss: nothing to keep
        error = (
            f"validation loss is NaN/Inf after step {run.state.step} (the weights stopped being finite; lr "
            f"{run.state.window().last_lr:.3g}); {what_is_kept(run)}"
        )
        return ended(run, Status.DIVERGED, error, "red")
    window = _record(run, val)
    return _after(run, stop, window, val)


def _record(run: FitRun, val: EvalResult) -> EpochPartial:
    """The window's metrics row, the plateau and target checks, early stopping, checkpoints."""
    cfg, state, early = run.cfg, run.state, run.early
    epochs = round(run.epochs_done(), 4)
    row_epoch = state.epoch if state.batch_in_epoch == 0 else epochs
    window = state.close_window()
    row = {
        "epoch": row_epoch,
        "train_loss": window.loss_sum / window.samples,
        "train_acc": window.correct / window.samples,
        "val_loss": val.loss,
        "val_acc": val.accuracy,
        "lr": window.last_lr,
        "epoch_time_s": window.seconds,
        "train_time_s": state.train_time_s,
        "batch_size": state.batch_size,
        "step": state.step,
    }
    if (
        cfg.schedule == "plateau"
        and epochs > cfg.warmup_epochs
        and run.plateau.update(val.accuracy if run.plateau.mode == "max" else val.loss)
    ):
        state.notes.append(f"plateau: lr × {cfg.plateau_factor:g} after {where(run)}")
    if (
        cfg.target_accuracy is not None
        and state.steps_to_target is None
        and val.accuracy >= cfg.target_accuracy - 1e-12
    ):
        state.reach_target(row_epoch)
    improved = early.update(val.accuracy if early.mode == "max" else val.loss, row_epoch, state.step)
    if run.main:
        run.logs.metrics.append(row)
        run.logs.tb.epoch(row)
    if improved:
        run.best_pending = weights_state(run.trainer, state, early)
    if state.batch_in_epoch == 0 or run.work_done() or checkpoint_due(run):
        save_last(run)
    return window


def _after(run: FitRun, stop: StopRequest, window: EpochPartial, val: EvalResult) -> Ending | None:
    """The pass's line; (status, error) when the run ends here (a stop, early stopping, the target)."""
    state, cfg = run.state, run.cfg
    run.logs.progress.print(
        f"{cfg.model} {where(run)}: train loss {window.loss_sum / window.samples:.4f} "
        f"acc {window.correct / window.samples:.4f} · val loss {val.loss:.4f} acc {val.accuracy:.4f} · "
        f"lr {window.last_lr:.2e} · {window.seconds:.1f}s"
    )
    if stop.set and not run.work_done() and not run.early.should_stop:
        # asked to stop during the evaluation: this window is recorded; the next one is not started
        return interrupted(run, stop)
    if run.early.should_stop:
        return Status.EARLY_STOPPED, None
    if cfg.stop_at_target and state.steps_to_target == state.step:
        state.notes.append(
            f"stopped at the target: validation accuracy ≥ {cfg.target_accuracy:.2%} after {where(run)} "
            f"({state.images:,} training images)"
        )
        return Status.EARLY_STOPPED, None
    return None


def checkpoint_due(run: FitRun) -> bool:
    """--checkpoint-every-steps: a mid-epoch checkpoint is due at this step."""
    every = run.cfg.checkpoint_every_steps
    return bool(every) and run.state.step % every == 0 and run.state.batch_in_epoch > 0


def where(run: FitRun) -> str:
    """Where the run stands, for a line: ``epoch 3``, or ``step 120 (epoch 1.50)`` with --val-every-steps."""
    state = run.state
    if run.cfg.val_every_steps:
        return f"step {state.step} (epoch {run.epochs_done():.2f})"
    return f"epoch {state.epoch}" if state.batch_in_epoch == 0 else f"step {state.step}"


def interrupted(run: FitRun, stop: StopRequest) -> Ending:
    """SIGTERM/SIGINT: save where the run stands (mid-epoch: the batch reached and the window's sums),
    so --resume continues there."""
    if run.last_saved_step != run.state.step or run.best_pending is not None:
        save_last(run)
    state = run.state
    where_now = f"in epoch {state.epoch + 1}" if state.batch_in_epoch else f"after epoch {state.epoch}"
    error = f"stopped by {stop.signal} {where_now}{RESUME_HINT}"
    return ended(run, Status.INTERRUPTED, error, "yellow")


def stopped_in_range_test(run: FitRun, stop: StopRequest) -> Ending:
    """SIGTERM/SIGINT during --lr auto's range test: nothing trained and no checkpoint; --resume runs the test
    again from the same seeded weights, so the pick and the run are the ones an uninterrupted run gets."""
    error = f"stopped by {stop.signal} during the learning-rate range test{RESUME_HINT}"
    return ended(run, Status.INTERRUPTED, error, "yellow")


def ended(run: FitRun, status: Status, error: str, colour: str) -> Ending:
    """The run ends here with ``error``: the line in the progress output, and (status, error)."""
    run.logs.progress.end_epoch(f"[{colour}]{error}")
    return status, error


def what_is_kept(run: FitRun) -> str:
    """What a diverged run leaves to resume from: said exactly, never promised."""
    if run.files.checkpoint("last").exists():  # checkpoint/last.pt
        kept = run.files.checkpoint("last").relative_to(run.files.path)
        return f"the last good checkpoint (epoch {run.state.epoch}) is kept in {kept}"
    return "no checkpoint exists (it diverged in its first epoch)"
