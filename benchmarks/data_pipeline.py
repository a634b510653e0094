"""Augmented training batches per second for one Fashion-MNIST epoch: cnnbench vs. torchvision + PIL.

cnnbench: uint8 split resident on the device, ``DeviceLoader`` + batched ``DigitsAugment``.
Baseline (how both seed studies loaded data): a torchvision-style ``Dataset`` that makes a PIL image
per sample, per-sample ``transforms`` with the same augmentation (RandomAffine rotation/translation/
scale, ColorJitter brightness/contrast, ToTensor, RandomErasing, Normalize), ``DataLoader`` with
worker processes, each batch moved to the device. Both time one full epoch from the first batch
request to the last batch on the device (synchronised), after a short warm-up for cnnbench;
the baseline's time includes starting its workers, as a real epoch does.

Also: batched per-sample augmentation alone, kornia vs. cnnbench's own affine_grid/grid_sample, when
kornia (the ``bench`` extra) is installed; without it that comparison is skipped with a line saying so.

    python benchmarks/data_pipeline.py                      # CPU here, GPU when there is one
    python benchmarks/data_pipeline.py --device cuda --workers 8 --json
    python benchmarks/data_pipeline.py --data-dir ~/data/fashion-mnist   # files not where cnnbench looks
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

import numpy as np
import torch

from benchio import add_data_flags, add_json_flag, data_config, emit_json, log
from cnnbench.data import DeviceLoader, build_augmentation, load_dataset
from cnnbench.utils.env import Timer, device_label, resolve_device, versions
from naive import AUG, PilDataset, pil_transform

KORNIA_MISSING = (
    "kornia is not installed (the bench extra: pip install -e '.[bench]'): augmentation-only comparison skipped"
)


def time_cnnbench(ds, device: torch.device, batch_size: int) -> dict:
    aug = build_augmentation("digits", **AUG)
    loader = DeviceLoader(
        ds.train, batch_size=batch_size, device=device, train=True, augment=aug, normalize=(ds.mean, ds.std), seed=0
    )
    loader.set_epoch(99)
    for i, _ in enumerate(loader):  # warm-up: allocator, kernels
        if i == 10:
            break
    loader.set_epoch(0)
    n = 0
    with Timer(device) as t:
        for _x, y in loader:
            n += len(y)
    return {"seconds": t.seconds, "batches": len(loader), "images": n, "placement": loader.placement}


def time_baseline(ds, device: torch.device, batch_size: int, workers: int, max_batches: int | None) -> dict:
    data = PilDataset(ds.train.images, ds.train.labels, pil_transform(ds.mean[0], ds.std[0]))
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=False,
    )
    total = len(loader)
    n = batches = 0
    with Timer(device) as t:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            n += len(y)
            batches += 1
            if max_batches and batches >= max_batches:
                break
    # A partial epoch (--baseline-batches) is scaled to a full one from its measured rate.
    scale = total / batches
    return {
        "seconds": t.seconds * scale,
        "measured_seconds": t.seconds,
        "batches": total,
        "measured_batches": batches,
        "images": n,
        "workers": workers,
        "extrapolated": batches < total,
    }


def time_augment_backends(device: torch.device, batch_size: int, repeats: int) -> dict:
    """ms per batch of (B, 1, 28, 28): kornia vs. cnnbench's DigitsAugment, both per-sample random."""
    import kornia.augmentation as K

    x = torch.randint(0, 256, (batch_size, 1, 28, 28), dtype=torch.uint8, device=device)
    kornia_aug = K.AugmentationSequential(
        K.RandomAffine(degrees=AUG["rotation"], translate=(AUG["translate"],) * 2, scale=AUG["scale"], p=1.0),
        K.RandomBrightness((1 - AUG["brightness"], 1 + AUG["brightness"]), p=1.0),
        K.RandomContrast((1 - AUG["contrast"], 1 + AUG["contrast"]), p=1.0),
        K.RandomErasing(scale=AUG["erase_scale"], ratio=AUG["erase_ratio"], value=0.0, p=AUG["erase_p"]),
    ).to(device)
    own = build_augmentation("digits", **AUG)
    gen = torch.Generator(device=device)
    single = device.type == "cpu"
    out = {}
    for name, fn in (("kornia", lambda: kornia_aug(x.float() / 255)), ("cnnbench", lambda: own(x, gen))):
        threads = torch.get_num_threads()
        if single:  # the loader runs small CPU batches on one thread; give kornia the same
            torch.set_num_threads(1)
        try:
            for _ in range(5):
                fn()
            times = []
            for _ in range(repeats):
                with Timer(device) as t:
                    fn()
                times.append(t.seconds)
        finally:
            torch.set_num_threads(threads)
        out[name] = {
            "ms_per_batch_median": 1000 * float(np.median(times)),
            "ms_per_batch_min": 1000 * float(np.min(times)),
        }
    out["speedup_cnnbench_over_kornia"] = out["kornia"]["ms_per_batch_median"] / out["cnnbench"]["ms_per_batch_median"]
    return out


