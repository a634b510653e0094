"""``fit``: train one model and leave a complete run directory.

This module only orchestrates: the step, the epoch, evaluation, schedules, checkpoints and logs
live in their own modules. The run directory layout is documented in docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from cnnbench.engine import distributed as ddp
from cnnbench.engine.checkpoint import RESUME_KEYS, load_resume_checkpoint, rng_state, save_checkpoint, set_rng_state
from cnnbench.engine.config import TrainConfig
from cnnbench.engine.early_stopping import EarlyStopping
from cnnbench.engine.evaluate import EvalResult, evaluate, predictions_in_dataset_order
from cnnbench.engine.graphs import CudaGraphStep, cuda_graphs_wanted
from cnnbench.engine.loop import EagerStep, EpochPartial, EpochStats, train_one_epoch
from cnnbench.engine.optim import ModelEma, build_optimizer, set_lr
from cnnbench.engine.precise_bn import update_bn_stats
from cnnbench.engine.runlog import MetricsLog, Progress, StepLog, TensorBoardLog, step_log_interval, step_rows
from cnnbench.engine.schedules import PlateauState, build_schedule_spec, lr_at
from cnnbench.engine.stop import STOP, StopRequest
from cnnbench.errors import CnnbenchError
from cnnbench.rundir import STATUS_OK, recipe_hash
from cnnbench.utils.env import device_info, resolve_device, seed_everything, set_deterministic, synchronize, versions
from cnnbench.utils.io import atomic_write_json, atomic_write_text, check_writable_dir
from cnnbench.utils.lock import DirectoryLock

PROBE_STEPS = 5  # steps timed to turn a time budget into a fixed number of steps


@dataclass
class RunState:
    """Everything about a run's progress that is not a tensor; saved in every checkpoint."""

    batch_size: int
    lr: float  # base lr now (halved with the batch after an out-of-memory retry)
    epoch: int = 0  # epochs finished
    step: int = 0  # optimiser steps taken
    batch_in_epoch: int = 0  # > 0 when the checkpoint was taken inside an epoch (SIGTERM)
    partial: dict[str, Any] | None = None  # EpochPartial: training sums since the last validation pass
    train_time_s: float = 0.0
    total_steps: int | None = None  # fixed after the time-budget probe
    epochs_to_target: float | None = None  # epochs (fractional with --val-every-steps) at the first pass ≥ target
    time_to_target_s: float | None = None
    notes: list[str] = field(default_factory=list)
    images: int = 0  # training images seen (summed over ranks), the cost axis of time-to-target
    lr_find: dict[str, Any] | None = None  # --lr auto: what the range test picked (summary.json's lr_find)
    evaluations: int = 0  # validation passes done
    steps_to_target: int | None = None
    images_to_target: int | None = None


def _recorded_data_config(dataset, cfg: TrainConfig):
    """The DataConfig config.yaml records, and a note when it is not simply the one the flags give.

    A dataset passed to ``fit`` carries what it was loaded with (``Dataset.config``); recording that
    makes ``eval``, ``embed`` and the report reload exactly the images the run saw, even when it was
    loaded with options no training flag sets (``synthetic_train``, ``color_mode`` …).
    """
    from_flags = cfg.data_config()
    loaded = getattr(dataset, "config", None)
    if loaded is None:
        return from_flags, (
            "the dataset was given without the DataConfig it was loaded with: config.yaml records the one "
            "the flags give, which eval and embed reload"
        )
    changed = [f"{k}={v!r}" for k, v in loaded.to_dict().items() if getattr(from_flags, k) != v]
    note = f"the dataset was loaded with other options than the flags give: {', '.join(changed)}" if changed else ""
    return loaded, note


def _check_splits(dataset, cfg: TrainConfig) -> list[str]:
    """An empty split is an error; a split that lacks classes trains, with a note in the run and report."""
    import numpy as np

    from cnnbench.errors import DataError

    for name in ("train", "val", "test"):
        if len(getattr(dataset, name)) == 0:
            raise DataError(
                f"--data {cfg.data}: the {name} split has no images"
                + (" (check --max-train-samples / --val-fraction)" if name != "test" else "")
            )
    notes = []
    for name in ("train", "val", "test"):
        present = np.unique(np.asarray(getattr(dataset, name).labels)).size
        if present < dataset.num_classes:
            notes.append(
                f"warning: the {name} split holds {present} of {dataset.num_classes} classes; "
                "accuracies on the missing classes are not measured"
            )
    if len(dataset.train) < cfg.batch_size:
        notes.append(
            f"--batch-size {cfg.batch_size} is larger than the {len(dataset.train)} training images: "
            f"every step uses all of them (one step per epoch)"
        )
    return notes


def _epoch_seed(seed: int, epoch: int, rank: int) -> int:
    # Dropout and other in-model randomness restart from a value derived from (seed, epoch, rank),
    # so an epoch replayed after a crash draws exactly what the lost one drew.
    return (seed * 1_000_003 + epoch * 7919 + rank * 104_729) % 2**63


