"""The engine's checkpoints: what they hold, when ``best`` and ``last`` are written, resuming from them.

``last.pt`` holds everything to continue (weights, optimiser, schedule, early stopping, RNGs and the
``RunState``); ``best.pt`` the weights of the best validation pass only. ``best`` is written together
with ``last`` (just before it), so the two on disk always belong to one moment of the run.
``cnnbench.checkpoints.save_checkpoint`` keeps the previous good ``last`` as ``last.prev.pt``; a
``last`` that is damaged on disk (a disk error, a copy cut short) is detected at load here and
``last.prev`` is used instead.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cnnbench.checkpoints import load_checkpoint, save_checkpoint
from cnnbench.engine import distributed as ddp
from cnnbench.engine.state import RunState
from cnnbench.errors import CheckpointError
from cnnbench.rundir.layout import checkpoint_file

if TYPE_CHECKING:
    from cnnbench.engine.early_stopping import EarlyStopping
    from cnnbench.engine.schedules import PlateauState
    from cnnbench.engine.state import FitRun
    from cnnbench.engine.trainer import Trainer


RESUME_KEYS = ("optimizer", "scheduler", "early_stopping", "run_state", "rng")


def load_resume_checkpoint(
    directory: Path, map_location: str | torch.device = "cpu", require: tuple[str, ...] = ()
) -> tuple[dict[str, Any], list[str]]:
    """Load ``last.pt``, falling back to ``last.prev.pt`` if it is damaged.

    Args:
        require: keys a usable checkpoint must hold (``RESUME_KEYS`` to continue training: a weights-only
            ``best.pt`` copied over ``last.pt`` is then refused, and ``last.prev.pt`` tried).

    Returns:
        The checkpoint and notes describing any fallback.

    Raises:
        CheckpointError: naming every file tried when none loads.
    """
    notes: list[str] = []
    errors: list[str] = []
    for name in ("last", "last.prev"):
        path = directory / checkpoint_file(name)
        if not path.exists():
            continue
        try:
            ckpt = load_checkpoint(path, map_location)
            missing = [k for k in require if k not in ckpt]
            if missing:
                raise CheckpointError(
                    f"checkpoint {path} holds no training state ({', '.join(missing)} missing): it is a weights-only "
                    "file such as best.pt and cannot be resumed from"
                )
        except CheckpointError as exc:
            errors.append(str(exc))
            notes.append(f"{path} could not be loaded ({exc}); falling back to the previous checkpoint")
            continue
        return ckpt, notes
    if errors:
        raise CheckpointError("no usable checkpoint to resume from: " + "; ".join(errors))
    raise CheckpointError(f"no checkpoint to resume from in {directory} (expected last.pt)")


def rng_state() -> dict[str, Any]:
    """Every RNG a training step touches, as tensors (loadable with weights_only=True)."""
    import random

    import numpy as np

    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_gauss": random.getstate()[2],
        "numpy_keys": torch.from_numpy(np_state[1].astype("int64")),
        "numpy_pos": int(np_state[2]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype("uint32"), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def weights_state(trainer: Trainer, state: RunState, early: EarlyStopping) -> dict[str, Any]:
    """``best``: the weights, without the optimiser state (2/3 of the bytes with Adam, which matters at
    ~8 s per GiB written and fsynced on a small machine), copied so that training can go on."""
    return {
        "model": _detached_copy(trainer.model.state_dict()),
        "ema": _detached_copy(trainer.ema.state_dict()) if trainer.ema is not None else None,
        "epoch": state.epoch,
        "step": state.step,
        "config": trainer.cfg.to_dict(),
        "model_args": trainer.model_args,
        "best_val_accuracy": early.best if early.mode == "max" else None,
    }


def training_state(trainer: Trainer, state: RunState, plateau: PlateauState, early: EarlyStopping) -> dict[str, Any]:
    """``last``: everything a resumed run continues from (``RESUME_KEYS`` and the weights)."""
    return {
        "model": trainer.model.state_dict(),
        "ema": trainer.ema.state_dict() if trainer.ema is not None else None,
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": plateau.state_dict(),
        "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else None,
        "epoch": state.epoch,
        "step": state.step,
        "rng": rng_state(),
        "early_stopping": early.state_dict(),
        "run_state": dataclasses.asdict(state),
        "config": trainer.cfg.to_dict(),
        "model_args": trainer.model_args,
        "best_val_accuracy": early.best if early.mode == "max" else None,
    }


def restore(trainer: Trainer, ckpt: dict[str, Any], plateau: PlateauState, early: EarlyStopping) -> RunState:
    """A ``last`` checkpoint loaded into the model, the schedule, early stopping and the RNGs: its RunState."""
    trainer.model.load_state_dict(ckpt["model"])
    if trainer.ema is not None and ckpt.get("ema") is not None:
        trainer.ema.load_state_dict(ckpt["ema"])
    if trainer.scaler is not None and ckpt.get("scaler") is not None:
        trainer.scaler.load_state_dict(ckpt["scaler"])
    plateau.load_state_dict(ckpt["scheduler"])
    early.load_state_dict(ckpt["early_stopping"])
    set_rng_state(ckpt["rng"])
    return RunState(**ckpt["run_state"])


def save_last(run: FitRun) -> None:
    """checkpoint/last.pt, and best.pt first when a validation pass improved on it since the last save
    (best is written with last, so the two on disk always belong to one moment of the run)."""
    save_best(run)
    trainer = run.trainer
    if trainer.dist.is_main:
        state = training_state(trainer, run.state, run.plateau, run.early)
        save_checkpoint(run.files.checkpoints, "last", state)
    ddp.barrier(trainer.dist)
    run.last_saved_step = run.state.step


def save_best(run: FitRun) -> None:
    """The best weights a validation pass kept (``run.best_pending``) as checkpoint/best.pt, if any."""
    if run.best_pending is None:
        return
    if run.trainer.dist.is_main:
        save_checkpoint(run.files.checkpoints, "best", run.best_pending)
    ddp.barrier(run.trainer.dist)
    run.best_pending = None


def _detached_copy(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state_dict.items()}
