"""One epoch over a JPEG tree: decode-once cache + DeviceLoader vs. torchvision ImageFolder + DataLoader (PIL).

A synthetic Caltech-256-sized tree (30,607 JPEGs by default, random sizes around 300×200, 257
classes) is generated once under --root. Then, each reported separately:

1. cache-building pass: decode every JPEG once into the memory-mapped uint8 cache (parallel);
   a second call shows the cache-hit cost that every later run pays instead;
2. loader alone, one epoch: cnnbench (uint8 on the device, batched random-resized-crop 224, flip,
   colour jitter, normalise) vs. ImageFolder + DataLoader with the same PIL transforms, for each
   --workers count;
3. with --train-step: the same epochs with a mobilenet_v2 training step at 224 (SGD, channels-last,
   bf16 autocast on a GPU), and the same loop over pre-generated device tensors (data loading costs
   nothing there), limited to --train-batches batches per loop.

Goals (GPU): loader alone ≥ 20× ImageFolder+DataLoader; training epoch within 10 % of the
pre-generated-tensor loop. On a small CPU run it reduced (the size is printed):

    python benchmarks/imagefolder_pipeline.py --images 600 --workers 2 --train-batches 3 --batch-size 16
    python benchmarks/imagefolder_pipeline.py --device cuda --workers 8,16 --json      # full size

At full size the tree is 30,607 JPEGs (about 1 GB) and the decode-once cache 5.6 GB, both kept under
``--root`` (default: the temporary folder) for the next run; ``benchmarks/run_all.py`` runs a bounded
size in a folder it deletes afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from benchio import add_json_flag, emit_json
from cnnbench.data import ArraySplit, DeviceLoader, build_augmentation
from cnnbench.data.cache import decode_folder, default_workers
from cnnbench.data.imagefolder import scan_folder
from cnnbench.data.stats import channel_stats
from cnnbench.utils.env import Timer, device_label, resolve_device, synchronize, versions

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet, for both pipelines


def _write_images(job: tuple[str, int, int, int]) -> int:
    """Write ``count`` JPEGs of one class (smooth colour field + texture + noise, like a photo's entropy)."""
    from PIL import Image

    directory, cls, count, seed = job
    rng = np.random.default_rng(seed)
    Path(directory).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        w, h = int(rng.integers(240, 361)), int(rng.integers(160, 241))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = rng.uniform(0, 255, 3)
        slope = rng.uniform(-0.6, 0.6, (3, 2))
        img = base[:, None, None] + slope[:, 0, None, None] * xx + slope[:, 1, None, None] * yy
        img += 40 * np.sin(xx / rng.uniform(4, 20) + cls) * np.cos(yy / rng.uniform(4, 20))
        img += rng.normal(0, 12, img.shape)
        arr = np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 0)
        Image.fromarray(arr).save(Path(directory) / f"{cls + 1:03d}_{i + 1:04d}.jpg", quality=90)
    return count