def _want_kornia(flag: bool | None) -> bool:
    """``--kornia``: time it (an error now if it is missing); ``--no-kornia``: skip; neither: when installed."""
    present = importlib.util.find_spec("kornia") is not None
    if flag and not present:
        raise SystemExit(f"--kornia: {KORNIA_MISSING}")
    if flag is None and not present:
        log(KORNIA_MISSING)
    return present if flag is None else flag


def measure(args: argparse.Namespace) -> dict:
    """Both pipelines over one epoch (and the augmentation alone when kornia is timed)."""
    device = resolve_device(args.device)
    kornia = _want_kornia(args.kornia)
    t0 = time.perf_counter()
    ds = load_dataset(data_config(args))
    load_s = time.perf_counter() - t0
    result = {
        "benchmark": "data_pipeline",
        "data": args.data,
        "dataset": f"{args.data} train split ({len(ds.train):,} images, {'×'.join(map(str, ds.image_shape))})",
        "batch_size": args.batch_size,
        "device": device_label(device),
        "versions": versions(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "load_dataset_s": load_s,
        "cnnbench": time_cnnbench(ds, device, args.batch_size),
        "baseline": time_baseline(ds, device, args.batch_size, args.workers, args.baseline_batches),
    }
    c, b = result["cnnbench"], result["baseline"]
    for r in (c, b):
        r["batches_per_s"] = r["batches"] / r["seconds"]
        r["images_per_s"] = len(ds.train) / r["seconds"]
    result["speedup"] = c["batches_per_s"] / b["batches_per_s"]
    result["augment_only"] = time_augment_backends(device, args.batch_size, args.repeats) if kornia else None
    result["load_average_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return result


def print_result(result: dict, args: argparse.Namespace) -> None:
    v, c, b = result["versions"], result["cnnbench"], result["baseline"]
    print(
        f"device: {result['device']}; torch {v['torch']}, torchvision {v['torchvision']}, kornia {v['kornia']}, "
        f"python {v['python']}; torch threads {result['torch_threads']}, cores {result['cpu_count']}, "
        f"load average {result['load_average']:.2f} -> {result['load_average_after']:.2f}"
    )
    print(
        f"{result['dataset']}, batch {args.batch_size}, one epoch of augmented training batches "
        f"(load_dataset: {result['load_dataset_s']:.2f} s, not timed)"
    )
    print(
        f"  cnnbench DeviceLoader ({c['placement']}): {c['seconds']:8.2f} s  {c['batches_per_s']:9.1f} batches/s  "
        f"{c['images_per_s']:10.0f} images/s"
    )
    extra = f", {b['measured_batches']} batches timed and scaled" if b["extrapolated"] else ""
    print(
        f"  torchvision + PIL ({b['workers']} workers{extra}): {b['seconds']:8.2f} s  "
        f"{b['batches_per_s']:9.1f} batches/s  {b['images_per_s']:10.0f} images/s"
    )
    print(f"  speed-up: {result['speedup']:.1f}x")
    a = result["augment_only"]
    if a is not None:
        print(
            f"augmentation alone, (B={args.batch_size}, 1, 28, 28), median of {args.repeats}: "
            f"kornia {a['kornia']['ms_per_batch_median']:.2f} ms, "
            f"cnnbench {a['cnnbench']['ms_per_batch_median']:.2f} ms "
            f"({a['speedup_cnnbench_over_kornia']:.1f}x)"
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_flags(p)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="DataLoader worker processes")
    p.add_argument("--baseline-batches", type=int, help="time only this many baseline batches and scale to an epoch")
    p.add_argument(
        "--kornia",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also time kornia vs. cnnbench augmentation alone (default: when kornia is installed)",
    )
    p.add_argument("--repeats", type=int, default=50, help="augmentation-only repeats")
    add_json_flag(p)
    args = p.parse_args(argv)
    result = measure(args)
    emit_json(result, args.json)
    if args.json != "-":
        print_result(result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
