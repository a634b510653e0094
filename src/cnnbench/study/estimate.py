"""The planned work of a study and a rough wall-time estimate, printed before any run starts.

The work (optimiser steps and images of every run) follows from the recipe and the dataset alone.
The estimate scales it by training costs measured once per model on the reference machine of
docs/studies.md (2 x86 cores); it is a hint for planning, never part of a result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Milliseconds to train on one 28×28 image (forward + backward + AdamW, batch 64, 2 threads,
# channels-last) on the reference 2-core CPU, timed 2026-11-30 (docs/studies.md has the step times).
# With the overheads below the default study is estimated at 10 min; it took 9.7 min quiet.
REFERENCE_MS_PER_IMAGE = {
    "lenet5": 0.14,
    "alexnet": 7.2,
    "vgg11": 20.4,
    "googlenet": 8.1,
    "resnet18": 13.5,
    "squeezenet1_1": 1.9,
    "shufflenet_v2_x1_0": 3.8,
    "mobilenet_v3_small": 4.0,
    "mnasnet1_0": 11.1,
    "efficientnet_b0": 13.0,
}
EVAL_FRACTION = 0.33  # an image evaluated costs about a third of one trained
RUN_OVERHEAD_S = 1.5  # model build, summary, checkpoints, test pass set-up
MODEL_OVERHEAD_S = 8.0  # per model: speed measurement and feature analysis


@dataclass(frozen=True)
class RunWork:
    run_id: str
    model: str
    steps: int  # optimiser steps planned (early stopping or the target may end sooner)
    images: int  # training images seen: steps × batch
    evaluated: int  # validation images over all evaluations, plus the test split
    input_size: int
    at_most: bool = False  # the run stops at its target: ``steps`` is its cap
    tuning_steps: int = 0  # --lr auto: the range test's steps (shared by the runs of one model and seed)


def run_work(run_id: str, cfg, n_train: int, n_val: int, n_test: int, input_size: int) -> RunWork | None:
    """The work of one run; None for an equal-time run, whose steps the machine decides."""
    if cfg.time_budget_s is not None:
        return None
    per_epoch = math.ceil(n_train / cfg.batch_size)
    steps = cfg.epochs * per_epoch if cfg.max_steps is None else min(cfg.epochs * per_epoch, cfg.max_steps)
    evaluations = math.ceil(steps / (cfg.val_every_steps or per_epoch))
    tuning = cfg.lr_find_steps if cfg.lr_auto else 0
    images = steps * cfg.batch_size
    stops = bool(cfg.stop_at_target and cfg.target_accuracy)
    return RunWork(run_id, cfg.model, steps, images, evaluations * n_val + n_test, input_size, stops, tuning)


def estimate_seconds(work: list[RunWork]) -> float | None:
    """Seconds on the reference CPU, or None when a model has no reference cost."""
    total = 0.0
    for w in work:
        ms = REFERENCE_MS_PER_IMAGE.get(w.model)
        if ms is None:
            return None
        scale = (w.input_size / 28) ** 2
        tuning = w.tuning_steps * w.images / max(1, w.steps)  # its images: the same batch
        total += ms * scale * (w.images + tuning + EVAL_FRACTION * w.evaluated) / 1000 + RUN_OVERHEAD_S
    return total + MODEL_OVERHEAD_S * len({w.model for w in work})


def describe(work: list[RunWork], cpu: bool) -> str:
    """One line: the runs, their steps and images, and (on a CPU) the estimated time."""
    steps = sorted({w.steps for w in work})
    step_text = f"{steps[0]:,}" if len(steps) == 1 else f"{steps[0]:,}–{steps[-1]:,}"
    images = sum(w.images for w in work)
    if any(w.at_most for w in work):
        step_text = "at most " + step_text
    text = f"planned work: {len(work)} run(s) × {step_text} optimiser steps ({images:,} training images in all"
    tuning = sorted({w.tuning_steps for w in work if w.tuning_steps})
    text += f", with a {tuning[-1]}-step learning-rate range test per model and seed)" if tuning else ")"
    seconds = estimate_seconds(work) if cpu else None
    if seconds is not None and any(w.at_most for w in work):
        # the cap is a bound: the default study's runs stop at their target after 60-170 of their 300 steps
        text += (
            f"; runs stop at their target, so at most {_minutes(seconds)} on a 2-core CPU like the "
            "reference one, usually far less (docs/studies.md)"
        )
    elif seconds is not None:
        text += f"; {_minutes(seconds)} on a 2-core CPU like the reference one (docs/studies.md)"
    return text


def _minutes(seconds: float) -> str:
    """``about 12 min``, or ``under a minute`` (a one-model study's "about 0 min" read as nothing to do)."""
    return f"about {max(1, round(seconds / 60))} min" if seconds >= 60 else "under a minute"
