"""Wall time to 90 % Fashion-MNIST validation accuracy: cnnbench against the seed-style pipeline (issue [4/5]).

Both sides train the same model (``cnnbench.models.create_model``, same seed, so the same initial
weights) with the same recipe: batch 64, AdamW lr 1e-3, weight decay 1e-4, dropout 0.5, constant
learning rate, the same 80/20 train/validation split of the Fashion-MNIST training set, and a full
validation pass after every epoch. They stop at the first validation pass at or above the target.

- **cnnbench**: ``cnnbench.engine.fit`` with ``stop_at_target`` (device-resident data, batched
  augmentation, channels-last, metrics kept on the device). The time is the whole ``fit`` call: run
  directory, model build, training, validation passes, checkpoints, a 512-image test pass, files.
- **seed-style**: ``benchmarks/naive.py`` — a torchvision-style ``Dataset`` that builds a PIL image
  per sample, per-sample transforms, a ``DataLoader`` with worker processes, ``.item()`` every step;
  validation through a ``DataLoader`` as well. The time runs from building the loader to the end of
  the validation pass that reaches the target.

Models and the two pipelines alternate within each round; the load average is printed before and
after. ``--augment`` adds the MNIST study's augmentation to both (PIL transforms on the seed side,
cnnbench's ``digits`` on the other); without it both train on the plain images.

``--steps N`` measures per-step time instead, for models whose epoch takes many minutes on a CPU
(resnet18 at 28×28 trains ~70 images/s on 2 cores: 11 minutes per Fashion-MNIST epoch): each side
trains N steps of the same recipe; cnnbench's time is its ``train_time_s`` (all N steps, the first
ones included), the seed side's the N steps after 5 untimed ones. When both need the same number
of epochs, this ratio is the time-to-accuracy ratio less the validation passes.

    python benchmarks/time_to_accuracy.py                         # lenet5, resnet18, mobilenet_v3_small
    python benchmarks/time_to_accuracy.py --models resnet18,mobilenet_v3_small --steps 60
    python benchmarks/time_to_accuracy.py --models lenet5 --rounds 2 --max-epochs 20
    python benchmarks/time_to_accuracy.py --steps 40 --json result.json     # the table's figures as JSON too
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cnnbench.utils.threads import configure_cpu_threads

configure_cpu_threads(None)  # what the CLI does before torch loads; both pipelines share this process

import torch  # noqa: E402

from benchio import add_data_flags, add_json_flag, emit_json, log  # noqa: E402
from cnnbench.data import load_dataset  # noqa: E402
from cnnbench.engine import TrainConfig, fit  # noqa: E402
from cnnbench.models import create_model  # noqa: E402
from cnnbench.utils.env import versions  # noqa: E402
from cnnbench.utils.threads import usable_cores  # noqa: E402
from naive import PilDataset, pil_transform  # noqa: E402

RECIPE = {"batch_size": 64, "optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "drop_rate": 0.5}
GOALS = {"lenet5": 5.0, "resnet18": 2.0, "mobilenet_v3_small": 2.0}


def cnnbench_run(model: str, ds, cfg: TrainConfig, out: Path) -> dict:
    t0 = time.perf_counter()
    summary = fit(cfg.replace(model=model), out, dataset=ds, quiet=True)
    wall = time.perf_counter() - t0
    return {"seconds": wall, "epochs": summary["epochs_to_target"], "best": summary.get("best_val_accuracy")}


def cnnbench_steps(model: str, ds, cfg: TrainConfig, out: Path, steps: int) -> dict:
    cfg = cfg.replace(model=model, max_steps=steps, epochs=1, target_accuracy=None, stop_at_target=False)
    summary = fit(cfg, out, dataset=ds, quiet=True)
    return {"seconds": summary["train_time_s"] / summary["steps"], "epochs": None, "best": None}


def _plain_transform(mean: float, std: float):
    from torchvision import transforms as T

    return T.Compose([T.ToTensor(), T.Normalize((mean,), (std,))])


def naive_run(model_name: str, ds, args) -> dict:
    """The seed's loop: PIL per sample, DataLoader workers, ``.item()`` per step, eval each epoch."""
    torch.manual_seed(args.seed)
    model = create_model(model_name, num_classes=ds.num_classes, in_chans=1, input_size=28, drop_rate=0.5)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": RECIPE["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=RECIPE["lr"],
    )
    mean, std = ds.mean[0], ds.std[0]
    t0 = time.perf_counter()
    train_tf = pil_transform(mean, std) if args.augment else _plain_transform(mean, std)
    loader_kw = {"num_workers": args.workers, "persistent_workers": args.workers > 0}
    train = torch.utils.data.DataLoader(
        PilDataset(ds.train.images, ds.train.labels, train_tf),
        batch_size=RECIPE["batch_size"],
        shuffle=True,
        **loader_kw,
    )
    val = torch.utils.data.DataLoader(
        PilDataset(ds.val.images, ds.val.labels, _plain_transform(mean, std)), batch_size=512, **loader_kw
    )
    best = 0.0
    if args.steps:
        return {"seconds": _naive_steps(model, opt, train, args.steps), "epochs": None, "best": None}
    for epoch in range(1, args.max_epochs + 1):
        model.train()
        for x, y in train:
            _naive_step(model, opt, x, y)
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val:
                correct += (model(x).argmax(1) == y).sum().item()
        acc = correct / len(ds.val.labels)
        best = max(best, acc)
        if acc >= args.target:
            return {"seconds": time.perf_counter() - t0, "epochs": epoch, "best": best}
    return {"seconds": time.perf_counter() - t0, "epochs": None, "best": best}


