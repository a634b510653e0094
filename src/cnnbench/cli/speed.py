"""cnnbench speed: throughput, latency and size of models without training."""

from __future__ import annotations

import argparse

from cnnbench.cli.common import add_json_flag, add_threads_flag, emit_json, note, parse_input_shape, print_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models", "-m", required=True, help="model names and groups, comma-separated (e.g. seed-mnist)"
    )
    parser.add_argument("--input", default="3x224x224", help="input shape CxHxW (default: 3x224x224)")
    parser.add_argument("--num-classes", type=int, default=10, help="classifier outputs (default: 10)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (GPU throughput needs cuda)")
    parser.add_argument("--batch-size", type=int, default=256, help="GPU throughput batch size (default: 256)")
    parser.add_argument("--onnx", action="store_true", help="also export to ONNX and time ONNX Runtime on the CPU")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model for GPU throughput")
    parser.add_argument("--out", default=None, help="also write <out>/<model>.json per model")
    add_json_flag(parser)
    add_threads_flag(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnbench.bench import measure_model, onnx_unavailable
    from cnnbench.models import resolve_model_names
    from cnnbench.utils.env import device_info
    from cnnbench.utils.io import atomic_write_json

    shape = parse_input_shape(args.input)
    names = resolve_model_names(args.models)
    onnx_missing = onnx_unavailable() if args.onnx else None
    if onnx_missing:  # said once, before the work; each model's notes keep it too
        note(f"--onnx: {onnx_missing}", markup=False)
    results = []
    for name in names:
        if not args.json:
            note(f"measuring {name} at {args.input} ...")
        r = measure_model(
            name,
            shape,
            num_classes=args.num_classes,
            device=args.device,
            gpu_batch_size=args.batch_size,
            onnx=args.onnx,
            compile=args.compile,
        )
        results.append(r.to_dict())
        for line in r.notes:
            if line != onnx_missing:
                note(f"note: {name}: {line}", markup=False)
        if args.out:
            atomic_write_json(Path(args.out) / f"{name}.json", r.to_dict())
    if args.json:
        emit_json({"input": list(shape), "device": device_info(args.device), "models": results})
        return 0
    _print_speed_table(args, results)
    return 0


def _print_speed_table(args: argparse.Namespace, results: list[dict]) -> None:
    from cnnbench.utils.env import device_info

    cols = ["model", "params", "size MB", "GFLOPs", "GPU img/s", "CPU ms p50", "CPU ms p90", "ONNX ms p50"]
    rows = [
        [
            r["model"],
            f"{r['params']:,}",
            f"{r['size_mb']:.2f}",
            f"{r['flops'] / 1e9:.3f}",
            f"{r['gpu_throughput']:,.0f}" if r["gpu_throughput"] else "—",
            f"{r['cpu_latency_ms']:.2f}",
            f"{r['cpu_latency_p90_ms']:.2f}",
            f"{r['onnx_latency_ms']:.2f}" if r["onnx_latency_ms"] else "—",
        ]
        for r in results
    ]
    print_table(f"speed at {args.input} on {device_info(args.device)['name']}", cols, rows)
    print(_cpu_conditions(results))


def _cpu_conditions(results: list[dict]) -> str:
    """How the CPU latencies were taken: batch, repeats, threads and the load average, which decides
    whether they can be compared with another machine's (a busy CPU inflates them many times)."""
    import os

    repeats = sorted({r["cpu_latency_repeats"] for r in results if r.get("cpu_latency_repeats")})
    threads = sorted({r["cpu_threads"] for r in results if r.get("cpu_threads")})
    loads = [r["load_average"] for r in results if r.get("load_average") is not None]
    cores = os.cpu_count() or 1
    text = (
        f"CPU latency: batch 1, fp32, p50/p90 over {'–'.join(map(str, repeats)) or '?'} repeats after warm-up; "
        f"{'/'.join(map(str, threads)) or '?'} torch thread(s) on {cores} core(s); "
    )
    if not loads:
        return text + "load average unknown on this OS"
    text += f"1-minute load average {min(loads):.2f}" + (f"–{max(loads):.2f}" if max(loads) > min(loads) else "")
    if max(loads) >= 0.5 * cores:
        text += " (a busy machine: expect slower and noisier latencies than on an idle one)"
    return text
