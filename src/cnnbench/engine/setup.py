"""The start of a run: its directory checked, its state restored or new, its header files and logs opened.

``start_run`` is the first step of ``fit``: it returns the ``FitRun`` that the loop trains. On
``--resume`` the state, the weights and every log continue from ``checkpoint/last.pt``; a new run
writes ``config.yaml`` (first: with ``--lr auto``, before the range test), ``data.json`` and
``model.json``, and states its notes (adaptations, split checks) with its figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnbench.engine.checkpoint import RESUME_KEYS, load_resume_checkpoint, restore
from cnnbench.engine.config import TrainConfig
from cnnbench.engine.early_stopping import EarlyStopping
from cnnbench.engine.lr_find import LR_FIND_START, apply_range_test
from cnnbench.engine.runlog import Progress, TensorBoardLog
from cnnbench.engine.schedules import PlateauState
from cnnbench.engine.state import FitRun, RunLogs, RunState, say
from cnnbench.engine.trainer import Trainer
from cnnbench.errors import CnnbenchError
from cnnbench.rundir import RunConfig, RunFiles, is_run_dir, move_aside, recipe_hash
from cnnbench.rundir.files import write_data_info, write_model_summary
from cnnbench.rundir.tables import MetricsLog, StepLog

IDENTITY_KEYS = ("model", "data", "image_size", "head", "drop_rate")  # what the weights' shapes depend on


def prepare_run_dir(out: Path, cfg: TrainConfig, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix two runs in one directory; with ``overwrite``, move the old run aside first."""
    if not is_run_dir(out):
        return
    try:
        saved = (RunConfig.read_if_present(out) or RunConfig({})).values
    except CnnbenchError:  # damaged: the directory still holds a run
        saved = {}
    if resume:
        for key in IDENTITY_KEYS:
            if key in saved and saved[key] != getattr(cfg, key):
                raise CnnbenchError(
                    f"--resume {out}: that run has {key} {saved[key]!r}, not {getattr(cfg, key)!r}; a checkpoint "
                    f"cannot continue as another {key} (use another --out for a new run)"
                )
        return
    if overwrite:
        dest = move_aside(out)
        cfg.notes.append(f"--overwrite: the previous run in this directory was moved to {dest}")
        return
    what = f"a run of {saved.get('model', '?')} (seed {saved.get('seed', '?')})" if saved else "files of a run"
    same = RunConfig(saved).config_hash == cfg.hash() if saved else False
    raise CnnbenchError(
        f"--out {out} already holds {what}{' with this recipe' if same else ' with another recipe'}; "
        "use --resume to continue it, another --out, or --overwrite to move it aside"
    )


def start_run(trainer: Trainer, resume: bool, lr_find_dir: Path | None) -> FitRun:
    """The run ``fit`` trains: restored from its last checkpoint (``resume``) or new, ready for the loop."""
    cfg, files = trainer.cfg, RunFiles(trainer.out)
    trainer.build_model()
    mode = "max" if cfg.monitor == "val_accuracy" else "min"
    plateau = PlateauState(cfg.plateau_factor, cfg.plateau_patience, cfg.plateau_max_reductions, mode=mode)
    early = EarlyStopping(cfg.patience, mode, cfg.min_delta)
    lr = float("nan") if cfg.lr_auto else cfg.lr  # --lr auto: set by the range test below
    state = RunState(batch_size=cfg.batch_size, lr=lr, notes=list(cfg.notes))
    resumed_from = None
    if resume:
        state, resumed_from = _restore(trainer, state, plateau, early)
    stopped = False
    if cfg.lr_auto and resumed_from is None:
        if trainer.dist.is_main:  # the run directory says what it is before the test: a killed test can be resumed
            write_config(trainer, None)
        stopped = not apply_range_test(trainer, state, files.lr_find, lr_find_dir)
        if stopped:  # a stop signal during the test: the run ends before its first step (fit)
            state.lr = LR_FIND_START  # builds the optimiser; never trained with, never recorded
    _build_optimisation(trainer, state, resumed_from)
    meta = getattr(trainer.model, "cnnbench_meta", None)
    model_summary = _write_header_files(trainer, None if stopped else state.lr)
    logs = _open_logs(trainer, state, resumed=resumed_from is not None)
    if resumed_from is None:
        _add_opening_notes(trainer, state.notes, meta)
    run = FitRun(trainer, files, state, plateau, early, logs, model_summary, range_test_stopped=stopped)
    run.plan_schedule()
    run.last_saved_step = state.step if resumed_from is not None else None
    return run


