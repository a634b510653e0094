"""Named studies: the two reference studies and the quick default for a CPU.

A preset is the lowest layer of a study definition; a study file and flags override it key by key.
"""

from __future__ import annotations

import copy
from typing import Any

from cnnbench.errors import ConfigError

# Target accuracy per dataset: the MNIST study's 99 % on MNIST; the others are levels the seed-mnist
# models reach comfortably under the same recipe, so time-to-target stays comparable.
TARGETS = {"mnist": 0.99, "mnist-sample": 0.97, "fashion-mnist": 0.90, "cifar10": 0.80, "synthetic": 0.95}

PRESETS: dict[str, dict[str, Any]] = {
    # The MNIST study (seeds/000): 10 CNNs at 28×28, augmentation, 5-epoch warm-up from 1e-6, cosine
    # and plateau (÷10, at most 3 times), early stopping, ≤ 50 epochs, time to 99 %. Batch 512 with
    # the lr scaled by the linear rule from 1e-3 at 128 — same recipe, 4× fewer steps.
    "mnist-study": {
        "name": "mnist-study",
        "description": "The MNIST study: 10 CNNs × cosine/plateau × 3 seeds, warm-up, early stopping, time to target",
        "data": ["mnist"],
        "models": ["seed-mnist"],
        "schedules": ["cosine", "plateau"],
        "seeds": [0, 1, 2],
        "recipe": {
            "epochs": 50,
            "batch_size": 512,
            "lr": 4e-3,
            "optimizer": "adamw",
            "weight_decay": 5e-4,
            "warmup_epochs": 5,
            "warmup_start_lr": 1e-6,
            "plateau_factor": 0.1,
            "plateau_patience": 3,
            "plateau_max_reductions": 3,
            "patience": 7,
            "drop_rate": 0.5,
            "augment": "digits",
            "target_accuracy": 0.99,
        },
        "targets": dict(TARGETS),
        "embed_max_points": 10_000,
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
    # What `cnnbench run` does on a machine without a GPU: all 10 seed-mnist models, both schedules,
    # an equal time budget per run, on the bundled 5,000 MNIST digits (or full MNIST when present).
    "quick": {
        "name": "quick",
        "description": "Quick CPU study: the 10 seed-mnist models × cosine/plateau, an equal time budget per run",
        "data": ["mnist-sample"],
        "models": ["seed-mnist"],
        "schedules": ["cosine", "plateau"],
        "seeds": [0],
        "recipe": {
            "epochs": 30,
            "batch_size": 64,
            "lr": 2e-3,
            "optimizer": "adamw",
            "weight_decay": 5e-4,
            "warmup_epochs": 0.5,  # at most a fifth of each run's budgeted steps
            "plateau_patience": 1,
            "plateau_factor": 0.1,
            "plateau_max_reductions": 3,
            "drop_rate": 0.5,
            "augment": "digits",
            "time_budget_s": 6.0,
            "max_train_samples": 2000,
            "precise_bn_samples": 256,
            "eval_batch_size": 500,
        },
        "targets": dict(TARGETS),
        "embed_max_points": 1_000,
        "workers": 1,
    },
}


def get_preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ConfigError(f"--preset {name!r}: expected one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
