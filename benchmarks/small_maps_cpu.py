"""CPU training step: convolutions padded explicitly on maps smaller than their kernel, and AdamW's foreach update.

Two engine choices for the CPU, each measured against the stock path in the same process,
alternating (``--rounds`` rounds of ``--steps`` timed steps each, after 2 untimed ones; median of
the rounds), on random 1×28×28 batches of 64 (the MNIST study's batch), channels-last as
``cnnbench train`` builds it:

1. ``models/cpu_conv.py``: oneDNN's direct weight-gradient kernels refuse inputs smaller than the
   kernel (the 2×2 and 4×4 maps of the seed-mnist models at 28×28) and fall back to GEMMs (one per
   channel for depthwise layers); padding explicitly keeps the fast kernel. Stock ``nn.Conv2d`` vs
   ``pad_small_maps``, for every model with such a layer (VGG-11, SqueezeNet and LeNet-5 have none).
2. ``engine/optim.py``: AdamW as PyTorch's per-parameter loop (its CPU default) vs ``foreach=True``
   (the same arithmetic, fewer kernel launches).

    python benchmarks/small_maps_cpu.py
    python benchmarks/small_maps_cpu.py --models mobilenet_v3_small --rounds 5 --steps 10
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/small_maps_cpu.py   # oneDNN's AVX2 kernels on an AVX-512 CPU

The padding only pays where oneDNN runs its AVX2 kernels; on an AVX-512 CPU it costs (the script
says which the engine does on this machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

SMALL_MAPS = "mobilenet_v3_small,shufflenet_v2_x1_0,mnasnet1_0,efficientnet_b0,resnet18,googlenet,alexnet"
OPTIMIZER = "lenet5,mobilenet_v3_small"


def _table(rows: list[dict], base: str, new: str, count: str | None, fmt: str, names=None) -> None:
    """A markdown table: per model, the two variants' ms/step, the speed-up of ``new`` and the load."""
    if not rows:
        return
    names = names or (base, new)
    head = ["model"] + ([count] if count else []) + [f"{names[0]} ms/step", f"{names[1]} ms/step", "speed-up", "load"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        b, n = r["median"][base], r["median"][new]
        cells = [r["model"]] + ([str(r["converted"])] if count else [])
        cells += [f"{b * 1e3:{fmt}}", f"{n * 1e3:{fmt}}", f"{b / n:.2f}×", "–".join(f"{v:.2f}" for v in r["load"])]
        print("| " + " | ".join(cells) + " |")
    print()


def _speedups(rows: list[dict], base: str, new: str) -> list[dict]:
    """The JSON rows: per model, the two variants' seconds per step and the speed-up of ``new``."""
    return [
        {"model": r["model"], "converted": r["converted"], f"{base}_s": r["median"][base], f"{new}_s": r["median"][new],
         "speedup": r["median"][base] / r["median"][new], "load": r["load"]}
        for r in rows
    ]  # fmt: skip


class _Steps:
    """Training steps of one model variant on a fixed batch (B, 1, 28, 28), channels-last, AdamW."""

    def __init__(self, name: str, padded: bool, foreach: bool, x, y) -> None:
        import torch

        from cnnbench.models import create_model, pad_small_maps

        torch.manual_seed(0)
        model = create_model(name, num_classes=10, in_chans=1, input_size=28, drop_rate=0.5)
        self.converted = pad_small_maps(model, (1, 28, 28)) if padded else 0
        self.model = model.to(memory_format=torch.channels_last).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, foreach=foreach)
        self.x, self.y = x, y

    def step(self) -> None:
        import torch

        loss = torch.nn.functional.cross_entropy(self.model(self.x), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def per_step(self, n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            self.step()
        return (time.perf_counter() - t0) / n


def compare(name: str, variants: dict[str, tuple[bool, bool]], steps: int, rounds: int, x, y) -> dict:
    """The variants of one model built from the same seed, 2 untimed steps each, then alternating rounds."""
    built = {label: _Steps(name, *flags, x, y) for label, flags in variants.items()}
    for variant in built.values():
        for _ in range(2):
            variant.step()
    times: dict[str, list[float]] = {label: [] for label in built}
    loads = [os.getloadavg()[0]]
    for _ in range(rounds):
        for label, variant in built.items():
            times[label].append(variant.per_step(steps))
    loads.append(os.getloadavg()[0])
    medians = {label: statistics.median(t) for label, t in times.items()}
    converted = max(v.converted for v in built.values())
    return {"model": name, "median": medians, "rounds": times, "converted": converted, "load": loads}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=SMALL_MAPS, help="models for the padding comparison")
    parser.add_argument("--optimizer-models", default=OPTIMIZER, help="models for the AdamW comparison ('' = skip)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", default=None, help="intra-op threads (default: torch's)")
    parser.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH", help="the rows as JSON")
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """(padding rows, AdamW rows)."""
    import torch

    torch.manual_seed(0)
    x = torch.randn(args.batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch,))
    dw_rows, opt_rows = [], []
    for name in [m for m in args.models.split(",") if m]:
        dw_rows.append(compare(name, {"stock": (False, True), "padded": (True, True)}, args.steps, args.rounds, x, y))
        line = "  ".join(f"{k} {v * 1e3:7.1f} ms" for k, v in dw_rows[-1]["median"].items())
        print(f"  {name:20s} {line}", file=sys.stderr, flush=True)
    for name in [m for m in args.optimizer_models.split(",") if m]:
        steps = args.steps * (20 if name == "lenet5" else 1)  # LeNet-5 steps take milliseconds
        opt_rows.append(compare(name, {"loop": (True, False), "foreach": (True, True)}, steps, args.rounds, x, y))
        line = "  ".join(f"{k} {v * 1e3:7.2f} ms" for k, v in opt_rows[-1]["median"].items())
        print(f"  {name:20s} {line}", file=sys.stderr, flush=True)
    return dw_rows, opt_rows


