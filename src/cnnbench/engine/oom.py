"""A CUDA out-of-memory error retries the epoch at half the batch (and half the lr, by the linear rule).

The run goes back to where the epoch started (``last.pt``, or in the first epoch the seeded initial
weights) with the new batch size, says so in its notes, and continues; only at batch size 1 it gives up.
"""

from __future__ import annotations

import torch

from cnnbench.engine.checkpoint import RESUME_KEYS, load_resume_checkpoint, restore
from cnnbench.engine.early_stopping import EarlyStopping
from cnnbench.engine.optim import set_lr
from cnnbench.engine.schedules import PlateauState
from cnnbench.engine.state import FitRun, RunState
from cnnbench.errors import CnnbenchError


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def retry_smaller(run: FitRun, exc: BaseException, epoch: int) -> None:
    """After a CUDA out-of-memory error in ``epoch``: halve the batch and the lr, restart the epoch.

    Raises:
        CnnbenchError: out of memory at batch size 1.
    """
    trainer, state = run.trainer, run.state
    if state.batch_size <= 1:
        raise CnnbenchError(
            f"out of memory at batch size 1 (model {trainer.cfg.model}, input {trainer.input_size}px): "
            "the model does not fit on this device; use a smaller --image-size or another --device"
        ) from exc
    trainer.optimizer.zero_grad(set_to_none=True)
    if trainer.device.type == "cuda":
        torch.cuda.empty_cache()
    old_bs, old_lr, old_notes = state.batch_size, state.lr, list(state.notes)
    ckpt, state = _epoch_start(run)
    state.notes = old_notes  # earlier retries of this epoch are not in the checkpoint
    state.batch_size, state.lr = max(1, old_bs // 2), old_lr * max(1, old_bs // 2) / old_bs
    state.batch_in_epoch, state.partial = 0, None
    trainer.build_loaders(state.batch_size)
    trainer.build_optimizer(state.lr, state.batch_size, state.notes)
    if ckpt is not None:
        trainer.optimizer.load_state_dict(ckpt["optimizer"])
    set_lr(trainer.optimizer, state.lr)
    spe = len(trainer.train_loader)
    state.step = epoch * spe  # the schedule is a function of the epoch fraction; keep it continuous
    if state.total_steps is not None:
        state.total_steps = int(state.total_steps * old_bs / state.batch_size)
    state.notes.append(
        f"CUDA out of memory at batch {old_bs} in epoch {epoch + 1}: retrying the epoch at batch "
        f"{state.batch_size}, lr {state.lr:.3g}"
    )
    run.state = state
    run.plan_schedule()


def _epoch_start(run: FitRun):
    """(checkpoint or None, state) at the start of this epoch: last.pt, or in the first epoch the seeded
    initialisation (rebuilt, not saved: no checkpoint is written at epoch 0)."""
    trainer, state, plateau, early = run.trainer, run.state, run.plateau, run.early
    if run.files.has_last_checkpoint():
        ckpt, _ = load_resume_checkpoint(run.files.checkpoints, map_location=trainer.device, require=RESUME_KEYS)
        return ckpt, restore(trainer, ckpt, plateau, early)
    trainer.build_model()
    cfg = trainer.cfg
    fresh = PlateauState(cfg.plateau_factor, cfg.plateau_patience, cfg.plateau_max_reductions, mode=plateau.mode)
    plateau.load_state_dict(fresh.state_dict())
    early.load_state_dict(EarlyStopping(early.patience, early.mode, early.min_delta).state_dict())
    return None, RunState(batch_size=state.batch_size, lr=state.lr, total_steps=state.total_steps)
