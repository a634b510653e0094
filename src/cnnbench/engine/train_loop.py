"""The loop of a run: train a chunk, validate when a window closes, save, until the work is done or
something ends the run early (divergence, early stopping, the target, a stop signal).

Training goes in chunks: from where the run stands to the next of the epoch's end, the next
validation pass (``--val-every-steps``), the next mid-epoch checkpoint or the last step. A validation
pass closes a *window* (the steps since the previous one): its metrics.csv row, the plateau rule,
early stopping, the target and the best checkpoint all act per window (engine/validation.py).
Without ``--val-every-steps`` a window is an epoch.
"""

from __future__ import annotations

from cnnbench.engine.checkpoint import save_last
from cnnbench.engine.chunk import train_chunk
from cnnbench.engine.state import FitRun
from cnnbench.engine.stop import StopRequest
from cnnbench.engine.validation import Ending, checkpoint_due, ended, evaluate_window, interrupted, what_is_kept
from cnnbench.rundir import Status


def train(run: FitRun, stop: StopRequest) -> Ending:
    """(status, error) once the planned work ran or something ended the run early."""
    while True:
        if _evaluation_due(run):
            ending = evaluate_window(run, stop)
            if ending is not None:
                return ending
        if run.work_done():
            return Status.COMPLETED, None
        stats = train_chunk(run, stop)
        if stats is None:  # out of memory: the epoch starts again at a smaller batch
            continue
        if stats.diverged_step is not None:
            error = (
                f"loss became NaN/Inf at epoch {run.state.epoch + 1}, step {stats.diverged_step} "
                f"(lr {stats.last_lr:.3g}); " + what_is_kept(run)
            )
            return ended(run, Status.DIVERGED, error, "red")
        if stop.set and stats.stopped_at_batch is not None and not _evaluation_due(run):
            return interrupted(run, stop)
        if run.state.batch_in_epoch == 0 and not _evaluation_due(run):
            save_last(run)  # an epoch ended inside a --val-every-steps window
        elif checkpoint_due(run):
            save_last(run)


def _evaluation_due(run: FitRun) -> bool:
    """A validation pass is due: steps were trained since the last one and the window is complete."""
    state, every = run.state, run.cfg.val_every_steps
    if state.window().samples == 0:
        return False
    if run.work_done():
        return True
    if every:
        return state.step % every == 0
    return state.batch_in_epoch == 0
