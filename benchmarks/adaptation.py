"""Small-input adaptation at 28×28: today's rule (a final map of at least 2×2) against the cheaper 1×1.

For each model and seed, both variants train the same fixed work on Fashion-MNIST — ``--steps``
optimiser steps of batch 64, AdamW lr 1e-3 (10 warm-up steps from 1e-6), weight decay 1e-4 on
weights only, dropout 0.5, channels-last, the same batch order per seed — then BatchNorm statistics
are recomputed on 1,024 training images and the test accuracy is taken on ``--test-samples``
stratified test images. The table gives FLOPs per image (forward), training ms per step and the
test accuracy, per variant, with the mean over seeds (issue [4/5], docs/models.md).

    python benchmarks/adaptation.py                                   # 5 lightweight models, 3 seeds
    python benchmarks/adaptation.py --models resnet18 --steps 100 --seeds 0,1,2

The 1×1 variant is today's builder with the final-map rule lowered (``MIN_FINAL_MAP = 1``): the
stem keeps its original strides and pools wherever that still leaves a 1×1 map.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

from cnnbench.utils.threads import configure_cpu_threads

configure_cpu_threads()  # before torch loads, as the CLI does

import numpy as np  # noqa: E402
import torch  # noqa: E402

import cnnbench.models.adapt as adapt  # noqa: E402
from benchio import add_data_flags, data_config  # noqa: E402
from cnnbench.data import load_dataset  # noqa: E402
from cnnbench.models import create_model, summarize  # noqa: E402

LIGHTWEIGHT = "squeezenet1_1,shufflenet_v2_x1_0,mobilenet_v3_small,mnasnet1_0,efficientnet_b0"
BATCH, LR, WARMUP = 64, 1e-3, 10


def as_tensors(split, mean: float, std: float) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.asarray(split.images)).float().div(255).sub(mean).div(std)
    return x.contiguous(memory_format=torch.channels_last), torch.from_numpy(np.asarray(split.labels))


def train_and_test(name: str, final_map: int, seed: int, steps: int, data) -> dict:
    xtr, ytr, xte, yte = data
    adapt.MIN_FINAL_MAP = final_map
    torch.manual_seed(seed)
    model = create_model(name, num_classes=10, in_chans=1, input_size=28, drop_rate=0.5)
    flops = summarize(model, (1, 28, 28)).flops
    model = model.to(memory_format=torch.channels_last).train()
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4}, {"params": rest, "weight_decay": 0.0}], lr=LR)
    perm = torch.randperm(len(ytr), generator=torch.Generator().manual_seed(seed))
    start = time.perf_counter()
    for step in range(1, steps + 1):
        idx = perm[(step - 1) * BATCH : step * BATCH]
        for group in opt.param_groups:
            group["lr"] = 1e-6 + (LR - 1e-6) * min(1.0, step / WARMUP)
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
        opt.step()
    ms = 1000 * (time.perf_counter() - start) / steps
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for bn in norms:  # precise BN: statistics of the final weights
        bn.reset_running_stats()
        bn.momentum = None
    with torch.no_grad():
        for i in range(0, 1024, 256):
            model(xtr[perm[i : i + 256]])
        model.eval()
        correct = sum(
            (model(xte[i : i + 500]).argmax(1) == yte[i : i + 500]).sum().item() for i in range(0, len(yte), 500)
        )
    return {"flops": flops, "ms": ms, "acc": correct / len(yte), "load": os.getloadavg()[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=LIGHTWEIGHT)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--test-samples", type=int, default=2000)
    add_data_flags(parser)
    args = parser.parse_args()
    ds = load_dataset(data_config(args, max_test_samples=args.test_samples))
    data = (*as_tensors(ds.train, ds.mean[0], ds.std[0]), *as_tensors(ds.test, ds.mean[0], ds.std[0]))
    models, seeds = args.models.split(","), [int(s) for s in args.seeds.split(",")]
    rows: dict[tuple[str, int], list[dict]] = {}
    load_before = os.getloadavg()
    for seed in seeds:
        for name in models:
            for final_map in (2, 1):  # alternate the variants so that drift in the load hits both
                r = train_and_test(name, final_map, seed, args.steps, data)
                rows.setdefault((name, final_map), []).append(r)
                print(
                    f"  seed {seed} {name:20s} {final_map}x{final_map}: {r['acc']:.2%} {r['ms']:.0f} ms/step "
                    f"(load {r['load']:.2f})",
                    flush=True,
                )
    print()
    print(f"device: CPU {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}")
    print(f"load average (1/5/15 min): before {load_before}, after {os.getloadavg()}")
    print(f"Fashion-MNIST, {args.steps} steps of batch {BATCH}, {len(data[3])} test images, seeds {args.seeds}")
    print()
    print("| model | final map | MFLOPs/image | ms/step | test accuracy per seed | mean | 1×1 − 2×2 |")
    print("|---|---|---|---|---|---|---|")
    for name in models:
        base = statistics.mean(r["acc"] for r in rows[(name, 2)])
        for final_map in (2, 1):
            rs = rows[(name, final_map)]
            mean = statistics.mean(r["acc"] for r in rs)
            accs = " / ".join(f"{r['acc']:.1%}" for r in rs)
            delta = f"{100 * (mean - base):+.1f} pt" if final_map == 1 else ""
            ms = statistics.median(r["ms"] for r in rs)
            print(
                f"| {name} | {final_map}×{final_map} | {rs[0]['flops'] / 1e6:.1f} | {ms:.0f} | {accs} | {mean:.1%} "
                f"| {delta} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
