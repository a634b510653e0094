"""Named studies: the two reference studies and the quick default for a CPU.

A preset is the lowest layer of a study definition; a study file and flags override it key by key.
"""

from __future__ import annotations

import copy
from typing import Any

from cnnbench.errors import ConfigError


class Deviation(str):
    """A preset's note on where it differs from its seed study, true only while ``keys`` keep the preset's values.

    A plain ``str`` everywhere else (study.yaml, the report); ``build_spec`` drops it when a study file
    or a flag changes one of its keys, and says what was changed instead.
    """

    keys: tuple[str, ...]

    def __new__(cls, text: str, *keys: str) -> Deviation:
        obj = super().__new__(cls, text)
        obj.keys = keys
        return obj

    def __deepcopy__(self, memo: dict) -> Deviation:
        return self  # immutable


# Target accuracy per dataset: the MNIST study's 99 % on MNIST; the others are levels the seed-mnist
# models reach comfortably under the same recipe, so time-to-target stays comparable.
TARGETS = {"mnist": 0.99, "mnist-sample": 0.97, "fashion-mnist": 0.90, "cifar10": 0.80, "synthetic": 0.95}

# The quick preset (docs/studies.md): every model trains until its validation accuracy reaches the
# target, checked every QUICK_VAL_EVERY steps of batch 64, at most QUICK_CAP steps, after a range test.
QUICK_CAP = 300
QUICK_VAL_EVERY = 10
QUICK_LR_FIND_STEPS = 60
# Cosine over the cap after a short warm-up (11 steps of batch 64 on mnist-sample; at most a fifth of the cap):
# a run that stops at its target spends its steps near the peak, where one-cycle's 90-step warm-up from a
# 25th of the pick did not (16-20 % fewer steps to 90 % over the ten models, seeds 0 and 1; docs/benchmarks.md).
QUICK_WARMUP_EPOCHS = 0.2
# Targets a correct run reaches within the cap on every seed-mnist model; mnist-sample's 95 % on 400
# validation digits keeps the 1,000 test digits above 90 % for every model (docs/studies.md).
QUICK_TARGETS = {"mnist": 0.97, "mnist-sample": 0.95, "fashion-mnist": 0.85, "cifar10": 0.60, "synthetic": 0.90}

# Where cnnbench differs on purpose from the MNIST study's code, whatever the preset (docs/studies.md).
SEED_MNIST_DEVIATIONS = [
    "Train and validation images are disjoint. The seed drew them from two independent permutations "
    "(randperm(n)[:train_size] and another randperm(n)[train_size:]), so about 80 % of its validation "
    "images were also training images and its validation accuracies are optimistic.",
    "Weight decay is not applied to norm and bias parameters (the usual AdamW practice of timm and "
    "torchvision's references); the seed decayed every parameter.",
    "The models are the published architectures with one small-input rule at 28x28 (stem strides and pools "
    "removed until the last feature map is at least 2x2, VGG's and AlexNet's classifiers fitted to that map, "
    "AlexNet initialised as torchvision's VGG; docs/models.md), listed for each run in its summary and the "
    "report, instead of the seed's hand-adapted models (its VGG-11 had fewer convolution layers and other "
    "widths, which it credits for that model's speed).",
]

# The MNIST study's code defaults (seeds/000): batch 64, AdamW lr 1e-3, weight decay 1e-4, dropout 0.5,
# 5 warm-up epochs from 1e-6, cosine to 1e-6 (T_max = epochs - warm-up) or plateau (÷10 on validation
# loss, patience 3, floor 1e-6), early stopping on validation loss (patience 7), ≤ 50 epochs, an 80/20
# train/validation split, time and epochs to 99 %.
SEED_MNIST_RECIPE: dict[str, Any] = {
    "epochs": 50,
    "batch_size": 64,
    "lr": 1e-3,
    "optimizer": "adamw",
    "weight_decay": 1e-4,
    "drop_rate": 0.5,
    "warmup_epochs": 5,
    "warmup_start_lr": 1e-6,
    "min_lr": 1e-6,
    "plateau_factor": 0.1,
    "plateau_patience": 3,
    "plateau_max_reductions": 3,  # 1e-3 reaches the 1e-6 floor after three; the seed had no cap
    "monitor": "val_loss",
    "patience": 7,
    "val_fraction": 0.2,
    "augment": "digits",
    "label_smoothing": 0.0,
    "target_accuracy": 0.99,
    "precise_bn_samples": 0,  # the seed evaluated with BN's running statistics
}