def _naive_step(model, opt, x, y) -> float:
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()  # the studies' per-step host sync for the progress display


def _naive_steps(model, opt, train, steps: int) -> float:
    """Seconds per step over ``steps`` steps after 5 untimed ones (workers starting, allocation)."""
    model.train()
    batches = iter(train)
    for _ in range(5):
        _naive_step(model, opt, *next(batches))
    t0 = time.perf_counter()
    for _ in range(steps):
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(train)
            x, y = next(batches)
        _naive_step(model, opt, x, y)
    return (time.perf_counter() - t0) / steps


def _cell(r: list[dict]) -> str:
    reached = [x for x in r if x["epochs"] is not None]
    if len(reached) < len(r):
        return f"not reached ({max(x['best'] or 0 for x in r):.1%} best)"
    secs = statistics.median(x["seconds"] for x in r)
    epochs = "/".join(str(x["epochs"]) for x in r)
    return f"{secs:,.1f} s ({epochs} ep)"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_flags(parser)
    parser.add_argument("--models", default="lenet5,resnet18,mobilenet_v3_small")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--augment", action="store_true", help="the MNIST study's augmentation on both sides")
    parser.add_argument("--workers", type=int, default=2, help="seed side: DataLoader worker processes")
    parser.add_argument("--steps", type=int, default=None, help="per-step time over N steps instead (see above)")
    parser.add_argument("--seed", type=int, default=0)
    add_json_flag(parser)
    return parser.parse_args(argv)


def measure(args: argparse.Namespace, ds, cfg: TrainConfig) -> dict[tuple[str, str], list[dict]]:
    """Per (model, side), one result per round; models and sides alternate."""
    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for i, model in enumerate(args.models.split(",")):
                sides = ("cnnbench", "seed-style") if (r + i) % 2 == 0 else ("seed-style", "cnnbench")
                for side in sides:
                    if side == "cnnbench" and args.steps:
                        res = cnnbench_steps(model, ds, cfg, Path(tmp) / f"{model}-{r}", args.steps)
                    elif side == "cnnbench":
                        res = cnnbench_run(model, ds, cfg, Path(tmp) / f"{model}-{r}")
                    else:
                        res = naive_run(model, ds, args)
                    results.setdefault((model, side), []).append(res)
                    if args.steps:
                        reached = f"per step over {args.steps} steps"
                    elif res["epochs"]:
                        reached = f"epoch {res['epochs']}"
                    else:
                        reached = f"not reached (best {res['best']:.1%})"
                    log(f"  round {r + 1} {model:18s} {side:10s} {res['seconds']:8.3f} s  {reached}")
    return results