def _autocast_dtype(cfg: TrainConfig, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype, needs a GradScaler)."""
    if device.type != "cuda" or cfg.amp == "none":
        return None, False
    if cfg.amp == "bf16" or (cfg.amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16, False
    return torch.float16, True


class Trainer:
    """Holds the objects of one run while ``fit`` drives it. Not a public API."""

    def __init__(self, cfg: TrainConfig, out_dir: Path, dataset=None, quiet: bool = False) -> None:
        from cnnbench.data import load_dataset

        self.cfg = cfg
        self.out = Path(out_dir)
        self.quiet = quiet
        self.device = resolve_device(cfg.device)
        self.dist = ddp.init_from_env(self.device)
        self.device = ddp.local_device(self.device, self.dist)
        set_deterministic(cfg.deterministic)
        self.dataset = dataset if dataset is not None else load_dataset(cfg.data_config())
        self.train_split = self.dataset.train  # already subset by DataConfig.max_train_samples
        self.split_notes = _check_splits(self.dataset, cfg)
        self.data_config, note = _recorded_data_config(self.dataset, cfg)
        self.split_notes += [note] if note else []
        c, h, _ = self.dataset.image_shape
        self.input_size = cfg.image_size or h
        self.model_args = {
            "name": cfg.model,
            "num_classes": self.dataset.num_classes,
            "in_chans": c,
            "input_size": self.input_size,
            "drop_rate": cfg.drop_rate,
            "head": cfg.head,
        }
        self.autocast_dtype, needs_scaler = _autocast_dtype(cfg, self.device)
        self.channels_last = cfg.channels_last
        self.scaler = torch.amp.GradScaler("cuda") if needs_scaler else None

    # ----------------------------------------------------------------------------- building
    def new_model(self) -> torch.nn.Module:
        """The run's model with its seeded initial weights, on the device, in the run's memory format."""
        from cnnbench.models import create_model, onednn_refuses_small_maps, pad_small_maps

        seed_everything(self.cfg.seed)  # weight initialisation depends on the seed only
        model = create_model(**self.model_args, pretrained=self.cfg.pretrained).to(self.device)
        # oneDNN's slow weight-gradient fallback on maps smaller than a depthwise kernel, which its AVX2
        # kernels take and its AVX-512 ones do not (models/cpu_conv.py)
        pad = self.device.type == "cpu" and onednn_refuses_small_maps()
        shape = (self.dataset.image_shape[0], self.input_size, self.input_size)
        self.padded_convs = pad_small_maps(model, shape) if pad else 0
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def build_model(self) -> None:
        self.model = self.new_model()
        self.ema = ModelEma(self.model, self.cfg.ema) if self.cfg.ema else None
        self.train_model: torch.nn.Module = self.model
        if self.cfg.compile:
            self.train_model = torch.compile(self.model)
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = torch.nn.parallel.DistributedDataParallel(self.train_model, device_ids=ids)

    def loader(self, split, batch_size: int, *, train: bool, augment=None, seed: int = 0, sharded: bool = True):
        """A DeviceLoader over ``split`` in the run's normalisation and input size; ``sharded``: this rank's
        part under DDP (False: every rank sees every batch)."""
        from cnnbench.data import DeviceLoader

        return DeviceLoader(
            split,
            batch_size=batch_size,
            train=train,
            augment=augment,
            seed=seed,
            device=self.device,
            mean=self.dataset.mean,
            std=self.dataset.std,
            output_size=self.input_size,
            rank=self.dist.rank if sharded else 0,
            world_size=self.dist.world_size if sharded else 1,
        )

    def train_augmentation(self):
        from cnnbench.data import build_augmentation
        from cnnbench.data.augment import training_augment_kind

        return build_augmentation(
            training_augment_kind(self.cfg.augment, self.dataset.kind), output_size=self.input_size
        )

    def build_loaders(self, batch_size: int) -> None:
        augment, seed = self.train_augmentation(), self.cfg.seed
        self.train_loader = self.loader(self.train_split, batch_size, train=True, augment=augment, seed=seed)
        self.val_loader = self.loader(self.dataset.val, self.cfg.eval_batch_size, train=False)
        # precise BN: shuffled, unaugmented train batches; the same ones on every rank
        self.bn_loader = self.loader(self.train_split, batch_size, train=True, seed=seed + 7919, sharded=False)

    def build_optimizer(self, lr: float, batch_size: int, notes: list[str]) -> None:
        cfg = self.cfg.replace(lr=lr) if lr != self.cfg.lr else self.cfg
        graphs, why = cuda_graphs_wanted(cfg.cuda_graphs, self.device, self.scaler, cfg.compile)
        if graphs and (cfg.optimizer == "sgd" or self.dist.enabled):
            graphs = False
            why = "CUDA graphs need adam/adamw and a single process here; training eagerly"
            why = why if cfg.cuda_graphs == "on" else None
        if why and why not in notes:
            notes.append(why)
        self.optimizer = build_optimizer(self.model, cfg, self.device, capturable=graphs)
        self.step_fn = EagerStep(
            self.train_model,
            self.optimizer,
            label_smoothing=self.cfg.label_smoothing,
            grad_clip=self.cfg.grad_clip,
            autocast_dtype=self.autocast_dtype,
            scaler=self.scaler,
            ema=self.ema,
            channels_last=self.channels_last,
        )
        if graphs:
            self.step_fn = CudaGraphStep(self.step_fn, batch_size)

    def recalibrate_bn(self, epoch: int) -> None:
        """Precise BN before an evaluation (cnnbench.engine.precise_bn)."""
        if self.cfg.precise_bn_samples <= 0:
            return
        self.bn_loader.set_epoch(epoch)
        n = -(-self.cfg.precise_bn_samples // self.bn_loader.batch_size)
        update_bn_stats(self.eval_model(), itertools.islice(self.bn_loader, n), self.channels_last)

    def eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def evaluate(self, loader) -> EvalResult:
        return evaluate(
            self.eval_model(),
            loader,
            self.dataset.num_classes,
            self.device,
            autocast_dtype=self.autocast_dtype,
            channels_last=self.channels_last,
        )

    # ---------------------------------------------------------------------------- checkpoints
    def weights_state(self, state: RunState, early: EarlyStopping) -> dict[str, Any]:
        """``best``: the weights, without the optimiser state (2/3 of the bytes with Adam, which matters at
        ~8 s per GiB written and fsynced on a small machine), copied so that training can go on."""
        return {
            "model": _detached_copy(self.model.state_dict()),
            "ema": _detached_copy(self.ema.state_dict()) if self.ema is not None else None,
            "epoch": state.epoch,
            "step": state.step,
            "config": self.cfg.to_dict(),
            "model_args": self.model_args,
            "best_val_accuracy": early.best if early.mode == "max" else None,
        }

    def checkpoint_state(self, state: RunState, plateau: PlateauState, early: EarlyStopping) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": plateau.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": state.epoch,
            "step": state.step,
            "rng": rng_state(),
            "early_stopping": early.state_dict(),
            "run_state": dataclasses.asdict(state),
            "config": self.cfg.to_dict(),
            "model_args": self.model_args,
            "best_val_accuracy": early.best if early.mode == "max" else None,
        }

    def save(self, name: str, state: RunState, plateau: PlateauState, early: EarlyStopping) -> None:
        if self.dist.is_main:
            save_checkpoint(self.out / "checkpoint", name, self.checkpoint_state(state, plateau, early))
        ddp.barrier(self.dist)

    def save_weights(self, name: str, weights: dict[str, Any]) -> None:
        """A ``weights_state`` dict as ``checkpoint/<name>.pt`` (rank 0)."""
        if self.dist.is_main:
            save_checkpoint(self.out / "checkpoint", name, weights)
        ddp.barrier(self.dist)

    def restore(self, ckpt: dict[str, Any], plateau: PlateauState, early: EarlyStopping) -> RunState:
        self.model.load_state_dict(ckpt["model"])
        if self.ema is not None and ckpt.get("ema") is not None:
            self.ema.load_state_dict(ckpt["ema"])
        if self.scaler is not None and ckpt.get("scaler") is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        plateau.load_state_dict(ckpt["scheduler"])
        early.load_state_dict(ckpt["early_stopping"])
        set_rng_state(ckpt["rng"])
        state = RunState(**ckpt["run_state"])
        return state


def _write_config(trainer: Trainer, out: Path, lr: float | None) -> None:
    config = trainer.cfg.to_dict()
    config["model_args"] = trainer.model_args
    config["data_config"] = dataclasses.asdict(trainer.data_config)
    config["resolved"] = {
        "device": str(trainer.device),
        "world_size": trainer.dist.world_size,
        "amp": str(trainer.autocast_dtype).replace("torch.", "") if trainer.autocast_dtype else "fp32",
        "channels_last": trainer.channels_last,
        "lr": lr,  # the learning rate trained with (--lr auto: the range test's pick; None while it runs)
        "config_hash": trainer.cfg.hash(),
        "recipe_hash": recipe_hash(trainer.cfg.to_dict()),
    }
    atomic_write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def _check_config_type(cfg: object) -> None:
    """A dict or None given as the config is named as such, not met as an AttributeError from inside."""
    if isinstance(cfg, TrainConfig):
        return
    hint = (
        "; build one from the mapping with cnnbench.TrainConfig(**cfg) (TrainConfig takes the training options "
        "as keywords: model=..., data=..., epochs=...; fit itself takes none)"
        if isinstance(cfg, Mapping)
        else ", e.g. cnnbench.TrainConfig(model='lenet5', data='mnist-sample', epochs=1)"
    )
    got = "None" if cfg is None else f"a {type(cfg).__name__}"
    raise TypeError(f"cnnbench.fit: cfg is {got}, expected a cnnbench.TrainConfig{hint}")


def fit(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    dataset=None,
    quiet: bool = False,
    overwrite: bool = False,
    lr_find_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.data`` and write the run directory ``out_dir``.

    Args:
        resume: continue from ``out_dir/checkpoint/last.pt`` (falls back to ``last.prev.pt``).
            Under torchrun, a restarted job (``--max-restarts``) resumes automatically.
        overwrite: ``out_dir`` already holds a run and this is a new one: move the old one aside to
            ``<parent>/.replaced/`` first. Without it (and without ``resume``) that is an error, so two
            runs never mix in one directory.
        dataset: an already loaded ``cnnbench.data.Dataset`` (a study loads it once for all runs).
        quiet: no progress bar or per-epoch lines (``--json``).
        lr_find_dir: with ``--lr auto``, a directory of cached range tests (a study's ``lr_find/``):
            a run finds the test of its model, data, seed and regularisation there instead of repeating it.

    Returns:
        The summary.json dict. Failures that are results (divergence, interruption) are reported
        through ``status``; configuration and data errors raise ``CnnbenchError``.
    """
    from cnnbench.models import get_spec

    _check_config_type(cfg)
    get_spec(cfg.model)  # an unknown model fails before any data is decoded or directory made
    out = Path(out_dir)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun the other ranks follow rank 0
        restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
        prepare_run_dir(out, cfg, resume=resume or restarted, overwrite=overwrite)
    check_writable_dir(out)
    lock = DirectoryLock(out, ".train.lock")
    trainer = Trainer(cfg, out, dataset=dataset, quiet=quiet)
    main = trainer.dist.is_main
    if main:
        lock.acquire()
    try:
        with STOP.installed() as stop:
            return _fit(trainer, out, resume or trainer.dist.restart_count > 0, stop, lr_find_dir)
    finally:
        if main:
            lock.release()
        ddp.shutdown(trainer.dist)


