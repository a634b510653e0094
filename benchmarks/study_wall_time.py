"""Wall time of a whole study, against the same study done the way the MNIST study did it.

GPU (the goal on one H100: ≤ 10 minutes): ``mnist-study-fast`` (``--preset``) on Fashion-MNIST — 10 seed-mnist models ×
cosine/plateau × 3 seeds — through ``cnnbench run``, timed end to end (training, evaluation, speed,
feature analysis, report). The baseline is the same 60 runs done sequentially with the naive pipeline
(benchmarks/naive.py: Dataset + DataLoader + PIL transforms, batch 64): its per-epoch time is measured
for every model and multiplied by the epochs cnnbench's runs took — an extrapolation, said so in the
output. ``--naive-accuracy-models`` trains the naive recipe to completion for a few models, so the
accuracies can be compared (goal: cnnbench's no worse).

CPU: the default ``cnnbench run`` (the quick preset: each model tuned by the same range test and trained
to its target), timed end to end, with each run's steps to the target, test accuracy, whether it
reached 90 %, and the load average.

    python benchmarks/study_wall_time.py --device cuda --naive-accuracy-models lenet5,resnet18
    python benchmarks/study_wall_time.py --device cpu            # the default study on this machine
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from cnnbench.data import DataConfig, load_dataset
from cnnbench.models import create_model
from cnnbench.report import update_results
from cnnbench.study import default_study_values, resolve_spec, run_study
from cnnbench.utils.env import device_label, resolve_device, versions
from naive import DEFAULT_FASHION, naive_epoch_seconds


def _load(values) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def run_timed(spec, out: Path) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    run_study(spec, out, log=lambda m: print(m, file=sys.stderr), on_results=update_results)
    wall = time.perf_counter() - t0
    with (out / "results.csv").open() as f:
        return wall, list(csv.DictReader(f))


def naive_accuracy(name: str, ds, device: torch.device, epochs: int) -> float:
    """Train the naive recipe (batch 64, Adam 1e-3, PIL augmentation) and return its test accuracy."""
    from naive import naive_loader

    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=1, input_size=28).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = naive_loader(ds, 64, 8, device)
    for _ in range(epochs):
        model.train()
        for x, y in loader:
            loss = torch.nn.functional.cross_entropy(model(x.to(device)), y.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    x = (torch.from_numpy(ds.test.images).float() / 255 - ds.mean[0]) / ds.std[0]
    y = torch.from_numpy(ds.test.labels)
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), 1000):
            correct += (model(x[i : i + 1000].to(device)).argmax(1).cpu() == y[i : i + 1000]).sum().item()
    return correct / len(y)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--data-dir", default=str(DEFAULT_FASHION))
    p.add_argument("--out", default=None, help="study directory (default: a temporary one)")
    p.add_argument("--naive-batches", type=int, default=200)
    p.add_argument("--naive-accuracy-models", default="", help="train the naive recipe fully for these models")
    p.add_argument("--naive-epochs", type=int, default=15)
    p.add_argument("--preset", default="mnist-study-fast", help="GPU: the study preset to time")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    tmp = tempfile.TemporaryDirectory()
    out = Path(args.out or tmp.name) / "study"
    result = {"benchmark": "study_wall_time", "device": device_label(device), "versions": versions()}
    result["load_before"] = os.getloadavg()
    if device.type == "cpu":
        preset, extra, note = default_study_values()
        spec = resolve_spec(preset, None, extra)
        result["study"] = f"the default `cnnbench run`: {note}"
        wall, rows = run_timed(spec, out)
        result.update(wall_s=wall, runs=len(rows), accuracy={r["run_id"]: r["test_accuracy"] for r in rows})
        result["per_run"] = [
            {"model": r["model"], "schedule": r["schedule"], "test_accuracy": float(r["test_accuracy"] or "nan"),
             "seconds": float(r["train_time_s"] or "nan"), "steps_to_target": r.get("steps_to_target") or None,
             "status": r["status"]}
            for r in rows
        ]  # fmt: skip
    else:
        spec = resolve_spec(args.preset, None, {"data": ["fashion-mnist"], "data_dir": args.data_dir})
        result["study"] = f"{args.preset} on Fashion-MNIST: 10 models × cosine/plateau × 3 seeds"
        wall, rows = run_timed(spec, out)
        result.update(wall_s=wall, runs=len(rows))
        ds = load_dataset(DataConfig("fashion-mnist", data_dir=args.data_dir, download=False))
        epochs = defaultdict(list)
        accuracy = defaultdict(list)
        for r in rows:
            epochs[r["model"]].append(int(r["epochs_run"] or 0))
            accuracy[r["model"]].append(float(r["test_accuracy"] or "nan"))
        naive_total = 0.0
        per_model = {}
        for name, eps in epochs.items():
            naive = naive_epoch_seconds(
                create_model(name, num_classes=10, in_chans=1, input_size=28),
                ds,
                device,
                workers=8,
                max_batches=args.naive_batches,
            )
            naive_total += naive["epoch_s"] * sum(eps)
            per_model[name] = {
                "naive_epoch_s": naive["epoch_s"],
                "epochs": eps,
                "cnnbench_test_accuracy_mean": statistics.mean(accuracy[name]),
            }
        result.update(naive_extrapolated_s=naive_total, speedup=naive_total / wall, per_model=per_model)
        for name in filter(None, args.naive_accuracy_models.split(",")):
            per_model[name]["naive_test_accuracy"] = naive_accuracy(name, ds, device, args.naive_epochs)
    result["load_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return 0
    v = result["versions"]
    print(f"device: {result['device']}; torch {v['torch']}, torchvision {v['torchvision']}")
    print(f"load average (1/5/15 min): before {_load(result['load_before'])}, after {_load(result['load_after'])}")
    print(
        f"{result['study']}: {result['runs']} runs, wall time {result['wall_s']:.0f} s "
        f"({result['wall_s'] / 60:.1f} min; goal ≤ 10 min on a quiet 2-core CPU)"
    )
    if "per_run" in result:
        print("| model | schedule | status | steps to target | test accuracy | training s | ≥ 90 % |")
        print("|---|---|---|---|---|---|---|")
        for r in result["per_run"]:
            ok = "yes" if r["test_accuracy"] >= 0.90 else "no"
            steps = r["steps_to_target"] or "not reached"
            print(
                f"| {r['model']} | {r['schedule']} | {r['status']} | {steps} | {r['test_accuracy']:.4f} | "
                f"{r['seconds']:.1f} | {ok} |"
            )
        reached = sum(r["test_accuracy"] >= 0.90 for r in result["per_run"])
        every = "met" if reached == len(result["per_run"]) else "not met"
        print(f"{reached} of {len(result['per_run'])} runs reached 90 % test accuracy (goal: every run: {every})")
    if "naive_extrapolated_s" in result:
        print(
            f"naive pipeline, sequential, batch 64 (extrapolated from measured epochs × the same epoch counts): "
            f"{result['naive_extrapolated_s'] / 60:.1f} min → {result['speedup']:.1f}× faster"
        )
        for name, m in result["per_model"].items():
            extra = f", naive recipe {m['naive_test_accuracy']:.4f}" if "naive_test_accuracy" in m else ""
            print(
                f"  {name:22s} naive epoch {m['naive_epoch_s']:.2f} s; cnnbench test acc "
                f"{m['cnnbench_test_accuracy_mean']:.4f}{extra}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