def main(argv=None) -> int:
    args = parse_args(argv)
    from cnnbench.utils.threads import configure_cpu_threads

    configure_cpu_threads(int(args.threads) if args.threads else None)  # as the CLI does, before torch loads
    import torch

    from cnnbench.models import cpu_vector_isa, onednn_refuses_small_maps

    load_before = os.getloadavg()
    dw_rows, opt_rows = measure(args)
    result = {
        "benchmark": "small_maps_cpu",
        "device": f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU used",
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "threads": torch.get_num_threads(),
        "vector_isa": cpu_vector_isa(),
        "engine_pads": onednn_refuses_small_maps(),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "padding": _speedups(dw_rows, "stock", "padded"),
        "adamw": _speedups(opt_rows, "loop", "foreach"),
    }
    if args.json:
        from benchio import emit_json

        emit_json(result, args.json)
    if args.json != "-":
        print_report(result, args, dw_rows, opt_rows)
    return 0


def print_report(result: dict, args: argparse.Namespace, dw_rows: list[dict], opt_rows: list[dict]) -> None:
    import torch

    print()
    print(f"device: {result['device']}")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, {result['threads']} threads")
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "unset"
    pads = "yes (oneDNN's AVX2 kernels)" if result["engine_pads"] else "no (only oneDNN's AVX2 kernels need it)"
    print(
        f"vector ISA: {result['vector_isa']} (PyTorch's level {torch.backends.cpu.get_cpu_capability()}), "
        f"oneDNN cap {cap}; cnnbench train pads: {pads}"
    )
    print(f"load average (1/5/15 min): before {result['load_before']}, after {result['load_after']}")
    print(f"batch {args.batch} of 1×28×28, AdamW, channels-last; median of {args.rounds} alternating rounds")
    print()
    _table(dw_rows, "stock", "padded", "layers padded", ".1f")
    _table(opt_rows, "loop", "foreach", None, ".2f", names=("AdamW loop", "AdamW foreach"))


if __name__ == "__main__":
    sys.exit(main())