RUN_MARKERS = ("config.yaml", "summary.json", "metrics.csv", "checkpoint")
IDENTITY_KEYS = ("model", "data", "image_size", "head", "drop_rate")  # what the weights' shapes depend on


def prepare_run_dir(out: Path, cfg: TrainConfig, *, resume: bool, overwrite: bool) -> None:
    """Refuse to mix two runs in one directory; with ``overwrite``, move the old run aside first."""
    if not out.is_dir() or not any((out / m).exists() for m in RUN_MARKERS):
        return
    saved: dict[str, Any] = {}
    if (out / "config.yaml").is_file():
        try:
            loaded = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
            saved = loaded if isinstance(loaded, dict) else {}
        except (yaml.YAMLError, OSError, UnicodeDecodeError):
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
        dest = out.parent / ".replaced" / f"{out.name}.{time.strftime('%Y%m%d-%H%M%S')}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        out.rename(dest)
        cfg.notes.append(f"--overwrite: the previous run in this directory was moved to {dest}")
        return
    what = f"a run of {saved.get('model', '?')} (seed {saved.get('seed', '?')})" if saved else "files of a run"
    same = saved.get("resolved", {}).get("config_hash") == cfg.hash() if saved else False
    raise CnnbenchError(
        f"--out {out} already holds {what}{' with this recipe' if same else ' with another recipe'}; "
        "use --resume to continue it, another --out, or --overwrite to move it aside"
    )


def _fit(trainer: Trainer, out: Path, resume: bool, stop: StopRequest, lr_find_dir=None) -> dict[str, Any]:
    run = _FitRun(trainer, out, resume, stop, Path(lr_find_dir) if lr_find_dir else None)
    status, error = run.train()
    return run.end(status, error)