PRESETS: dict[str, dict[str, Any]] = {
    # The MNIST study (seeds/000), exactly its code's recipe.
    "mnist-study": {
        "name": "mnist-study",
        "description": "The MNIST study's recipe: 10 CNNs × cosine/plateau × 3 seeds, batch 64, AdamW 1e-3, "
        "warm-up, early stopping on validation loss, time to 99 %",
        "data": ["mnist"],
        "models": ["seed-mnist"],
        "schedules": ["cosine", "plateau"],
        "seeds": [0, 1, 2],
        "recipe": dict(SEED_MNIST_RECIPE),
        "targets": dict(TARGETS),
        "embed_max_points": 10_000,
        "deviations": list(SEED_MNIST_DEVIATIONS),
    },
    # The same study, 4-5× fewer optimiser steps: what a GPU user runs when the exact recipe is not
    # the point. Every difference from the seed's recipe is listed in the report.
    "mnist-study-fast": {
        "name": "mnist-study-fast",
        "description": "The MNIST study at batch 512: 10 CNNs × cosine/plateau × 3 seeds, lr scaled, early "
        "stopping on validation accuracy",
        "data": ["mnist"],
        "models": ["seed-mnist"],
        "schedules": ["cosine", "plateau"],
        "seeds": [0, 1, 2],
        "recipe": {
            **SEED_MNIST_RECIPE,
            "batch_size": 512,
            "lr": 4e-3,
            "weight_decay": 5e-4,
            "monitor": "val_accuracy",
            "precise_bn_samples": 2048,
        },
        "targets": dict(TARGETS),
        "embed_max_points": 10_000,
        "deviations": [
            Deviation(
                "Batch 512 instead of 64, with the learning rate 4e-3 instead of 1e-3 (linear scaling from 1e-3 "
                "at batch 128): 8× fewer optimiser steps per epoch.",
                "batch_size",
                "lr",
            ),
            Deviation("Weight decay 5e-4 instead of 1e-4.", "weight_decay"),
            Deviation(
                "Early stopping and the plateau rule watch validation accuracy instead of validation loss.", "monitor"
            ),
            Deviation(
                "BatchNorm statistics are recomputed on 2,048 training images before each evaluation (precise BN).",
                "precise_bn_samples",
            ),
            *SEED_MNIST_DEVIATIONS,
        ],
    },
    # The Caltech-256 study (seeds/001): VGG-19 from scratch against three ImageNet-pretrained models
    # fine-tuned; test top-1, mean per-class accuracy, size and inference time at batch 32.
    "caltech-transfer": {
        "name": "caltech-transfer",
        "description": "The Caltech-256 study: VGG-19 from scratch vs. fine-tuned Inception-ResNet-v2, MobileNetV2, "
        "EfficientNet-B4",
        "data": ["caltech256"],
        "models": ["seed-caltech"],
        "schedules": ["cosine"],
        "seeds": [0],
        "recipe": {
            "epochs": 15,
            "batch_size": 64,
            "lr": 1e-3,
            "optimizer": "adamw",
            "weight_decay": 1e-4,
            "warmup_epochs": 1,
            "label_smoothing": 0.1,
            "drop_rate": None,  # each architecture's own classifier dropout, as the Caltech study's models had
            "augment": "natural",
            "pretrained": "true",
            "finetune": "two-phase",
            "head_epochs": 2,
            "backbone_lr_scale": 0.1,
            "patience": 5,
            "target_accuracy": 0.85,
            "test_batch_size": 32,
        },
        "native_resolution": True,
        "model_recipes": {"vgg19": {"pretrained": None, "finetune": "full", "lr": 1e-3, "epochs": 30, "patience": 8}},
        "embed_max_points": 5_000,
    },
    # What `cnnbench run` does on a machine without a GPU: all 10 seed-mnist models, each tuned by the
    # same procedure (a learning-rate range test) and trained until its validation accuracy reaches
    # the target or the step cap, ranked by the cost of getting there (docs/studies.md).
    "quick": {
        "name": "quick",
        "description": "Quick CPU study: the 10 seed-mnist models, each given the same tuning procedure (a "
        "learning-rate range test) and trained until it reaches the target validation accuracy, ranked by "
        "the cost of getting there",
        "data": ["mnist-sample"],
        "models": ["seed-mnist"],
        "schedules": ["cosine"],
        "seeds": [0],
        "recipe": {
            "epochs": 30,
            "max_steps": QUICK_CAP,
            "batch_size": 64,
            "lr": "auto",
            "lr_find_steps": QUICK_LR_FIND_STEPS,
            "warmup_epochs": QUICK_WARMUP_EPOCHS,
            "optimizer": "adamw",
            "weight_decay": 1e-4,
            "drop_rate": 0.0,
            "label_smoothing": 0.1,
            "augment": "none",
            "monitor": "val_accuracy",
            "val_every_steps": QUICK_VAL_EVERY,
            "stop_at_target": True,
            "precise_bn_samples": 256,
            "eval_batch_size": 500,
            "max_val_samples": 1000,  # full MNIST: a validation pass every few steps stays cheap
        },
        "targets": dict(QUICK_TARGETS),
        "embed_max_points": 1_000,
        "workers": 1,
        "deviations": [
            Deviation(
                "Each model trains until its validation accuracy (checked every "
                f"{QUICK_VAL_EVERY} optimiser steps) reaches the target, at most {QUICK_CAP} steps, instead of "
                "up to 50 epochs with early stopping: the models are ranked by the steps, images and seconds "
                "to the target (as DAWNBench and MLPerf Training rank), not by accuracy after a fixed length.",
                "max_steps",
                "epochs",
                "stop_at_target",
                "val_every_steps",
                "time_budget_s",
            ),
            Deviation(
                "The learning rate of each model is picked by the same learning-rate range test "
                f"({QUICK_LR_FIND_STEPS} steps from 1e-5 to 1; docs/training.md) instead of the seed's 1e-3 for "
                "all: the best constant differs 10-30x between these architectures.",
                "lr",
                "lr_find_steps",
            ),
            Deviation(
                f"Cosine over the step cap after a {QUICK_WARMUP_EPOCHS:g}-epoch warm-up instead of a 5-epoch warm-up "
                "and cosine or plateau over 50 epochs: a run that stops at its target spends its steps near the "
                "picked rate, and a plateau rule needs several passes of patience to act.",
                "schedule",
                "warmup_epochs",
            ),
            Deviation(
                "No augmentation, no classifier dropout and label smoothing 0.1 instead of the seed's "
                "augmentation and dropout 0.5: at a few hundred steps these under-fit (docs/studies.md).",
                "augment",
                "drop_rate",
                "label_smoothing",
            ),
            Deviation(
                "BatchNorm statistics are recomputed on 256 training images before each evaluation (precise BN).",
                "precise_bn_samples",
            ),
            *SEED_MNIST_DEVIATIONS,
        ],
    },
}


def get_preset(name: str, key: str = "--preset") -> dict[str, Any]:
    """A copy of preset ``name``; ``key`` is where the name was given (the flag, or a study file's key)."""
    if name not in PRESETS:
        raise ConfigError(f"{key} {name!r}: expected one of {', '.join(PRESETS)}, or none")
    return copy.deepcopy(PRESETS[name])
