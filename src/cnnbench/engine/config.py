"""The training recipe of one run: every flag of ``cnnbench train``, validated before any work."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cnnbench.data.config import DataConfig, data_default
from cnnbench.errors import ConfigError
from cnnbench.rundir import UNUSED_OPTION_VALUES
from cnnbench.utils.config import accuracy_fraction, check_choice, check_range, from_mapping

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("none", "cosine", "plateau", "onecycle", "step")
MONITORS = ("val_accuracy", "val_loss")
AMP_CHOICES = ("auto", "bf16", "fp16", "none")
AUGMENT_CHOICES = ("auto", "none", "digits", "natural")
FINETUNE_CHOICES = ("full", "head", "two-phase")
HEAD_CHOICES = ("linear", "mlp")
GRAPH_CHOICES = ("auto", "on", "off")
LR_AUTO = "auto"  # --lr auto: the learning-rate range test (cnnbench.engine.lr_find) picks the lr


@dataclass
class TrainConfig:
    """One run's recipe. Field names are the ``cnnbench train`` flags (``warmup_epochs`` is ``--warmup-epochs``)."""

    model: str = "lenet5"
    # Data flags: defaults and checks are DataConfig's (cnnbench.data.config.RUN_DATA_FLAGS).
    data: str = data_default("data")
    data_dir: str | None = data_default("data_dir")  # searched before the default locations
    epochs: int = 30  # upper bound; early stopping and --time-budget may end sooner
    batch_size: int = 64
    lr: float | str = "auto"  # peak learning rate at --batch-size (after warm-up); auto: the range test picks it
    lr_find_steps: int = 60  # --lr auto: steps of the range test's ramp, the same for every model (the tuning budget)
    optimizer: str = "adamw"
    momentum: float = 0.9  # sgd only
    nesterov: bool = True  # sgd only
    weight_decay: float = 5e-4  # not applied to norm and bias parameters
    schedule: str = "onecycle"  # warms up by itself, so a range test's high pick starts safely
    min_lr: float = 0.0  # floor of cosine/onecycle/plateau
    warmup_epochs: float = 0.0  # linear warm-up before any schedule
    warmup_start_lr: float = 1e-6
    plateau_factor: float = 0.1  # lr *= factor when the --monitor figure stalls
    plateau_patience: int = 3  # epochs without improvement before a reduction
    plateau_max_reductions: int = 3  # the MNIST study divided by 10 at most 3 times
    step_size: int = 10  # step schedule: epochs between decays
    step_gamma: float = 0.1
    patience: int | None = None  # early stopping: epochs without improvement of --monitor; None = off
    monitor: str = "val_accuracy"
    min_delta: float = 0.0
    target_accuracy: float | None = None  # fraction (0.99) or percent (99); time/epochs to reach it on val
    stop_at_target: bool = False  # end the run at the first validation pass that reaches --target-accuracy
    val_every_steps: int | None = None  # validate every N optimiser steps instead of after each epoch
    label_smoothing: float = 0.1  # timm's default; measured with LeNet-5 in docs/training.md
    grad_clip: float | None = None  # max global grad norm
    drop_rate: float | None = 0.0  # classifier dropout; None = the architecture's default (the seed's 0.5)
    augment: str = "auto"  # auto: none for MNIST-like data, natural for photos (data.augment.training_augment_kind)
    amp: str = "auto"  # auto: bf16 on a GPU that has it, else fp16 with a scaler; none on the CPU
    channels_last: bool = True  # NHWC: faster on GPUs, and 1.5-2.5x on CPUs for depthwise-heavy models
    compile: bool = False  # torch.compile the model
    cuda_graphs: str = "auto"  # capture the whole train step in a CUDA graph (GPU only)
    ema: float | None = None  # decay of an exponential moving average of weights, e.g. 0.999
    precise_bn_samples: int = 2048  # recompute BN statistics on this many train images before each evaluation
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    val_fraction: float = data_default("val_fraction")
    image_size: int | None = None  # input resolution; None = the dataset's own (28 for MNIST)
    data_image_size: int | None = data_default("data_image_size")  # natural images: decode-once cache side
    per_class: int = data_default("per_class")  # caltech256: training images per class
    split_ratio: float | None = data_default("split_ratio")  # caltech256/imagefolder: instead of --per-class
    include_clutter: bool = data_default("include_clutter")  # caltech256: keep 257.clutter
    strict_data: bool = data_default("strict_data")  # an unreadable image is an error, not a listed skip
    max_skip_fraction: float = data_default("max_skip_fraction")  # more unreadable images: a hard error
    pretrained: str | None = None  # None/"none", "true" (torch/timm cache), or a file/directory of weights
    finetune: str = "full"  # full | head (backbone frozen) | two-phase (head first, then all)
    head_epochs: int = 1  # two-phase: epochs of head-only training first
    backbone_lr_scale: float = 0.1  # two-phase/full with pretrained: backbone lr = lr * this
    head: str = "linear"  # linear | mlp (the Caltech study's FC 1000 → ReLU → Dropout 0.5 → FC)
    eval_batch_size: int = 512
    test_batch_size: int = 32  # the test pass is also the timed "test time" (the Caltech study used 32)
    max_steps: int | None = None  # the run's work as optimiser steps (within --epochs); None = --epochs
    time_budget_s: float | None = None  # equal-time comparison: steps fixed by timing a few (machine-dependent)
    max_train_samples: int | None = data_default("max_train_samples")  # stratified subset of train
    max_val_samples: int | None = data_default("max_val_samples")  # stratified subset of val
    max_test_samples: int | None = data_default("max_test_samples")  # stated in the notes
    checkpoint_every_steps: int | None = None  # also save `last` mid-epoch (long epochs)
    nan_check_every: int = 1  # steps between NaN checks on a GPU (each check syncs)
    progress: bool = True  # rich progress bar on a terminal
    notes: list[str] = field(default_factory=list)  # set by the study runner, copied to summary.json

    def __post_init__(self) -> None:
        # The order of these groups is the order in which errors fire; keep it.
        self._check_choices()
        self._check_whole_numbers()
        self._check_ranges()
        self._check_optional_values()
        self._check_run_length()
        self._check_optional_limits()
        self.data_config()  # the data flags are checked where they are defined, with the same flag names
        if self.val_fraction == 0:  # `cnnbench data` may split without validation; a training run may not
            raise ConfigError(
                "--val-fraction 0: a training run validates on a held-out slice of train (best checkpoint, "
                "early stopping); expected a number > 0 and < 1"
            )
        self._check_target_accuracy()
        self._check_pretrained()

    def _check_choices(self) -> None:
        check_choice("--optimizer", self.optimizer, OPTIMIZERS)
        check_choice("--schedule", self.schedule, SCHEDULES)
        check_choice("--monitor", self.monitor, MONITORS)
        check_choice("--amp", self.amp, AMP_CHOICES)
        check_choice("--augment", self.augment, AUGMENT_CHOICES)
        check_choice("--finetune", self.finetune, FINETUNE_CHOICES)
        check_choice("--head", self.head, HEAD_CHOICES)
        check_choice("--cuda-graphs", self.cuda_graphs, GRAPH_CHOICES)

    def _check_whole_numbers(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "test_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} {value!r}: expected a whole number ≥ 1")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"--seed {self.seed!r}: expected a whole number ≥ 0")

    def _check_ranges(self) -> None:
        if isinstance(self.lr, str) and self.lr.strip().lower() == LR_AUTO:
            self.lr = LR_AUTO
        else:
            try:
                check_range("--lr", self.lr, 0, low_inclusive=False)
            except ConfigError as exc:
                raise ConfigError(f"{exc}, or auto (a learning-rate range test picks it)") from None
        # a ramp is tens of steps (fastai's 100, ours 60); a typo like 1e9 would run for years before its first line
        check_range("--lr-find-steps", self.lr_find_steps, 10, 10_000)
        if not isinstance(self.lr_find_steps, int) or isinstance(self.lr_find_steps, bool):
            raise ConfigError(f"--lr-find-steps {self.lr_find_steps!r}: expected a whole number ≥ 10")
        check_range("--weight-decay", self.weight_decay, 0)
        check_range("--min-lr", self.min_lr, 0)
        check_range("--warmup-epochs", self.warmup_epochs, 0)
        check_range("--warmup-start-lr", self.warmup_start_lr, 0)
        check_range("--plateau-factor", self.plateau_factor, 0, 1, low_inclusive=False, high_inclusive=False)
        check_range("--plateau-patience", self.plateau_patience, 0)
        check_range("--plateau-max-reductions", self.plateau_max_reductions, 0)
        check_range("--step-size", self.step_size, 1)
        check_range("--step-gamma", self.step_gamma, 0, 1, low_inclusive=False)
        check_range("--label-smoothing", self.label_smoothing, 0, 1, high_inclusive=False)
        check_range("--momentum", self.momentum, 0, 1)
        check_range("--head-epochs", self.head_epochs, 0)
        check_range("--backbone-lr-scale", self.backbone_lr_scale, 0)
        check_range("--nan-check-every", self.nan_check_every, 1)
        check_range("--precise-bn-samples", self.precise_bn_samples, 0)

    def _check_optional_values(self) -> None:
        if self.patience is not None:
            check_range("--patience", self.patience, 1)
        if self.grad_clip is not None:
            check_range("--grad-clip", self.grad_clip, 0, low_inclusive=False)
        if self.drop_rate is not None:
            check_range("--drop-rate", self.drop_rate, 0, 1, high_inclusive=False)
        if self.ema is not None:
            check_range("--ema", self.ema, 0, 1, low_inclusive=False, high_inclusive=False)
        if self.time_budget_s is not None:
            check_range("--time-budget", self.time_budget_s, 0, low_inclusive=False)

    def _check_run_length(self) -> None:
        if self.max_steps is not None:
            if not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool) or self.max_steps < 1:
                raise ConfigError(f"--max-steps {self.max_steps!r}: expected a whole number ≥ 1")
            if self.time_budget_s is not None:
                raise ConfigError(
                    "--max-steps and --time-budget both fix a run's length: give one (--time-budget "
                    "for an equal-time comparison whose steps depend on the machine, --max-steps for fixed work)"
                )

    def _check_optional_limits(self) -> None:
        for flag, value in (
            ("--checkpoint-every-steps", self.checkpoint_every_steps),
            ("--val-every-steps", self.val_every_steps),
        ):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{flag} {value!r}: expected a whole number ≥ 1")
        if self.image_size is not None:
            check_range("--image-size", self.image_size, 8)

    def _check_target_accuracy(self) -> None:
        if self.target_accuracy is not None:
            # accept percent, store a fraction like every accuracy
            self.target_accuracy = accuracy_fraction("--target-accuracy", self.target_accuracy)
        elif self.stop_at_target:
            raise ConfigError("--stop-at-target: needs --target-accuracy (the validation accuracy to stop at)")

    def _check_pretrained(self) -> None:
        if isinstance(self.pretrained, str) and self.pretrained.lower() in ("none", "false", ""):
            self.pretrained = None
        if self.finetune != "full" and self.pretrained is None:
            raise ConfigError(f"--finetune {self.finetune}: needs --pretrained (weights to fine-tune from)")

    def data_config(self, split_seed: int = 0) -> DataConfig:
        """The run's DataConfig. The split seed is fixed so every run of a study sees the same images."""
        return DataConfig.from_flags(dataclasses.asdict(self), split_seed=split_seed)

    @property
    def lr_auto(self) -> bool:
        return self.lr == LR_AUTO

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "config") -> TrainConfig:
        return from_mapping(cls, values, where)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def hash(self) -> str:
        """A short hash of everything that changes a run's result (not progress or notes)."""
        values = {k: v for k, v in self.to_dict().items() if k not in ("progress", "notes", "device")}
        for name, unused in UNUSED_OPTION_VALUES.items():
            if values.get(name) == unused:  # options added later: runs that do not use one keep their hash
                del values[name]
        return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train_config_fields() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]