def write_config(trainer: Trainer, lr: float | None) -> None:
    """config.yaml: the TrainConfig, the model's and the data's arguments, and what this machine resolved."""
    resolved = {
        "device": str(trainer.device),
        "world_size": trainer.dist.world_size,
        "amp": str(trainer.autocast_dtype).replace("torch.", "") if trainer.autocast_dtype else "fp32",
        "channels_last": trainer.channels_last,
        "lr": lr,  # the learning rate trained with (--lr auto: the range test's pick; None while it runs)
        "config_hash": trainer.cfg.hash(),
        "recipe_hash": recipe_hash(trainer.cfg.to_dict()),
    }
    config = RunConfig.build(trainer.cfg.to_dict(), trainer.model_args, trainer.data_config.to_dict(), resolved)
    config.write(trainer.out)


def _restore(trainer: Trainer, state: RunState, plateau: PlateauState, early: EarlyStopping):
    """(state, checkpoint): the last checkpoint loaded into the model and the state; (state, None): none found."""
    files = RunFiles(trainer.out)
    if files.has_last_checkpoint():
        ckpt, notes = load_resume_checkpoint(files.checkpoints, map_location=trainer.device, require=RESUME_KEYS)
        state = restore(trainer, ckpt, plateau, early)
        state.notes.extend(notes)
        for line in notes:  # a damaged last.pt and the fallback taken: said now, not only in summary.json
            say(trainer, f"note: {line}")
        state.notes.append(f"resumed after epoch {state.epoch} (step {state.step})")
        return state, ckpt
    if trainer.dist.is_main:
        state.notes.append("--resume: no checkpoint found, started from scratch")
    return state, None


def _build_optimisation(trainer: Trainer, state: RunState, resumed_from: dict[str, Any] | None) -> None:
    """The loaders and the optimiser at the state's batch and lr (the checkpoint's optimiser state on resume)."""
    cfg = trainer.cfg
    trainer.build_loaders(state.batch_size)
    trainer.build_optimizer(state.lr, state.batch_size, state.notes)
    if cfg.max_steps is not None and state.total_steps is None:
        # fixed work: the schedule is a function of the step, so it must know the total from the start
        state.total_steps = min(cfg.epochs * len(trainer.train_loader), cfg.max_steps)
    if resumed_from is not None:
        trainer.optimizer.load_state_dict(resumed_from["optimizer"])


def _write_header_files(trainer: Trainer, lr: float | None):
    """config.yaml, data.json and model.json (rank 0); the ModelSummary that summary.json quotes."""
    from cnnbench.models import summarize

    size = trainer.input_size
    model_summary = summarize(trainer.model, (trainer.model_args["in_chans"], size, size))
    if trainer.dist.is_main:
        write_config(trainer, lr)
        write_data_info(trainer.out, trainer.dataset.info())
        write_model_summary(trainer.out, model_summary.to_dict())
    return model_summary


def _open_logs(trainer: Trainer, state: RunState, resumed: bool) -> RunLogs:
    """metrics.csv, steps.csv and TensorBoard, continued after the checkpoint's epoch and step on resume."""
    files, main, quiet, cfg = RunFiles(trainer.out), trainer.dist.is_main, trainer.quiet, trainer.cfg
    metrics = MetricsLog.resume(files.metrics, state.epoch, state.step) if resumed else MetricsLog(files.metrics)
    if metrics.skipped_rows:
        state.notes.append(f"{files.metrics.name}: {metrics.skipped_rows} unreadable row(s) dropped on resume")
    steps = StepLog.resume(files.steps, state.step) if resumed else StepLog(files.steps)
    tb = TensorBoardLog(
        files.tensorboard,
        enabled=main,
        purge_step=state.epoch + 1 if resumed else None,
        purge_global_step=state.step + 1 if resumed else None,
    )
    progress = Progress(cfg.progress and not quiet and main, cfg.model, lines=not quiet and main)
    return RunLogs(metrics, steps, tb, progress)


def _add_opening_notes(trainer: Trainer, notes: list[str], meta) -> None:
    """A new run states its evaluation subset, split checks and model adaptations with its figures."""
    notes.extend(n for n in trainer.dataset.notes if "limited to a stratified subset" in n)
    notes.extend(trainer.split_notes)
    for line in trainer.split_notes:
        say(trainer, line)
    if meta is not None and getattr(meta, "adaptation", None):
        notes.append("small-input adaptation: " + "; ".join(meta.adaptation))
    if meta is not None:
        notes.extend(f"model: {n}" for n in getattr(meta, "notes", []))
    if trainer.padded_convs:
        notes.append(
            f"CPU: {trainer.padded_convs} convolutions pad their input, smaller than their kernel, explicitly "
            "for oneDNN's fast weight-gradient kernels (same outputs; docs/models.md)"
        )
    if trainer.cfg.compile and trainer.device.type == "cpu":
        # never switched on for the user: on the CPU it did not repay its compile time (docs/benchmarks.md)
        notes.append(
            "torch.compile on the CPU: the first step includes compiling (25-185 s on 2 cores); measured at "
            "0.6-1.02x eager speed for the seed-mnist models (docs/benchmarks.md), so cnnbench leaves it off "
            "unless asked"
        )
