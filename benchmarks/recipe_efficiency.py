"""Optimiser steps and seconds to 90 % validation accuracy under three recipes (issue [1/5]).

For each model and seed, on the bundled MNIST digits (mnist-sample: 3,600 training, 400 validation
images), three recipes train until their validation accuracy first reaches the target, validated
every ``--val-every`` optimiser steps:

- **(a) seed**: the MNIST study's recipe exactly (``--preset mnist-study``): batch 64, AdamW 1e-3,
  weight decay 1e-4, dropout 0.5, 5 warm-up epochs from 1e-6, cosine over 50 epochs, the study's
  augmentation, BN's running statistics. Only its early stopping is off (with validation every few
  steps its patience of 7 would count passes, not epochs; the target ends the run long before).
- **(b) quick before**: the quick preset before the range test (cnnbench ≤ 2026-12-07): batch 64,
  AdamW 1e-3, weight decay 1e-4, dropout 0.5, an 11-step warm-up, then the lr held (the 40-step run's
  cosine would reach 0 at step 40; docs/studies.md measured its steps this way), no augmentation,
  precise BN on 256 images; at most ``--cap`` steps.
- **(c) quick**: today's ``quick`` preset as ``cnnbench run`` trains it: the learning-rate range test
  (its steps and seconds are counted as the tuning cost), one-cycle over its step cap, no
  augmentation, dropout 0, label smoothing 0.1.

Steps and images to the target depend only on (recipe, data, seed); seconds are training time
(evaluation excluded; for (c) plus the range test) and depend on the machine and its load, so the
three recipes of one model alternate, in an order that rotates from model to model, and the load
average is printed before and after. Goals: (c) ≤ 0.5 × (a) steps for every model; (c)'s seconds over
the ten models ≤ 0.6 × (b)'s.

    python benchmarks/recipe_efficiency.py                                # 10 models × seeds 0, 1
    python benchmarks/recipe_efficiency.py --models lenet5,alexnet --seeds 0 --recipes c --out results/
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from cnnbench.utils.threads import configure_cpu_threads

configure_cpu_threads(None)  # what the CLI does before torch loads

import torch  # noqa: E402

from cnnbench.data import load_dataset  # noqa: E402
from cnnbench.engine import TrainConfig, fit  # noqa: E402
from cnnbench.models import resolve_model_names  # noqa: E402
from cnnbench.study.presets import PRESETS, SEED_MNIST_RECIPE  # noqa: E402
from cnnbench.utils.env import versions  # noqa: E402

TARGET = 0.90
RECIPES = ("a", "b", "c")
NAMES = {"a": "seed", "b": "quick before", "c": "quick"}


def recipe(name: str, cap: int, val_every: int) -> dict:
    """The TrainConfig values of recipe ``name`` (a, b or c), stopping at ``TARGET``."""
    stop = {"target_accuracy": TARGET, "stop_at_target": True, "val_every_steps": val_every}
    if name == "a":
        return {**SEED_MNIST_RECIPE, "schedule": "cosine", "patience": None, **stop}
    if name == "b":
        return {
            "epochs": 30,
            "max_steps": cap,
            "batch_size": 64,
            "lr": 1e-3,
            "optimizer": "adamw",
            "weight_decay": 1e-4,
            "drop_rate": 0.5,
            "warmup_epochs": 0.2,
            "warmup_start_lr": 1e-6,
            "schedule": "none",
            "augment": "none",
            "label_smoothing": 0.0,
            "precise_bn_samples": 256,
            "eval_batch_size": 500,
            **stop,
        }
    quick = dict(PRESETS["quick"]["recipe"])
    return {**quick, "schedule": PRESETS["quick"]["schedules"][0], **stop, "val_every_steps": quick["val_every_steps"]}


def measure(model: str, name: str, seed: int, args, ds, tmp: Path) -> dict:
    cfg = TrainConfig(
        model=model, data="mnist-sample", seed=seed, progress=False, **recipe(name, args.cap, args.val_every)
    )
    out = tmp / f"{model}-{name}-{seed}"
    s = fit(cfg, out, dataset=ds, quiet=True)
    tune = (s.get("lr_find") or {}).get("seconds") or 0.0
    tune_steps = (s.get("lr_find") or {}).get("steps_taken") or 0
    return {
        "model": model,
        "recipe": name,
        "seed": seed,
        "steps": s.get("steps_to_target"),
        "images": s.get("images_to_target"),
        "train_s": s.get("time_to_target_s"),
        "tune_s": tune,
        "tune_steps": tune_steps,
        "lr": s.get("lr"),
        "steps_run": s.get("steps"),
        "test_accuracy": s.get("test_accuracy"),
        "status": s.get("status"),
    }


def _cell(r: dict | None, cap_note: str) -> str:
    if r is None:
        return ""
    if r["steps"] is None:
        return f"> {r['steps_run']} {cap_note}"
    seconds = r["train_s"] + r["tune_s"]
    tune = f" (+{r['tune_steps']} tuning)" if r["tune_steps"] else ""
    return f"{r['steps']}{tune} / {seconds:.1f} s"


def summarise(results: list[dict], models: list[str], seeds: list[int], recipes: list[str]) -> list[str]:
    """The table and the goal lines."""
    lines = [
        "| model | seed | " + " | ".join(f"({k}) {NAMES[k]}: steps / s" for k in recipes) + " | (c)/(a) steps |",
        "|---|---|" + "---|" * len(recipes) + "---|",
    ]
    by = {(r["model"], r["recipe"], r["seed"]): r for r in results}
    worst = 0.0
    for model in models:
        for seed in seeds:
            cells = [_cell(by.get((model, k, seed)), "(not reached)") for k in recipes]
            a, c = by.get((model, "a", seed)), by.get((model, "c", seed))
            ratio = ""
            if a and c and c["steps"] is not None:
                a_steps = a["steps"] if a["steps"] is not None else a["steps_run"]  # a lower bound when unreached
                value = c["steps"] / a_steps
                worst = max(worst, value)
                ratio = f"{value:.2f}" + ("" if a["steps"] is not None else " (≤)")
            lines.append(f"| {model} | {seed} | " + " | ".join(cells) + f" | {ratio} |")
    for seed in seeds:
        totals = {}
        for k in ("b", "c"):
            rs = [by.get((m, k, seed)) for m in models]
            if all(r is not None and r["steps"] is not None for r in rs):
                totals[k] = sum(r["train_s"] + r["tune_s"] for r in rs)
        if len(totals) == 2:
            ratio = totals["c"] / totals["b"]
            verdict = "met" if ratio <= 0.6 else "not met"
            lines.append(
                f"seed {seed}: (c) {totals['c']:.0f} s vs (b) {totals['b']:.0f} s over {len(models)} models: "
                f"{ratio:.2f}x (goal ≤ 0.6x: {verdict})"
            )
    if worst:
        verdict = "met" if worst <= 0.5 else "not met"
        lines.append(f"largest (c)/(a) step ratio: {worst:.2f} (goal ≤ 0.5 for every model: {verdict})")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="seed-mnist")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--recipes", default="a,b,c", help="which of a (seed), b (quick before), c (quick)")
    p.add_argument("--cap", type=int, default=300, help="(b): at most this many steps")
    p.add_argument("--val-every", type=int, default=10, help="(a), (b): steps between validation passes")
    p.add_argument("--out", default=None, help="also write the results as JSON into this directory")
    args = p.parse_args(argv)
    models = resolve_model_names(args.models)
    seeds = [int(s) for s in args.seeds.split(",")]
    recipes = [r for r in args.recipes.split(",") if r]
    bad = [r for r in recipes if r not in RECIPES]
    if bad:
        p.error(f"--recipes: {bad[0]!r} is not one of a, b, c")
    ds = load_dataset(TrainConfig(data="mnist-sample").data_config())
    load_before = os.getloadavg()
    print(
        f"# device cpu ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads, "
        f"load {load_before[0]:.2f}; {versions()}"
    )
    print(f"# mnist-sample, target {TARGET:.0%} validation accuracy; date {time.strftime('%Y-%m-%d %H:%M')}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, model in enumerate(models):
            order = recipes[i % len(recipes) :] + recipes[: i % len(recipes)]  # rotate: no recipe always first
            for seed in seeds:
                for name in order:
                    r = measure(model, name, seed, args, ds, Path(tmp))
                    results.append(r)
                    print(json.dumps(r), file=sys.stderr, flush=True)
    lines = summarise(results, models, seeds, recipes)
    print("\n".join(lines))
    print(f"# load {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        record = {"benchmark": "recipe_efficiency", "results": results, "lines": lines, "versions": versions()}
        (out / "recipe_efficiency.json").write_text(json.dumps(record, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