def make_tree(root: Path, images: int, classes: int, workers: int) -> float:
    """Generate the JPEG tree unless a complete one is already there; return seconds spent."""
    marker = root / ".complete"
    if marker.is_file() and marker.read_text().strip() == f"{images} {classes}":
        return 0.0
    start = time.perf_counter()
    per = [images // classes + (1 if c < images % classes else 0) for c in range(classes)]
    jobs = [(str(root / f"{c + 1:03d}.class{c + 1}"), c, n, c) for c, n in enumerate(per)]
    with ProcessPoolExecutor(workers) as pool:
        written = sum(pool.map(_write_images, jobs))
    marker.write_text(f"{written} {classes}")
    return time.perf_counter() - start


def _imagefolder_loader(root: Path, batch_size: int, workers: int, size: int, device: torch.device):
    from torchvision import datasets
    from torchvision import transforms as T

    tf = T.Compose(
        [
            T.RandomResizedCrop(size),
            T.RandomHorizontalFlip(),
            T.ColorJitter(0.4, 0.4, 0.4),
            T.ToTensor(),
            T.Normalize(MEAN, STD),
        ]
    )
    data = datasets.ImageFolder(str(root), transform=tf)
    return torch.utils.data.DataLoader(
        data,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=False,
    )


def _model(num_classes: int, device: torch.device):
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2(num_classes=num_classes).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _run(batches, device: torch.device, limit: int | None, step=None) -> dict:
    """Time iterating ``batches`` (moving each to the device, optionally training on it)."""
    n = count = 0
    with Timer(device) as t:
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if step is not None:
                step(x, y)
            n += len(y)
            count += 1
            if limit and count >= limit:
                break
    return {"seconds": t.seconds, "batches": count, "images": n, "images_per_s": n / t.seconds}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=30607, help="JPEGs in the synthetic tree (Caltech-256: 30,607)")
    p.add_argument("--classes", type=int, default=257)
    p.add_argument("--root", help="where the tree is generated (default: $TMPDIR/cnnbench-jpeg-tree-N)")
    p.add_argument("--cache-dir", help="decode-once cache (default: next to the tree)")
    p.add_argument("--cache-size", type=int, default=256, help="decode-once side in pixels")
    p.add_argument("--input", type=int, default=224, help="training input size")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", default="8,16", help="DataLoader worker counts to compare, comma-separated")
    p.add_argument("--decode-workers", type=int, help="processes for the cache-building pass (default: all cores)")
    p.add_argument(
        "--train-step",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time epochs with a mobilenet_v2 training step",
    )
    p.add_argument("--train-batches", type=int, help="batches per training loop (default: a full epoch)")
    p.add_argument("--loader-batches", type=int, help="batches per loader-alone ImageFolder epoch (default: all)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    add_json_flag(p)
    return p.parse_args(argv)


def build_cache(args, root: Path, cache_dir: Path, res: dict, log) -> ArraySplit:
    """Generate the tree (once), time the cache-building pass and a cache hit; the whole tree as one split."""
    res["generate_tree_s"] = make_tree(root, args.images, args.classes, args.decode_workers or default_workers())
    log(f"tree {root}: generated in {res['generate_tree_s']:.1f} s (0 = already there; not part of the benchmark)")
    scan = scan_folder(root)
    build = decode_folder(scan, args.cache_size, "RGB", cache_dir, "bench", args.decode_workers)
    hit = decode_folder(scan, args.cache_size, "RGB", cache_dir, "bench", args.decode_workers)
    res["cache_build_s"] = build.seconds if build.built else None
    res["cache_hit_s"] = hit.seconds
    res["cache_images_per_s"] = len(build.files) / build.seconds if build.built else None
    n_dec = args.decode_workers or default_workers()
    built = (
        f"{build.seconds:.1f} s ({len(build.files) / build.seconds:.0f} images/s, {n_dec} workers)"
        if build.built
        else "already built (delete the cache directory to time it)"
    )
    log(f"cache-building pass: {built}; cache hit: {hit.seconds:.2f} s")
    t0 = time.perf_counter()
    split = ArraySplit(np.ascontiguousarray(hit.images), hit.labels)  # the whole tree, one epoch = every image
    channel_stats(split.images)
    res["split_to_memory_s"] = time.perf_counter() - t0
    return split


def time_loaders(args, root: Path, ours: DeviceLoader, workers: list[int], device, res: dict, log) -> None:
    """One epoch of each loader alone: cnnbench's, then ImageFolder + DataLoader for each worker count."""
    ours.set_epoch(99)
    for i, _ in enumerate(ours):  # warm-up
        if i == 3:
            break
    ours.set_epoch(0)
    res["loader"] = {"cnnbench": _run(ours, device, None)}
    log(
        f"loader alone, one epoch: cnnbench ({ours.placement}) {res['loader']['cnnbench']['seconds']:.2f} s "
        f"= {res['loader']['cnnbench']['images_per_s']:.0f} images/s"
    )
    for w in workers:
        r = _run(_imagefolder_loader(root, args.batch_size, w, args.input, device), device, args.loader_batches)
        res["loader"][f"imagefolder_{w}w"] = r
        r["speedup_cnnbench"] = res["loader"]["cnnbench"]["images_per_s"] / r["images_per_s"]
        log(
            f"loader alone: ImageFolder+DataLoader {w} workers {r['images_per_s']:.0f} images/s "
            f"({r['batches']} batches) -> cnnbench {r['speedup_cnnbench']:.1f}x"
        )


def time_training(args, root: Path, ours: DeviceLoader, workers: list[int], device, res: dict, log) -> None:
    """The same loaders feeding a mobilenet_v2 training step, against pre-generated device tensors."""
    step = _model(args.classes, device)
    limit = args.train_batches
    x0 = torch.randn(args.batch_size, 3, args.input, args.input, device=device)
    y0 = torch.randint(0, args.classes, (args.batch_size,), device=device)
    for _ in range(3):  # warm-up (cudnn autotune, allocator)
        step(x0, y0)
    synchronize(device)
    # Pre-generated device tensors: 8 distinct batches cycled, so loading costs nothing.
    fixed = [(torch.randn_like(x0), torch.randint_like(y0, args.classes)) for _ in range(8)]
    n_batches = limit or len(ours)
    res["train"] = {"pregenerated": _run((fixed[k % 8] for k in range(n_batches)), device, None, step)}
    ours.set_epoch(1)
    res["train"]["cnnbench"] = _run(ours, device, limit, step)
    for w in workers:
        res["train"][f"imagefolder_{w}w"] = _run(
            _imagefolder_loader(root, args.batch_size, w, args.input, device), device, limit, step
        )
    base = res["train"]["pregenerated"]["images_per_s"]
    for name, r in res["train"].items():
        r["overhead_vs_pregenerated"] = base / r["images_per_s"] - 1
        log(
            f"with mobilenet_v2 training step: {name:>16}: {r['images_per_s']:8.1f} images/s over "
            f"{r['batches']} batches ({100 * r['overhead_vs_pregenerated']:+.1f} % time vs. pre-generated)"
        )


def main(argv=None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    workers = [int(w) for w in str(args.workers).split(",") if w.strip()]
    root = Path(args.root or Path(tempfile.gettempdir()) / f"cnnbench-jpeg-tree-{args.images}")
    cache_dir = Path(args.cache_dir or root.parent / f"{root.name}-cache")
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json == "-" else print
    res: dict = {
        "benchmark": "imagefolder_pipeline",
        "size": f"{args.images:,} JPEGs in {args.classes} classes, cache {args.cache_size}px, input {args.input}, "
        f"batch {args.batch_size}",
        "images": args.images,
        "device": device_label(device),
        "versions": versions(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
    }
    log(
        f"{res['size']}; device {res['device']}; torch {res['versions']['torch']}, "
        f"torchvision {res['versions']['torchvision']}; {res['cpu_count']} cores, load {res['load_average']:.2f}"
    )
    split = build_cache(args, root, cache_dir, res, log)
    aug = build_augmentation("natural", output_size=args.input)
    ours = DeviceLoader(
        split, batch_size=args.batch_size, device=device, train=True, augment=aug,
        normalize=(MEAN, STD), output_size=args.input, drop_last=True,
    )  # fmt: skip
    res["placement"] = ours.placement
    time_loaders(args, root, ours, workers, device, res, log)
    if args.train_step:
        time_training(args, root, ours, workers, device, res, log)
    res["load_average_after"] = os.getloadavg()[0]
    emit_json(res, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
