"""GPU speed goals (issue "GPU speed"): every number measured against its baseline in the same run.

1. ``epochs``: per-epoch training time of every seed-mnist model on Fashion-MNIST, cnnbench's fast
   path (device-resident data, batched augmentation, bf16, channels-last, the whole step in a CUDA
   graph, large batch with the linear lr rule) vs. the naive pipeline both studies used
   (benchmarks/naive.py: Dataset + DataLoader + PIL transforms, batch 64, Adam, fp32). Goal ≥ 20×.
2. ``target``: training seconds until resnet18 reaches 93 % validation accuracy on Fashion-MNIST
   (goal ≤ 5 s), with its final test accuracy; and the fastest seed-mnist model's time to 90 %.
3. ``inference``: ``cnnbench speed``'s GPU throughput (eval, batch 256, bf16, channels-last) vs. timm
   eager with the same protocol, same GPU, same run; ``--compile`` adds cnnbench's compiled number
   (compiling takes about a minute per model: ``--inference-models`` picks a few).
   (The whole-study goal is benchmarks/study_wall_time.py.)

Compilation / capture time is reported separately and counted in the wall times.

    python benchmarks/gpu_speed.py --device cuda                       # everything, on a GPU
    python benchmarks/gpu_speed.py --device cuda --parts inference --inference-models resnet18 --compile
    python benchmarks/gpu_speed.py --device cpu --parts epochs --models lenet5 --naive-batches 20  # smoke test

Fashion-MNIST is looked for where cnnbench looks (``$CNNBENCH_DATA/fashion-mnist``, ...; ``--data-dir``).
"""

from __future__ import annotations

import argparse
import csv
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
from cnnbench.utils.env import device_label, resolve_device, versions
from naive import naive_epoch_seconds

INFERENCE = [
    ("resnet18", 224),
    ("mobilenet_v2", 224),
    ("efficientnet_b0", 224),
    ("vgg19", 224),
    ("inception_resnet_v2", 299),
    ("efficientnet_b4", 380),
]


def fast_recipe(device: torch.device, batch: int) -> dict:
    """The fast path: everything on the device; lr scaled linearly from 1e-3 at batch 128."""
    gpu = device.type == "cuda"
    return {
        "batch_size": batch,
        "lr": 1e-3 * batch / 128,
        "optimizer": "adamw",
        "warmup_epochs": 1,
        "augment": "digits",
        "amp": "bf16" if gpu else "none",
        "cuda_graphs": "on" if gpu else "off",
        "channels_last": True,
        "eval_batch_size": 2048 if gpu else 512,
        "test_batch_size": 1024 if gpu else 256,
        "precise_bn_samples": 4096,
    }


def run_fit(model: str, args, device: torch.device, epochs: int, **recipe) -> tuple[dict, list[dict], float]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TrainConfig(
            model=model,
            data=args.data,
            data_dir=args.data_dir,
            epochs=epochs,
            device=str(device),
            progress=False,
            **recipe,
        )
        t0 = time.perf_counter()
        summary = fit(cfg, Path(tmp) / "run", quiet=True)
        wall = time.perf_counter() - t0
        with (Path(tmp) / "run" / "metrics.csv").open() as f:
            rows = list(csv.DictReader(f))
    return summary, rows, wall


def part_epochs(args, device, ds) -> list[dict]:
    out = []
    for name in resolve_model_names(args.models):
        summary, rows, wall = run_fit(name, args, device, args.epochs, **fast_recipe(device, args.batch_size))
        epoch_s = (
            statistics.median(float(r["epoch_time_s"]) for r in rows[1:])
            if len(rows) > 1
            else float(rows[0]["epoch_time_s"])
        )
        capture = next((n for n in summary["notes"] if n.startswith("CUDA graph")), None)
        naive = naive_epoch_seconds(
            create_model(name, num_classes=10, in_chans=1, input_size=28),
            ds,
            device,
            workers=args.workers,
            max_batches=args.naive_batches,
        )
        row = {
            "model": name,
            "naive_epoch_s": naive["epoch_s"],
            "naive_timed_batches": naive["timed_batches"],
            "cnnbench_epoch_s": epoch_s,
            "first_epoch_s": float(rows[0]["epoch_time_s"]),
            "speedup": naive["epoch_s"] / epoch_s,
            "capture": capture,
            "test_accuracy": summary["test_accuracy"],
            "fit_wall_s": wall,
        }
        print(f"  {name}: {row}", file=sys.stderr)
        out.append(row)
    return out


def part_target(args, device) -> dict:
    recipe = fast_recipe(device, args.batch_size) | {"schedule": "onecycle", "warmup_epochs": 0}
    summary, rows, wall = run_fit(args.target_model, args, device, args.target_epochs, target_accuracy=0.93, **recipe)
    result = {
        "model": args.target_model,
        "resnet18_93": {
            k: summary[k]
            for k in ("time_to_target_s", "epochs_to_target", "test_accuracy", "train_time_s", "epochs_run")
        }
        | {"fit_wall_s": wall},
    }
    fastest = None
    for name in resolve_model_names(args.models):
        s, _, _ = run_fit(name, args, device, args.target_epochs, target_accuracy=0.90, **recipe)
        if s["time_to_target_s"] is not None and (fastest is None or s["time_to_target_s"] < fastest[1]):
            fastest = (name, s["time_to_target_s"], s["epochs_to_target"])
    result["fastest_to_90"] = fastest
    return result