def table_rows(results: dict, models: list[str], per_step: bool) -> list[dict]:
    """Per model: cnnbench and seed-style seconds (per step, or to the target), the ratio and the goal."""
    rows = []
    for model in models:
        ours, theirs = results[(model, "cnnbench")], results[(model, "seed-style")]
        ratio = statistics.median(x["seconds"] for x in theirs) / statistics.median(x["seconds"] for x in ours)
        both = per_step or all(x["epochs"] for x in ours + theirs)
        goal = GOALS.get(model)
        rows.append({
            "model": model, "measure": "per step" if per_step else "to target",
            "cnnbench_s": statistics.median(x["seconds"] for x in ours),
            "seed_style_s": statistics.median(x["seconds"] for x in theirs),
            "ratio": ratio, "both_reached": both, "goal_ratio": goal,
            "met": None if goal is None or not both else ratio >= goal,
            "cnnbench": ours, "seed_style": theirs,
        })  # fmt: skip
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    models = args.models.split(",")
    cfg = TrainConfig(
        data=args.data, data_dir=args.data_dir, val_fraction=0.2, epochs=args.max_epochs,
        schedule="none", augment="digits" if args.augment else "none", target_accuracy=args.target,
        stop_at_target=True, precise_bn_samples=0, max_test_samples=512, seed=args.seed, progress=False, **RECIPE,
    )  # fmt: skip
    ds = load_dataset(cfg.data_config())
    load_before = os.getloadavg()
    results = measure(args, ds, cfg)
    v = versions()
    result = {
        "benchmark": "time_to_accuracy",
        "device": f"CPU {platform.processor() or platform.machine()}, {usable_cores()} usable cores, no GPU used",
        "data": args.data,
        "versions": {"python": platform.python_version(), "torch": v.get("torch"), "torchvision": v.get("torchvision")},
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "train_images": len(ds.train.labels),
        "val_images": len(ds.val.labels),
        "steps": args.steps,
        "rows": table_rows(results, models, bool(args.steps)),
    }
    emit_json(result, args.json)
    if args.json != "-":
        print_result(result, args, results)
    return 0


def print_result(result: dict, args: argparse.Namespace, results: dict) -> None:
    v = result["versions"]
    print()
    print(f"device: {result['device']}")
    print(f"versions: python {v['python']}, torch {v['torch']}, torchvision {v['torchvision']}")
    print(f"load average (1/5/15 min): before {result['load_before']}, after {result['load_after']}")
    print(
        f"{args.data}, {result['train_images']:,} train / {result['val_images']:,} val images; batch 64, AdamW 1e-3, "
        f"wd 1e-4, dropout 0.5, constant lr, {'the MNIST study augmentation' if args.augment else 'no augmentation'}; "
        f"target {args.target:.0%} validation accuracy; seed-style DataLoader with {args.workers} workers; "
        f"{args.rounds} round(s), median"
    )
    print()
    if args.steps:
        print("| model | cnnbench s/step | seed-style s/step | ratio (per step) | goal (time to accuracy) |")
        print("|---|---|---|---|---|")
        for r in result["rows"]:
            goal_text = f"≥ {r['goal_ratio']:g}×" if r["goal_ratio"] else "—"
            cells = f"{r['cnnbench_s']:.3f} | {r['seed_style_s']:.3f} | {r['ratio']:.2f}×"
            print(f"| {r['model']} | {cells} | {goal_text} |")
        return
    print("| model | cnnbench | seed-style | ratio | goal |")
    print("|---|---|---|---|---|")
    for r in result["rows"]:
        verdict = "—" if r["met"] is None else ("met" if r["met"] else "not met")
        goal_text = "—" if r["goal_ratio"] is None else f"≥ {r['goal_ratio']:g}× {verdict}"
        note = "" if r["both_reached"] else " (not both reached)"
        ours, theirs = _cell(results[(r["model"], "cnnbench")]), _cell(results[(r["model"], "seed-style")])
        print(f"| {r['model']} | {ours} | {theirs} | {r['ratio']:.2f}×{note} | {goal_text} |")


if __name__ == "__main__":
    sys.exit(main())
