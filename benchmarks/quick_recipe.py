"""The quick preset's recipe at equal images: batch size and learning rate against test accuracy (issue [1/5]).

The default study trains each seed-mnist model on the same number of training images (40 steps of
batch 64 = 2,560 images). At that length a model is far from converged, so the number of optimiser
updates matters more than the batch: smaller batches give more updates for about the same compute.
This script trains every model under each candidate recipe, all at the same images, and prints test
accuracy (the 1,000 bundled test digits) and training seconds, so the preset can be chosen by
measurement. Accuracies depend only on (recipe, data, seed); the seconds depend on the machine's load.

    python benchmarks/quick_recipe.py                                  # every seed-mnist model, cosine
    python benchmarks/quick_recipe.py --models lenet5,alexnet --recipes 64:1e-3,16:1e-3 --schedule plateau
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
from pathlib import Path

from cnnbench.utils.threads import configure_cpu_threads

configure_cpu_threads(None)  # what the CLI does before torch loads

import torch  # noqa: E402

from cnnbench.data import load_dataset  # noqa: E402
from cnnbench.engine import TrainConfig, fit  # noqa: E402
from cnnbench.models import resolve_model_names  # noqa: E402
from cnnbench.study.presets import PRESETS  # noqa: E402
from cnnbench.utils.env import versions  # noqa: E402

IMAGES = 2_560  # the quick preset's work: 40 steps of batch 64


def parse_recipes(text: str) -> list[tuple[int, float]]:
    """``64:1e-3,16:1e-3`` -> [(64, 0.001), (16, 0.001)]."""
    out = []
    for item in text.split(","):
        batch, _, lr = item.partition(":")
        out.append((int(batch), float(lr)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="seed-mnist")
    p.add_argument("--recipes", default="64:1e-3,32:1e-3,16:1e-3,64:3e-3", help="batch:lr pairs")
    p.add_argument("--schedule", default="cosine", choices=("cosine", "plateau"))
    p.add_argument("--images", type=int, default=IMAGES, help="training images per run (steps = images / batch)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    recipe = dict(PRESETS["quick"]["recipe"])
    base = TrainConfig(model="lenet5", data="mnist-sample", schedule=args.schedule, seed=args.seed, progress=False)
    base = base.replace(**recipe)
    ds = load_dataset(base.data_config())
    print(
        f"# device cpu ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads, "
        f"load {os.getloadavg()[0]:.2f}; {versions()}"
    )
    print(f"# {args.images} training images per run, schedule {args.schedule}, seed {args.seed}")
    print("| model | batch | lr | steps | test acc | best val | train s |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for model in resolve_model_names(args.models):
            for i, (batch, lr) in enumerate(parse_recipes(args.recipes)):
                steps = max(1, args.images // batch)
                cfg = base.replace(model=model, batch_size=batch, lr=lr, max_steps=steps)
                out = Path(tmp) / f"{model}-{i}-{batch}-{lr}"  # a recipe may repeat (timing rounds)
                s = fit(cfg, out, dataset=ds, quiet=True)
                acc = s.get("test_accuracy")
                print(
                    f"| {model} | {batch} | {lr:g} | {steps} | {100 * acc:.1f} % | "
                    f"{100 * (s.get('best_val_accuracy') or 0):.1f} % | {s['train_time_s']:.1f} |",
                    flush=True,
                )
    print(f"# load {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
