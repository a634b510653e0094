"""The training flags shared by ``cnnbench train`` and ``cnnbench run``, generated from TrainConfig.

Every flag defaults to "not given" (None) so that a preset or study file can supply the value and
only what the user typed overrides it.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

from cnnbench.data.config import DATA_FLAG_HELP
from cnnbench.engine.config import (
    AMP_CHOICES,
    AUGMENT_CHOICES,
    FINETUNE_CHOICES,
    GRAPH_CHOICES,
    HEAD_CHOICES,
    MONITORS,
    OPTIMIZERS,
    SCHEDULES,
    TrainConfig,
)
from cnnbench.utils.env import DEVICE_CHOICES

HELP: dict[str, str] = {
    **DATA_FLAG_HELP,  # the data flags are defined with DataConfig
    "model": "model name (see 'cnnbench models')",
    "epochs": "maximum number of epochs (early stopping, --max-steps or --time-budget may end sooner)",
    "batch_size": "training batch size",
    "lr": "peak learning rate at --batch-size, after warm-up; auto: a learning-rate range test picks it "
    "(docs/training.md)",
    "lr_find_steps": "--lr auto: steps of the range test (the same for every model of a study)",
    "val_every_steps": "validate every N optimiser steps instead of after every epoch (patience and plateau "
    "then count these passes)",
    "optimizer": "optimiser",
    "momentum": "SGD momentum",
    "nesterov": "SGD with Nesterov momentum",
    "weight_decay": "weight decay (never applied to norm and bias parameters)",
    "schedule": "learning-rate schedule after warm-up",
    "min_lr": "lowest learning rate of cosine/onecycle/plateau",
    "warmup_epochs": "linear warm-up length in epochs (may be fractional)",
    "warmup_start_lr": "learning rate at the first warm-up step",
    "plateau_factor": "plateau: multiply the lr by this when the --monitor figure stalls",
    "plateau_patience": "plateau: epochs without improvement before a reduction",
    "plateau_max_reductions": "plateau: at most this many reductions",
    "step_size": "step schedule: epochs between decays",
    "step_gamma": "step schedule: decay factor",
    "patience": "early stopping: stop after this many epochs without improvement (default off)",
    "monitor": "early stopping / best checkpoint: the validation metric to watch",
    "min_delta": "early stopping: smallest change that counts as an improvement",
    "target_accuracy": "report epochs and time to this validation accuracy (0.99 or 99)",
    "stop_at_target": "end the run at the first validation pass that reaches --target-accuracy",
    "label_smoothing": "label smoothing of the cross-entropy loss",
    "grad_clip": "clip the global gradient norm to this value",
    "drop_rate": "classifier dropout (the seed's MNIST study used 0.5)",
    "augment": "training augmentation (auto: none for MNIST-like data, natural for photos; digits: the MNIST study's)",
    "amp": "mixed precision on a GPU (auto: bf16 where supported, else fp16 with a scaler)",
    "channels_last": "channels-last (NHWC) memory format; faster on GPUs and for depthwise convs on CPUs",
    "compile": "torch.compile the model",
    "cuda_graphs": "capture the whole training step in a CUDA graph (GPU only)",
    "ema": "keep an exponential moving average of the weights with this decay (e.g. 0.999)",
    "precise_bn_samples": "before each evaluation, recompute BatchNorm statistics on this many train images (0: off)",
    "seed": "random seed (weights, order, augmentation)",
    "deterministic": "deterministic algorithms (bit-exact reruns on the CPU; slower on a GPU)",
    "device": "device: auto, cpu, cuda or cuda:N",
    "image_size": "input resolution in pixels (default: the dataset's own)",
    "pretrained": "weights to start from: none, true (torch/timm cache, downloaded when missing) or a file/directory",
    "finetune": "with --pretrained: full, head (backbone frozen) or two-phase",
    "head_epochs": "two-phase: epochs of head-only training first",
    "backbone_lr_scale": "with --pretrained: backbone lr = lr × this",
    "head": "classifier head: linear, or mlp (FC 1000 → ReLU → Dropout 0.5 → FC)",
    "eval_batch_size": "batch size of validation passes",
    "test_batch_size": "batch size of the timed test pass",
    "max_steps": "fixed work: stop after this many optimiser steps (within --epochs); the same on any machine",
    "time_budget_s": "equal-time comparison: train for about this many seconds (a few steps are timed, then "
    "the step count is fixed); accuracies then depend on the machine and its load",
    "checkpoint_every_steps": "also save checkpoint/last.pt every N steps",
    "nan_check_every": "steps between NaN/Inf checks on a GPU",
    "progress": "show a progress bar on a terminal",
}
CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "monitor": MONITORS,
    "amp": AMP_CHOICES,
    "augment": AUGMENT_CHOICES,
    "finetune": FINETUNE_CHOICES,
    "head": HEAD_CHOICES,
    "cuda_graphs": GRAPH_CHOICES,
}
FLAG_ALIASES = {"time_budget_s": "--time-budget"}
# Other spellings of the same flags, accepted on purpose (never by argparse's prefix matching): the
# MNIST study's own main.py (underscores, --dropout, --factor, --lr_patience, --lr_scheduler) and the
# short forms timm's train.py users type (-b, --opt, --sched, --wd, --warmup-lr, --drop). Listed in
# docs/training.md.
SPELLINGS: dict[str, tuple[str, ...]] = {
    "batch_size": ("--batch_size", "-b"),
    "drop_rate": ("--dropout", "--drop"),
    "weight_decay": ("--weight_decay", "--wd"),
    "schedule": ("--lr_scheduler", "--sched"),
    "min_lr": ("--min_lr",),
    "plateau_factor": ("--factor",),
    "plateau_patience": ("--lr_patience",),
    "warmup_epochs": ("--warmup_epochs",),
    "warmup_start_lr": ("--warmup_start_lr", "--warmup-lr"),
    "optimizer": ("--opt",),
    "label_smoothing": ("--smoothing",),
    "max_steps": ("--max_steps",),
}
SKIP = {"notes"}


def _base_type(annotation: Any) -> type:
    hint = typing.get_type_hints(TrainConfig)[annotation]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def add_train_flags(parser: argparse.ArgumentParser, exclude: set[str] = frozenset()) -> None:
    """Add one flag per TrainConfig field (except ``exclude``), all defaulting to None."""
    group = parser.add_argument_group("training recipe")
    for f in dataclasses.fields(TrainConfig):
        if f.name in SKIP or f.name in exclude:
            continue
        flags = [FLAG_ALIASES.get(f.name, "--" + f.name.replace("_", "-")), *SPELLINGS.get(f.name, ())]
        kind = _base_type(f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        help_text = f"{HELP.get(f.name, '')} (default: {default})"
        if kind is bool:
            group.add_argument(*flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif f.name == "lr":
            group.add_argument(*flags, dest=f.name, type=_lr, default=None, metavar="LR|auto", help=help_text)
        elif f.name == "device":
            group.add_argument(*flags, dest=f.name, default=None, metavar="|".join(DEVICE_CHOICES), help=help_text)
        else:
            group.add_argument(
                *flags, dest=f.name, type=_parse_for(kind), default=None, choices=CHOICES.get(f.name), help=help_text
            )


def _parse_for(kind: type):
    if kind is int:
        return _int
    if kind is float:
        return float
    return str


def _lr(text: str) -> float | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)  # accept "1e3"
    except ValueError:
        value = float("nan")
    if not value.is_integer():  # also NaN, inf and words: argparse would call them "invalid _int value"
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def given_train_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The training flags the user actually typed (value not None)."""
    names = {f.name for f in dataclasses.fields(TrainConfig)} - SKIP
    return {k: v for k, v in vars(args).items() if k in names and v is not None}
