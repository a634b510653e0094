"""``Trainer``: the objects of one run (model, loaders, optimiser, training step), built from its config.

``fit`` (engine/fit.py) drives a run; this module builds what it drives, in one place: the model
with its seeded weights, every loader of the run in its normalisation and input size, the optimiser
and the step. It also checks the data a run is given before any of it is built.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch

from cnnbench.engine import distributed as ddp
from cnnbench.engine.config import TrainConfig
from cnnbench.engine.evaluate import EvalResult, evaluate
from cnnbench.engine.graphs import CudaGraphStep, cuda_graphs_wanted
from cnnbench.engine.loop import EagerStep
from cnnbench.engine.optim import ModelEma, build_optimizer
from cnnbench.engine.precise_bn import update_bn_stats
from cnnbench.rundir.layout import CONFIG_FILE
from cnnbench.utils.env import resolve_device, seed_everything, set_deterministic


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
            f"the dataset was given without the DataConfig it was loaded with: {CONFIG_FILE} records the one "
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
            normalize=(self.dataset.mean, self.dataset.std),
            output_size=self.input_size,
            shard=(self.dist.rank, self.dist.world_size) if sharded else (0, 1),
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

    def evaluate(self, loader, keep_predictions: bool = False) -> EvalResult:
        """The evaluated weights (the EMA's when the run keeps one) over ``loader``."""
        return evaluate(
            self.eval_model(),
            loader,
            self.dataset.num_classes,
            self.device,
            autocast_dtype=self.autocast_dtype,
            channels_last=self.channels_last,
            keep_predictions=keep_predictions,
        )