class _FitRun:
    """One call of ``fit``: the run's state and logs, and the named steps of its epoch loop.

    ``_fit`` is ``_FitRun(...)`` (resume or start, header files, logs) → ``train()`` (the epoch loop,
    which returns how the run ended) → ``end()`` (the test pass and summary.json). Every step reads
    and updates ``self.state`` (what a checkpoint saves), so the order of the calls is the algorithm.
    """

    def __init__(
        self, trainer: Trainer, out: Path, resume: bool, stop: StopRequest, lr_find_dir: Path | None = None
    ) -> None:
        cfg = self.cfg = trainer.cfg
        self.trainer, self.out, self.stop, self.main = trainer, out, stop, trainer.dist.is_main
        trainer.build_model()
        mode = "max" if cfg.monitor == "val_accuracy" else "min"
        self.plateau = PlateauState(cfg.plateau_factor, cfg.plateau_patience, cfg.plateau_max_reductions, mode=mode)
        self.early = EarlyStopping(cfg.patience, mode, cfg.min_delta)
        lr = float("nan") if cfg.lr_auto else cfg.lr  # --lr auto: set by the range test below
        self.state = RunState(batch_size=cfg.batch_size, lr=lr, notes=list(cfg.notes))
        resumed_from = self._restore(resume)
        if cfg.lr_auto and resumed_from is None:
            if self.main:  # the run directory says what it is before the test: a killed test can be resumed
                _write_config(trainer, out, None)
            self._find_lr(lr_find_dir)
        self._build_optimisation(resumed_from)
        meta = getattr(trainer.model, "cnnbench_meta", None)
        self.model_summary = self._write_header_files()
        self._open_logs(resumed=resumed_from is not None)
        if resumed_from is None:
            self._add_opening_notes(meta)
        self.spe = len(trainer.train_loader)  # steps per epoch at the current batch size
        self.spec = build_schedule_spec(cfg.replace(lr=self.state.lr), self.spe, self.state.total_steps)
        self._best_pending: dict[str, Any] | None = None  # best weights not yet on disk (written with last)
        self._last_saved_step: int | None = self.state.step if resumed_from is not None else None

    def _restore(self, resume: bool) -> dict[str, Any] | None:
        """With ``resume``: the last checkpoint loaded into the model and ``self.state`` (None: none found)."""
        checkpoints = self.out / "checkpoint"
        if resume and checkpoints.is_dir() and any(checkpoints.glob("last*.pt")):
            ckpt, notes = load_resume_checkpoint(checkpoints, map_location=self.trainer.device, require=RESUME_KEYS)
            self.state = self.trainer.restore(ckpt, self.plateau, self.early)
            self.state.notes.extend(notes)
            self.state.notes.append(f"resumed after epoch {self.state.epoch} (step {self.state.step})")
            return ckpt
        if resume and self.main:
            self.state.notes.append("--resume: no checkpoint found, started from scratch")
        return None

    def _find_lr(self, cache_dir: Path | None) -> None:
        """--lr auto: the range test's pick becomes the run's lr (cnnbench.engine.lr_find).

        Rank 0 runs the test (or reads it from ``cache_dir``, a study's ``lr_find/``, where every run of the
        same model, data, seed and regularisation finds it) and every rank takes its pick. The curve goes
        to ``lr_find.csv``; the pick is saved with the run's state, so a resumed run never repeats it.
        """
        from cnnbench.engine.lr_find import LrFindResult, cache_key, run_range_test

        trainer, state = self.trainer, self.state
        result, cached = None, False
        if self.main:
            path = Path(cache_dir) / f"{cache_key(self.cfg.to_dict())}.json" if cache_dir else None
            result = _read_lr_find(path) if path else None
            cached = result is not None
            if result is None:
                self.say(f"{self.cfg.model}: learning-rate range test ({self.cfg.lr_find_steps} steps)")
                result = run_range_test(trainer)
                if path:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_json(path, result.to_dict())
            atomic_write_text(self.out / "lr_find.csv", result.csv_text())
        result = LrFindResult.from_dict(ddp.broadcast_object(result.to_dict() if result else None, trainer.dist))
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
        self.say(state.notes[-1 - len(result.notes)])

    def _build_optimisation(self, resumed_from: dict[str, Any] | None) -> None:
        trainer, state, cfg = self.trainer, self.state, self.cfg
        trainer.build_loaders(state.batch_size)
        trainer.build_optimizer(state.lr, state.batch_size, state.notes)
        if cfg.max_steps is not None and state.total_steps is None:
            # fixed work: the schedule is a function of the step, so it must know the total from the start
            state.total_steps = min(cfg.epochs * len(trainer.train_loader), cfg.max_steps)
        if resumed_from is not None:
            trainer.optimizer.load_state_dict(resumed_from["optimizer"])

    def _write_header_files(self):
        """config.yaml, data.json and model.json (rank 0); the ModelSummary that summary.json quotes."""
        from cnnbench.models import summarize

        trainer = self.trainer
        size = trainer.input_size
        model_summary = summarize(trainer.model, (trainer.model_args["in_chans"], size, size))
        if self.main:
            _write_config(trainer, self.out, self.state.lr)
            atomic_write_json(self.out / "data.json", trainer.dataset.info())
            atomic_write_json(self.out / "model.json", model_summary.to_dict())
        return model_summary

    def _open_logs(self, resumed: bool) -> None:
        """metrics.csv, steps.csv and TensorBoard, continued after the checkpoint's epoch and step on resume."""
        out, state, main = self.out, self.state, self.main
        metrics_csv = out / "metrics.csv"
        self.metrics = MetricsLog.resume(metrics_csv, state.epoch, state.step) if resumed else MetricsLog(metrics_csv)
        if self.metrics.skipped_rows:
            state.notes.append(f"metrics.csv: {self.metrics.skipped_rows} unreadable row(s) dropped on resume")
        self.steps_log = StepLog.resume(out / "steps.csv", state.step) if resumed else StepLog(out / "steps.csv")
        self.tb = TensorBoardLog(
            out / "tb",
            enabled=main,
            purge_step=state.epoch + 1 if resumed else None,
            purge_global_step=state.step + 1 if resumed else None,
        )
        quiet = self.trainer.quiet
        self.progress = Progress(self.cfg.progress and not quiet and main, self.cfg.model, lines=not quiet and main)

    def _add_opening_notes(self, meta) -> None:
        """A new run states its evaluation subset, split checks and model adaptations with its figures."""
        notes, trainer = self.state.notes, self.trainer
        notes.extend(n for n in trainer.dataset.notes if "limited to a stratified subset" in n)
        notes.extend(trainer.split_notes)
        for line in trainer.split_notes:
            self.say(line)
        if meta is not None and getattr(meta, "adaptation", None):
            notes.append("small-input adaptation: " + "; ".join(meta.adaptation))
        if meta is not None:
            notes.extend(f"model: {n}" for n in getattr(meta, "notes", []))
        if trainer.padded_convs:
            notes.append(
                f"CPU: {trainer.padded_convs} convolutions pad their input, smaller than their kernel, explicitly "
                "for oneDNN's fast weight-gradient kernels (same outputs; docs/models.md)"
            )
        if self.cfg.compile and trainer.device.type == "cpu":
            # never switched on for the user: on the CPU it did not repay its compile time (docs/benchmarks.md)
            notes.append(
                "torch.compile on the CPU: the first step includes compiling (25-185 s on 2 cores); measured at "
                "0.6-1.02x eager speed for the seed-mnist models (docs/benchmarks.md), so cnnbench leaves it off "
                "unless asked"
            )

    def say(self, message: str) -> None:
        """A line for the person watching (rank 0, not --json)."""
        if not self.trainer.quiet and self.main:
            _say(message)

    def epochs_planned(self) -> int:
        if self.state.total_steps is None:
            return self.cfg.epochs
        return min(self.cfg.epochs, math.ceil(self.state.total_steps / self.spe))

    def epochs_done(self) -> float:
        """Epochs trained, fractional inside an epoch (a run cut by --max-steps, a --val-every-steps pass)."""
        return self.state.epoch + self.state.batch_in_epoch / max(1, self.spe)

    def lr_for_step(self, step: int) -> float:
        return lr_at(step, self.spec, self.plateau.scale)

    def run_epoch(self, start: int, partial: EpochPartial | None, max_steps: int | None, **kwargs) -> EpochStats:
        """The current epoch's batches from ``start`` on, through the step (state.step is the first step)."""
        trainer, state = self.trainer, self.state
        return train_one_epoch(
            trainer.step_fn,
            trainer.train_loader.batches(start=start),
            device=trainer.device,
            first_step=state.step,
            start_batch=start,
            lr_for_step=self.lr_for_step,
            set_lr=lambda lr: set_lr(trainer.optimizer, lr),
            max_steps=max_steps,
            partial=partial,
            log_every=step_log_interval(self.spe, state.total_steps or self.cfg.epochs * self.spe),
            **kwargs,
        )

    def train(self) -> tuple[str, str | None]:
        """The training loop: (status, error) once the planned work ran or something ended the run early.

        Training goes in chunks: from where the run stands to the next of the epoch's end, the next
        validation pass (``--val-every-steps``), the next mid-epoch checkpoint or the last step. A
        validation pass closes a *window* (the steps since the previous one): its metrics.csv row,
        the plateau rule, early stopping, the target and the best checkpoint all act per window.
        Without ``--val-every-steps`` a window is an epoch, as it always was.
        """
        while True:
            if self._evaluation_due():
                ended = self._evaluate_window()
                if ended is not None:
                    return ended
            if self._work_done():
                return "completed", None
            stats = self._train_chunk()
            if stats is None:  # out of memory: the epoch starts again at a smaller batch
                continue
            if stats.diverged_step is not None:
                error = (
                    f"loss became NaN/Inf at epoch {self.state.epoch + 1}, step {stats.diverged_step} "
                    f"(lr {stats.last_lr:.3g}); " + _what_is_kept(self.out, self.state.epoch)
                )
                return self._ended("diverged", error, "red")
            if self.stop.set and stats.stopped_at_batch is not None and not self._evaluation_due():
                return self._interrupted()
            if self.state.batch_in_epoch == 0 and not self._evaluation_due():
                self._save_last()  # an epoch ended inside a --val-every-steps window
            elif self._checkpoint_due():
                self._save_last()

    def _work_done(self) -> bool:
        state = self.state
        if state.total_steps is not None and state.step >= state.total_steps:
            return True
        return state.epoch >= self.cfg.epochs

    def _window(self) -> EpochPartial:
        """Training sums since the last validation pass (saved in checkpoints as ``RunState.partial``)."""
        return EpochPartial(**self.state.partial) if self.state.partial else EpochPartial()

    def _evaluation_due(self) -> bool:
        """A validation pass is due: steps were trained since the last one and the window is complete."""
        state, every = self.state, self.cfg.val_every_steps
        if self._window().samples == 0:
            return False
        if self._work_done():
            return True
        if every:
            return state.step % every == 0
        return state.batch_in_epoch == 0

    def _checkpoint_due(self) -> bool:
        every = self.cfg.checkpoint_every_steps
        return bool(every) and self.state.step % every == 0 and self.state.batch_in_epoch > 0

    def _next_stop(self) -> int | None:
        """The global step the next chunk stops at (None: the epoch's end)."""
        state, cfg = self.state, self.cfg
        stops = [state.total_steps] if state.total_steps is not None else []
        for every in (cfg.val_every_steps, cfg.checkpoint_every_steps):
            if every:
                stops.append((state.step // every + 1) * every)
        return min(stops) if stops else None

    def _train_chunk(self) -> EpochStats | None:
        """Train from where the run stands to the next stop (``_next_stop``) or the epoch's end.

        Returns None when the device ran out of memory and the epoch must start again at half the batch.
        """
        state = self.state
        epoch = state.epoch
        start_batch = self._begin_epoch(epoch)
        train_time_before = state.train_time_s
        try:
            stats = self._chunk_batches(start_batch)
        except _Diverged as d:
            stats = d.stats
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not _is_oom(exc):
                raise
            self._retry_after_oom(exc, epoch)
            return None
        self.progress.end_epoch("")
        self._sum_over_ranks(stats)
        state.step += stats.steps
        state.images += stats.samples
        state.train_time_s = train_time_before + stats.seconds
        window = self._window()
        state.partial = dataclasses.asdict(
            EpochPartial(
                loss_sum=window.loss_sum + stats.loss_sum,
                correct=window.correct + stats.correct,
                samples=window.samples + stats.samples,
                seconds=window.seconds + stats.seconds,
                last_lr=stats.last_lr,
            )
        )
        if stats.stopped_at_batch is None and stats.diverged_step is None:
            state.epoch, state.batch_in_epoch = epoch + 1, 0
        elif stats.stopped_at_batch is not None:
            state.batch_in_epoch = stats.stopped_at_batch
        if self.main and stats.points:
            rows = step_rows(stats.points, epoch, self.spe, state.batch_size)
            self.steps_log.extend(rows)
            self.tb.steps(rows)
        return stats

    def _begin_epoch(self, epoch: int) -> int:
        """Freeze what the fine-tuning mode freezes, seed the epoch at its start; the first batch to train."""
        from cnnbench.models import freeze_backbone

        cfg, state = self.cfg, self.state
        if cfg.finetune == "head" or (cfg.finetune == "two-phase" and epoch < cfg.head_epochs):
            freeze_backbone(self.trainer.model, True)
        elif cfg.finetune == "two-phase":
            freeze_backbone(self.trainer.model, False)
        self.trainer.train_loader.set_epoch(epoch)
        start_batch = state.batch_in_epoch
        if start_batch == 0:
            torch.manual_seed(_epoch_seed(cfg.seed, epoch, self.trainer.dist.rank))
        self.progress.start_epoch(epoch, self.epochs_planned(), self.spe, start_batch)
        return start_batch

    def _chunk_batches(self, start_batch: int) -> EpochStats:
        """The chunk's batches; under a time budget not yet turned into steps, the timed probe first."""
        probe_points: list = []
        partial = None
        if self.cfg.time_budget_s and self.state.total_steps is None:
            probe = self._probe_time_budget(start_batch)
            start_batch += probe.steps
            probe_points = probe.points
            partial = probe.partial() if probe.diverged_step is None else None
            if probe.diverged_step is not None:
                self.state.step -= probe.steps  # the probe counted them; _train_chunk counts the chunk's once
                raise _Diverged(probe)
        stats = self.run_epoch(
            start_batch,
            partial,
            self._next_stop(),
            nan_check_every=1 if self.trainer.device.type == "cpu" else self.cfg.nan_check_every,
            should_stop=lambda: self.stop.set,
            on_step=lambda b, s: self.progress.advance(),
        )
        stats.points[:0] = probe_points
        return stats

    def _probe_time_budget(self, start_batch: int) -> EpochStats:
        """Time a few steps, then fix the number of steps for the whole run (the schedule is a function
        of the step, so it must know the total)."""
        cfg, state, spe = self.cfg, self.state, self.spe
        probe = self.run_epoch(start_batch, None, state.step + PROBE_STEPS, nan_check_every=1)
        per_step = probe.seconds / max(1, probe.steps)
        remaining = max(0.0, cfg.time_budget_s - probe.seconds)
        state.total_steps = min(cfg.epochs * spe, state.step + probe.steps + int(remaining / per_step))
        state.total_steps = max(state.total_steps, state.step + probe.steps)
        self.spec = build_schedule_spec(cfg.replace(lr=state.lr), spe, state.total_steps)
        state.notes.append(
            f"time budget {cfg.time_budget_s:g} s: {state.total_steps} steps of batch {state.batch_size} "
            f"(≈{state.total_steps / spe:.2f} epochs, {per_step * 1000:.0f} ms/step measured)"
        )
        state.step += probe.steps
        return probe

    def _retry_after_oom(self, exc: BaseException, epoch: int) -> None:
        self.progress.end_epoch("")
        self.state, self.spec = _retry_smaller(self.trainer, self.state, self.plateau, self.early, exc, epoch)
        self.spe = len(self.trainer.train_loader)
        self.say(self.state.notes[-1])

    def _sum_over_ranks(self, stats: EpochStats) -> None:
        """Under DDP every rank saw its own shard: the chunk's training figures are the sums over ranks."""
        dist, device = self.trainer.dist, self.trainer.device
        if not dist.enabled or stats.diverged_step is not None:
            return
        loss_sum, correct, samples = ddp.all_reduce_sum([stats.loss_sum, stats.correct, stats.samples], device, dist)
        stats.loss, stats.accuracy = loss_sum / samples, correct / samples
        stats.loss_sum, stats.correct, stats.samples = loss_sum, int(correct), int(samples)
        _sum_points_over_ranks(stats, device, dist)

    def _ended(self, status: str, error: str, colour: str) -> tuple[str, str]:
        self.progress.end_epoch(f"[{colour}]{error}")
        return status, error

    def _interrupted(self) -> tuple[str, str]:
        """SIGTERM/SIGINT: save where the run stands (mid-epoch: the batch reached and the window's sums),
        so --resume continues there."""
        if self._last_saved_step != self.state.step or self._best_pending is not None:
            self._save_last()
        state = self.state
        where = f"in epoch {state.epoch + 1}" if state.batch_in_epoch else f"after epoch {state.epoch}"
        error = f"stopped by {self.stop.signal} {where}; resume with --resume"
        return self._ended("interrupted", error, "yellow")

    def _save_last(self) -> None:
        """checkpoint/last.pt, and best.pt first when a validation pass improved on it since the last save
        (best is written with last, so the two on disk always belong to one moment of the run)."""
        if self._best_pending is not None:
            self.trainer.save_weights("best", self._best_pending)
            self._best_pending = None
        self.trainer.save("last", self.state, self.plateau, self.early)
        self._last_saved_step = self.state.step

    def _evaluate_window(self) -> tuple[str, str | None] | None:
        """Validate, record the window, and decide whether the run ends here."""
        trainer = self.trainer
        trainer.recalibrate_bn(self.state.epoch)
        val = trainer.evaluate(trainer.val_loader)
        if not math.isfinite(val.loss):
            # the last step's update made the weights non-finite after a finite loss: nothing to keep
            error = (
                f"validation loss is NaN/Inf after step {self.state.step} (the weights stopped being finite; lr "
                f"{self._window().last_lr:.3g}); {_what_is_kept(self.out, self.state.epoch)}"
            )
            return self._ended("diverged", error, "red")
        window = self._record_evaluation(val)
        return self._after_evaluation(window, val)

    def _record_evaluation(self, val: EvalResult) -> EpochPartial:
        """The window's metrics row, the plateau and target checks, early stopping, checkpoints."""
        cfg, state, early = self.cfg, self.state, self.early
        window = self._window()
        epochs = round(self.epochs_done(), 4)
        row = {
            "epoch": state.epoch if state.batch_in_epoch == 0 else epochs,
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
        state.partial = None
        state.evaluations += 1
        if (
            cfg.schedule == "plateau"
            and epochs > cfg.warmup_epochs
            and self.plateau.update(val.accuracy if self.plateau.mode == "max" else val.loss)
        ):
            state.notes.append(f"plateau: lr × {cfg.plateau_factor:g} after {self._where()}")
        if (
            cfg.target_accuracy is not None
            and state.steps_to_target is None
            and val.accuracy >= cfg.target_accuracy - 1e-12
        ):
            state.epochs_to_target, state.time_to_target_s = row["epoch"], state.train_time_s
            state.steps_to_target, state.images_to_target = state.step, state.images
        improved = early.update(val.accuracy if early.mode == "max" else val.loss, row["epoch"], state.step)
        if self.main:
            self.metrics.append(row)
            self.tb.epoch(row)
        if improved:
            self._best_pending = self.trainer.weights_state(state, early)
        if state.batch_in_epoch == 0 or self._work_done() or self._checkpoint_due():
            self._save_last()
        return window

    def _where(self) -> str:
        state = self.state
        if self.cfg.val_every_steps:
            return f"step {state.step} (epoch {self.epochs_done():.2f})"
        return f"epoch {state.epoch}" if state.batch_in_epoch == 0 else f"step {state.step}"

    def _after_evaluation(self, window: EpochPartial, val: EvalResult) -> tuple[str, str | None] | None:
        """The pass's line; (status, error) when the run ends here (a stop, early stopping, the target)."""
        state, cfg = self.state, self.cfg
        self.progress.print(
            f"{cfg.model} {self._where()}: train loss {window.loss_sum / window.samples:.4f} "
            f"acc {window.correct / window.samples:.4f} · val loss {val.loss:.4f} acc {val.accuracy:.4f} · "
            f"lr {window.last_lr:.2e} · {window.seconds:.1f}s"
        )
        if self.stop.set and not self._work_done() and not self.early.should_stop:
            # asked to stop during the evaluation: this window is recorded; the next one is not started
            return self._interrupted()
        if self.early.should_stop:
            return "early_stopped", None
        if cfg.stop_at_target and state.steps_to_target == state.step:
            state.notes.append(
                f"stopped at the target: validation accuracy ≥ {cfg.target_accuracy:.2%} after {self._where()} "
                f"({state.images:,} training images)"
            )
            return "early_stopped", None
        return None

    def end(self, status: str, error: str | None) -> dict[str, Any]:
        """After the loop: the test pass with the best checkpoint, then summary.json and test_metrics.json."""
        self.progress.close()
        state, out = self.state, self.out
        step_fn = self.trainer.step_fn
        if isinstance(step_fn, CudaGraphStep):
            if step_fn.failed:
                state.notes.append(step_fn.failed)
            elif step_fn.capture_seconds is not None:
                state.notes.append(f"CUDA graph: training step captured in {step_fn.capture_seconds:.2f} s")
        if status != "interrupted" and self._best_pending is not None:
            self.trainer.save_weights("best", self._best_pending)  # the test pass reads it
            self._best_pending = None
        if status in STATUS_OK and self._last_saved_step != self.state.step:
            self._save_last()  # a run that ended inside an epoch (early stopping, the target)
        if status in STATUS_OK and self.main:
            # a finished run needs no fallback for a damaged `last`; keep the disk for the next run
            (out / "checkpoint" / "last.prev.pt").unlink(missing_ok=True)
            (out / "checkpoint" / "last.prev.pt.sha256").unlink(missing_ok=True)
        test, test_seconds = self._test_pass() if status != "interrupted" else (None, None)
        summary = self._summary(status, error, test, test_seconds)
        if self.main:
            self._write_results(test, summary)
        with contextlib.suppress(Exception):
            ddp.barrier(self.trainer.dist)
        self.tb.text("summary", f"status {summary['status']}, test accuracy {summary['test_accuracy']}")
        self.tb.close()
        if summary["status"] in STATUS_OK:
            self.say(
                f"{self.cfg.model}: test accuracy {summary['test_accuracy']:.4f} (best epoch {summary['best_epoch']}, "
                f"{summary['train_time_s']:.1f}s training) → {out}"
            )
        return summary

    def _test_pass(self) -> tuple[EvalResult | None, float | None]:
        """The best checkpoint on the test split, once: (result, seconds); (None, None) without a best checkpoint."""
        from cnnbench.runs import eval_state_dict, load_checkpoint

        trainer, device = self.trainer, self.trainer.device
        best_path = self.out / "checkpoint" / "best.pt"
        if not best_path.exists():
            return None, None
        ckpt = load_checkpoint(best_path, map_location=device)
        trainer.model.load_state_dict(ckpt["model"])
        if trainer.ema is not None and ckpt.get("ema") is not None:
            trainer.ema.load_state_dict(eval_state_dict(ckpt))
        loader = trainer.loader(trainer.dataset.test, self.cfg.test_batch_size, train=False)
        synchronize(device)
        t0 = time.perf_counter()
        test = evaluate(
            trainer.eval_model(),
            loader,
            trainer.dataset.num_classes,
            device,
            autocast_dtype=trainer.autocast_dtype,
            channels_last=trainer.channels_last,
            keep_predictions=True,  # test_predictions.npz: what the report's paired tests compare
        )
        synchronize(device)
        seconds = time.perf_counter() - t0
        # outside the timed pass: under DDP every rank sends its shard, and all end with the whole split in order
        test.predictions = predictions_in_dataset_order(test.predictions, loader.sample_order(), trainer.dist)
        return test, seconds

    def _summary(
        self, status: str, error: str | None, test: EvalResult | None, test_time: float | None
    ) -> dict[str, Any]:
        """The summary.json object (docs/architecture.md; cnnbench.rundir.RunSummary reads it)."""
        cfg, state, early, trainer, rows = self.cfg, self.state, self.early, self.trainer, self.metrics.rows
        best_row = next((r for r in rows if early.best_step is not None and r["step"] == early.best_step), None)
        best_row = best_row or next((r for r in rows if r["epoch"] == early.best_epoch), None)
        epochs_run = state.epoch if state.batch_in_epoch == 0 else round(self.epochs_done(), 4)
        return {
            "model": cfg.model,
            "dataset": cfg.data,
            "status": status,
            "error": error,
            "test_accuracy": test.accuracy if test else None,
            "test_loss": test.loss if test else None,
            "test_top5": test.top5 if test else None,
            "test_mean_class_accuracy": test.mean_class_accuracy if test else None,
            "best_val_accuracy": max((r["val_acc"] for r in rows if r["val_acc"] is not None), default=None),
            "train_accuracy": best_row["train_acc"] if best_row else None,
            "epochs_run": epochs_run,
            "best_epoch": early.best_epoch or None,
            "train_time_s": state.train_time_s,
            "time_per_epoch_s": state.train_time_s / epochs_run if epochs_run else None,
            "target_accuracy": cfg.target_accuracy,
            "epochs_to_target": state.epochs_to_target,
            "time_to_target_s": state.time_to_target_s,
            "steps_to_target": state.steps_to_target,
            "images_to_target": state.images_to_target,
            "test_time_s": test_time,
            "test_batch_size": cfg.test_batch_size,
            "test_samples": test.samples if test else None,
            "params": self.model_summary.params,
            "size_mb": self.model_summary.size_mb,
            "flops": self.model_summary.flops,
            "input_size": trainer.input_size,
            "schedule": cfg.schedule,
            "seed": cfg.seed,
            "batch_size": state.batch_size,
            "lr": state.lr,
            "steps": state.step,
            "images": state.images,
            "evaluations": state.evaluations,
            "best_step": early.best_step,
            "lr_find": state.lr_find,
            "device": device_info(trainer.device),
            "world_size": trainer.dist.world_size,
            "versions": versions(),
            "config_hash": cfg.hash(),
            "recipe_hash": recipe_hash(cfg.to_dict()),
            "notes": state.notes,
        }

    def _write_results(self, test: EvalResult | None, summary: dict[str, Any]) -> None:
        """test_metrics.json and test_predictions.npz (when the test pass ran), then summary.json: the file
        that says the run ended."""
        if test is not None and test.predictions is not None:
            test.predictions.write(self.out)
        if test is not None:
            atomic_write_json(
                self.out / "test_metrics.json",
                {
                    "classes": list(self.trainer.dataset.classes),
                    "confusion_matrix": test.confusion,
                    "per_class_accuracy": test.per_class_accuracy,
                    "samples": test.samples,
                },
            )
        atomic_write_json(self.out / "summary.json", summary)


def _read_lr_find(path: Path):
    """A cached range test, or None when there is none or it cannot be read (it is then run again)."""
    import json

    from cnnbench.engine.lr_find import LrFindResult

    try:
        result = LrFindResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return result if isinstance(result.lr, float) and math.isfinite(result.lr) and result.lr > 0 else None


def _detached_copy(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state_dict.items()}


def _what_is_kept(out: Path, epochs_done: int) -> str:
    """What a diverged run leaves to resume from: said exactly, never promised."""
    if (out / "checkpoint" / "last.pt").exists():
        return f"the last good checkpoint (epoch {epochs_done}) is kept in checkpoint/last.pt"
    return "no checkpoint exists (it diverged in its first epoch)"


def _sum_points_over_ranks(stats: EpochStats, device: torch.device, dist: ddp.DistInfo) -> None:
    """Step points of every rank's shard, summed like the epoch's figures (one all-reduce)."""
    if not stats.points:
        return
    flat = ddp.all_reduce_sum([v for p in stats.points for v in (p.loss_sum, p.correct, p.samples)], device, dist)
    for i, p in enumerate(stats.points):
        p.loss_sum, p.correct, p.samples = flat[3 * i], int(flat[3 * i + 1]), int(flat[3 * i + 2])


class _Diverged(Exception):
    def __init__(self, stats: EpochStats) -> None:
        self.stats = stats


def _say(message: str) -> None:
    """A line for the person watching, on stderr (never on stdout, which --json keeps for its object)."""
    from rich.console import Console

    if sys.stderr is None:  # no stderr at all (fd 2 closed at start-up): a completed run stays completed
        return
    # soft wrap off a terminal: a log file gets the final line whole, not folded at 80 columns
    Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty()).print(message)


def _retry_smaller(trainer: Trainer, state: RunState, plateau, early, exc: BaseException, epoch: int):
    """After a CUDA out-of-memory error: halve the batch (and the lr, by the linear rule), restart the epoch."""
    if state.batch_size <= 1:
        raise CnnbenchError(
            f"out of memory at batch size 1 (model {trainer.cfg.model}, input {trainer.input_size}px): "
            "the model does not fit on this device; use a smaller --image-size or another --device"
        ) from exc
    trainer.optimizer.zero_grad(set_to_none=True)
    if trainer.device.type == "cuda":
        torch.cuda.empty_cache()
    # Go back to the state at the start of this epoch, with the new batch size: last.pt, or in the
    # first epoch the seeded initialisation (rebuilt, not saved: no checkpoint is written at epoch 0).
    old_bs, old_lr, old_notes = state.batch_size, state.lr, list(state.notes)
    ckpt = None
    if any((trainer.out / "checkpoint").glob("last*.pt")):
        ckpt, _ = load_resume_checkpoint(trainer.out / "checkpoint", map_location=trainer.device, require=RESUME_KEYS)
        state = trainer.restore(ckpt, plateau, early)
    else:
        trainer.build_model()
        cfg = trainer.cfg
        plateau.load_state_dict(
            PlateauState(
                cfg.plateau_factor, cfg.plateau_patience, cfg.plateau_max_reductions, mode=plateau.mode
            ).state_dict()
        )
        early.load_state_dict(EarlyStopping(early.patience, early.mode, early.min_delta).state_dict())
        state = RunState(batch_size=old_bs, lr=old_lr, total_steps=state.total_steps)
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
    spec = build_schedule_spec(trainer.cfg.replace(lr=state.lr), spe, state.total_steps)
    return state, spec