def _throughput(model, size: int, device, batch: int, iters: int, backend: str | None = None) -> float:
    """Images/s with cnnbench.bench's protocol (eval, bf16 on a GPU, channels-last, warm-up, synced);
    compiled with ``torch.compile(backend=backend)`` when a backend is named."""
    from cnnbench.bench import gpu_throughput

    model = model.to(device).eval()
    if backend:
        model = torch.compile(model, backend=backend)
    return gpu_throughput(model, (3, size, size), device, batch_size=batch, iters=iters)[0]


def part_inference(args, device) -> list[dict]:
    import timm

    out = []
    wanted = set(args.inference_models.split(","))
    for name, size in INFERENCE:
        if name not in wanted:
            continue
        size = min(size, args.max_size)
        row = {"model": name, "input": size}
        try:
            ours = create_model(name, num_classes=1000, in_chans=3, input_size=size)
            timm_name = {"mobilenet_v2": "mobilenetv2_100", "vgg19": "vgg19"}.get(name, name)
            theirs = timm.create_model(timm_name, pretrained=False)
            row["cnnbench_img_s"] = _throughput(ours, size, device, args.infer_batch, args.iters)
            row["timm_eager_img_s"] = _throughput(theirs, size, device, args.infer_batch, args.iters)
            if args.compile:
                t0 = time.perf_counter()
                row["cnnbench_compiled_img_s"] = _throughput(
                    ours, size, device, args.infer_batch, args.iters, args.compile_backend
                )
                row["compile_and_measure_s"] = time.perf_counter() - t0
            row["ratio_vs_timm"] = row["cnnbench_img_s"] / row["timm_eager_img_s"]
        except Exception as exc:  # one model's failure (e.g. a reduced --max-size below its minimum) is a row
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        print(f"  {row}", file=sys.stderr)
        out.append(row)
    return out


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_flags(p)
    p.add_argument("--device", default="auto")
    p.add_argument("--parts", default="epochs,target,inference")
    p.add_argument("--models", default="seed-mnist")
    p.add_argument("--batch-size", type=int, default=1024, help="fast-path training batch (lr scaled linearly)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per model for the epoch timing (median of 2..)")
    p.add_argument("--target-epochs", type=int, default=8)
    p.add_argument("--target-model", default="resnet18", help="the model trained to 93 %% (the goal names resnet18)")
    p.add_argument("--workers", type=int, default=8, help="naive DataLoader workers")
    p.add_argument("--naive-batches", type=int, default=200, help="naive batches timed, scaled to an epoch")
    p.add_argument("--infer-batch", type=int, default=256)
    p.add_argument("--inference-models", default=",".join(n for n, _ in INFERENCE), help="comma-separated")
    p.add_argument("--max-size", type=int, default=380, help="cap inference input sizes (CPU smoke tests)")
    p.add_argument("--iters", type=int, default=30)
    p.add_argument("--compile", action="store_true", help="also torch.compile for inference")
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend (eager: a quick smoke test)")
    add_json_flag(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    parts = set(args.parts.split(","))
    result = {
        "benchmark": "gpu_speed",
        "device": device_label(device),
        "data": args.data,
        "versions": versions(),
        "dtype": "bf16" if device.type == "cuda" else "fp32",
        "batch_size": args.batch_size,
        "infer_batch": args.infer_batch,
    }
    if "epochs" in parts:
        result["epochs"] = part_epochs(args, device, load_dataset(data_config(args)))
    if "target" in parts:
        result["target"] = part_target(args, device)
    if "inference" in parts:
        result["inference"] = part_inference(args, device)
    emit_json(result, args.json)
    if args.json != "-":
        print_result(result, args, device)
    return 0


def print_result(result: dict, args: argparse.Namespace, device: torch.device) -> None:
    v = result["versions"]
    print(
        f"device: {result['device']}; torch {v['torch']}, torchvision {v['torchvision']}, timm {v['timm']}; "
        f"dtype {result['dtype']}"
    )
    if "epochs" in result:
        print(
            f"\nper-epoch training time, {args.data}: cnnbench (batch {args.batch_size}, "
            f"{'CUDA graph' if device.type == 'cuda' else 'eager'}) vs naive (batch 64, {args.workers} workers)"
        )
        print(f"{'model':22s} {'naive s':>9s} {'cnnbench s':>11s} {'speed-up':>9s} {'test acc':>9s}  capture")
        for r in result["epochs"]:
            print(
                f"{r['model']:22s} {r['naive_epoch_s']:9.2f} {r['cnnbench_epoch_s']:11.3f} {r['speedup']:8.1f}x "
                f"{r['test_accuracy']:9.4f}  {r['capture'] or '-'}"
            )
    if "target" in result:
        t = result["target"]["resnet18_93"]
        print(
            f"\n{result['target']['model']} to 93 % val accuracy: {t['time_to_target_s']} s training "
            f"(epoch {t['epochs_to_target']}), final test accuracy {t['test_accuracy']:.4f}"
        )
        print(f"fastest of {args.models} to 90 %: {result['target']['fastest_to_90']}")
    if "inference" in result:
        _print_inference(result, args)


def _print_inference(result: dict, args: argparse.Namespace) -> None:
    print(f"\ninference throughput, batch {args.infer_batch}, {result['dtype']}, channels-last (img/s)")
    for r in result["inference"]:
        if "error" in r:
            print(f"{r['model']:22s} {r['input']:4d}px {r['error']}")
            continue
        extra = f"  compiled {r['cnnbench_compiled_img_s']:,.0f}" if "cnnbench_compiled_img_s" in r else ""
        print(
            f"{r['model']:22s} {r['input']:4d}px cnnbench {r['cnnbench_img_s']:10,.0f}  "
            f"timm eager {r['timm_eager_img_s']:10,.0f}  ratio {r['ratio_vs_timm']:.2f}{extra}"
        )


if __name__ == "__main__":
    sys.exit(main())
