"""Training images/s: cnnbench's engine vs. a bare PyTorch loop, and vs. the studies' naive pipeline.

1. Engine overhead (the goal: ≤ 10 % on the CPU). ``cnnbench.engine.fit`` and a bare loop train the
   same model on the same device-resident Fashion-MNIST tensors, same batch, AdamW, no augmentation,
   ``--epochs`` epochs; both report the median epoch after the first (which pays for allocation and
   warm-up). The engine's time is its own ``epoch_time_s`` (training only, device-synchronised). The
   two alternate for ``--rounds`` rounds and the medians over rounds are compared: on a shared
   2-core machine one round of ~50 LeNet steps moves by ±15 % from run to run.
2. Against the naive pipeline (the goal on a GPU: ≥ 10× per epoch for every seed-mnist model): the
   engine with its device defaults and augmentation vs. torchvision Dataset + DataLoader + PIL
   transforms at batch 64 (benchmarks/naive.py), epoch time extrapolated from the timed batches.

    python benchmarks/train_throughput.py                                   # CPU: lenet5, resnet18
    python benchmarks/train_throughput.py --device cuda --models seed-mnist --naive --batch-size 512

Fashion-MNIST is looked for where cnnbench looks (``$CNNBENCH_DATA/fashion-mnist``, ...; ``--data-dir``).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchio import add_data_flags, add_json_flag, data_config, emit_json
from cnnbench.data import load_dataset
from cnnbench.engine import TrainConfig, fit
from cnnbench.models import create_model, resolve_model_names
from cnnbench.utils.env import device_label, resolve_device, synchronize, versions
from naive import naive_epoch_seconds


def bare_loop_epoch_s(
    model_name: str, ds, device: torch.device, batch_size: int, lr: float, seed: int, epochs: int
) -> float:
    """The simplest correct loop over the same tensors: shuffle, slice, forward, backward, step."""
    torch.manual_seed(seed)
    model = create_model(model_name, num_classes=ds.num_classes, in_chans=1, input_size=28).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    mean, std = ds.mean[0], ds.std[0]
    x_all = ((torch.from_numpy(ds.train.images).to(device).float() / 255) - mean) / std  # (N, 1, 28, 28)
    y_all = torch.from_numpy(ds.train.labels).to(device)
    n = len(y_all)
    times = []
    for _epoch in range(epochs):
        perm = torch.randperm(n, device=device)
        synchronize(device)
        start = time.perf_counter()
        for i in range(0, n, batch_size):
            idx = perm[i : i + batch_size]
            loss = torch.nn.functional.cross_entropy(model(x_all[idx]), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def engine_epoch_s(model_name: str, args, device: str, samples: int, epochs: int, **recipe) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            model=model_name,
            data=args.data,
            data_dir=args.data_dir,
            epochs=epochs,
            device=device,
            max_train_samples=samples,
            max_val_samples=1000,
            max_test_samples=1000,
            progress=False,
            **recipe,
        )
        summary = fit(cfg, Path(tmp) / "run", quiet=True)
        with (Path(tmp) / "run" / "metrics.csv").open() as f:
            rows = list(csv.DictReader(f))
    return statistics.median(float(r["epoch_time_s"]) for r in rows[1:]), summary


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_flags(p)
    p.add_argument("--models", default="lenet5,resnet18")
    p.add_argument("--device", default="auto")
    p.add_argument("--samples", type=int, default=None, help="train images per epoch (default: 6000 on CPU, all)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=4, help="epochs per side; the median after the first is used")
    p.add_argument("--rounds", type=int, default=3, help="alternating bare/engine rounds; medians compared")
    p.add_argument("--naive", action="store_true", help="also time the naive pipeline (batch 64, PIL, workers)")
    p.add_argument("--naive-batches", type=int, default=50, help="timed naive batches, scaled to an epoch")
    p.add_argument("--workers", type=int, default=4, help="naive DataLoader workers")
    add_json_flag(p)
    return p.parse_args(argv)


def measure_model(name: str, ds, device: torch.device, args: argparse.Namespace, samples: int | None) -> dict:
    """Bare loop and engine alternating for ``--rounds``; with ``--naive`` the engine's defaults against naive."""
    lr = 1e-3
    bares, engines = [], []
    for _ in range(args.rounds):
        bares.append(bare_loop_epoch_s(name, ds, device, args.batch_size, lr, seed=0, epochs=args.epochs))
        recipe = {"batch_size": args.batch_size, "lr": lr, "augment": "none", "amp": "none", "cuda_graphs": "off"}
        engines.append(engine_epoch_s(name, args, str(device), len(ds.train), args.epochs, **recipe)[0])
    bare, eng = statistics.median(bares), statistics.median(engines)
    row = {
        "model": name,
        "images": len(ds.train),
        "bare_img_s": len(ds.train) / bare,
        "engine_img_s": len(ds.train) / eng,
        "engine_overhead_pct": (eng / bare - 1) * 100,
        "bare_epoch_s_rounds": bares,
        "engine_epoch_s_rounds": engines,
    }
    if args.naive:
        n = samples or len(ds.train)
        fast, summary = engine_epoch_s(name, args, str(device), n, args.epochs, batch_size=args.batch_size, lr=lr)
        model = create_model(name, num_classes=ds.num_classes, in_chans=1, input_size=28)
        naive = naive_epoch_seconds(model, ds, device, workers=args.workers, max_batches=args.naive_batches)
        row.update(
            engine_full_epoch_s=fast,
            engine_full_notes=summary["notes"],
            naive_epoch_s=naive["epoch_s"],
            naive_timed_batches=naive["timed_batches"],
            speedup_vs_naive=naive["epoch_s"] / fast,
        )
    return row


def main(argv=None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    samples = args.samples or (6000 if device.type == "cpu" else None)
    ds = load_dataset(data_config(args, max_train_samples=samples))
    rows = []
    for name in resolve_model_names(args.models):
        rows.append(measure_model(name, ds, device, args, samples))
        print(f"{name}: {rows[-1]}", file=sys.stderr)
    result = {
        "benchmark": "train_throughput",
        "device": device_label(device),
        "data": args.data,
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "rounds": args.rounds,
        "rows": rows,
    }
    emit_json(result, args.json)
    if args.json != "-":
        print_result(result, args)
    return 0


def print_result(result: dict, args: argparse.Namespace) -> None:
    v, rows = result["versions"], result["rows"]
    print(
        f"device: {result['device']}; torch {v['torch']}, torchvision {v['torchvision']}, python {v['python']}; "
        f"threads {result['torch_threads']}, load average {result['load_average']:.2f}"
    )
    print(
        f"{args.data}, {rows[0]['images']:,} training images per epoch, batch {args.batch_size}, fp32, "
        f"no augmentation; median of epochs 2-{args.epochs}"
    )
    print(f"{'model':22s} {'bare img/s':>11s} {'engine img/s':>13s} {'overhead':>9s}", end="")
    print(f" {'engine epoch':>13s} {'naive epoch':>12s} {'ratio':>7s}" if args.naive else "")
    for r in rows:
        print(
            f"{r['model']:22s} {r['bare_img_s']:11.0f} {r['engine_img_s']:13.0f} {r['engine_overhead_pct']:8.1f}%",
            end="",
        )
        if args.naive:
            print(f" {r['engine_full_epoch_s']:12.2f}s {r['naive_epoch_s']:11.2f}s {r['speedup_vs_naive']:6.1f}x")
        else:
            print()


if __name__ == "__main__":
    sys.exit(main())
