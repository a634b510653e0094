"""Wall time of a whole study, end to end as ``cnnbench run`` does it, with each run's outcome.

Without ``--preset``: the default ``cnnbench run`` of this device — on a CPU the quick preset (each
model tuned by the same range test and trained to its target) on the default digits (MNIST when
found, else the bundled mnist-sample); on a GPU ``mnist-study-fast``. The CPU goal ([1/5]): ≤ 10 minutes
on a quiet 2-core machine, every run ≥ 90 % test accuracy.

``--preset mnist-study --data fashion-mnist`` on a GPU is the GPU goal (#5): the MNIST study's own
recipe — 10 seed-mnist models × cosine/plateau × 3 seeds — on Fashion-MNIST in ≤ 10 minutes on one
H100. ``--seeds 1`` times one seed of three (what ``benchmarks/run_all.py`` does to fit its budget;
the result says so). The time covers training, evaluation, speed, feature analysis and the HTML
report, as ``cnnbench run`` does. The per-run table gives status, steps to the target, test
accuracy, training seconds and the feature analysis's seconds (less feature extraction).

On a GPU the naive baseline (benchmarks/naive.py: Dataset + DataLoader + PIL transforms, batch 64) is
measured per model for ``--naive-batches`` batches and multiplied by the epochs cnnbench's runs took —
an extrapolation, said so in the output (``--naive-batches 0``: skip it). ``--naive-accuracy-models``
trains the naive recipe to completion for a few models, so the accuracies can be compared.

    python benchmarks/study_wall_time.py --device cpu            # the default study on this machine
    python benchmarks/study_wall_time.py --device cuda --preset mnist-study --data fashion-mnist
    python benchmarks/study_wall_time.py --device cuda --preset mnist-study --data fashion-mnist --seeds 1 \\
        --naive-batches 0 --json result.json
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
import yaml

from benchio import DATASETS, add_json_flag, emit_json
from cnnbench.data import DataConfig, load_dataset
from cnnbench.models import create_model
from cnnbench.report import build_report, update_results
from cnnbench.study import default_study_values, resolve_spec, run_study
from cnnbench.utils.env import device_label, resolve_device, versions
from naive import naive_epoch_seconds

GOAL_S = 600.0  # both goals: ten minutes
ANALYSIS_STAGES_BESIDES = ("model", "data", "features", "imports")  # benchmarks/embed.py's 1,000-point goal


def _load(values) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def study_spec(args: argparse.Namespace):
    """(spec, a line saying which study): the default ``cnnbench run`` or ``--preset``, narrowed by the flags."""
    flags: dict = {}
    for key in ("models", "schedules"):
        if getattr(args, key):
            flags[key] = getattr(args, key)
    if args.seeds:
        flags["seeds"] = args.seeds
    if args.embed_max_points is not None:
        flags["embed_max_points"] = args.embed_max_points
    if args.recipe:
        flags["recipe"] = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.recipe)}
    if args.data_dir:
        flags["data_dir"] = args.data_dir
    if args.preset is None:
        preset, extra, note = default_study_values(data_dir=args.data_dir, data_given=bool(args.data))
        flags = {**extra, **({"data": [args.data]} if args.data else {}), **flags}
        return resolve_spec(preset, None, flags), f"the default `cnnbench run`: {note}"
    flags["data"] = [args.data or "fashion-mnist"]
    spec = resolve_spec(args.preset, None, flags)
    return spec, f"--preset {args.preset} on {flags['data'][0]}"


def run_timed(spec, out: Path) -> tuple[float, float, list[dict]]:
    """(study seconds, report seconds, results.csv rows): the study, then its report, as `cnnbench run` does."""
    t0 = time.perf_counter()
    run_study(spec, out, log=lambda m: print(m, file=sys.stderr), on_results=update_results)
    t1 = time.perf_counter()
    build_report([out], out)
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1, read_results(out)


def read_results(out: Path) -> list[dict]:
    with (out / "results.csv").open() as f:
        return list(csv.DictReader(f))


def _number(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def analysis_seconds(run_dir: Path) -> float | None:
    """The feature analysis proper (t-SNE, clustering, files), less feature extraction and imports."""
    try:
        seconds = json.loads((run_dir / "analysis.json").read_text())["seconds"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return seconds["total"] - sum(seconds.get(k, 0.0) for k in ANALYSIS_STAGES_BESIDES)


def per_run(rows: list[dict], out: Path) -> list[dict]:
    return [
        {
            "model": r["model"],
            "schedule": r["schedule"],
            "seed": r["seed"],
            "status": r["status"],
            "test_accuracy": _number(r["test_accuracy"]),
            "seconds": _number(r["train_time_s"]),
            "steps_to_target": _number(r.get("steps_to_target")),
            "epochs_run": _number(r.get("epochs_run")),
            "analysis_s": analysis_seconds(out / "runs" / r["run_id"]),
        }
        for r in rows
    ]


def naive_comparison(args, spec, runs: list[dict], device: torch.device, wall: float) -> dict:
    """The naive pipeline's epoch time per model × the epochs cnnbench's runs took (an extrapolation)."""
    ds = load_dataset(DataConfig(spec.data[0], data_dir=args.data_dir, download=False))
    epochs, accuracy = defaultdict(list), defaultdict(list)
    for r in runs:
        epochs[r["model"]].append(int(r["epochs_run"] or 0))
        accuracy[r["model"]].append(r["test_accuracy"] if r["test_accuracy"] is not None else float("nan"))
    total, per_model = 0.0, {}
    for name, eps in epochs.items():
        model = create_model(name, num_classes=ds.num_classes, in_chans=ds.image_shape[0], input_size=28)
        naive = naive_epoch_seconds(model, ds, device, workers=args.workers, max_batches=args.naive_batches)
        total += naive["epoch_s"] * sum(eps)
        per_model[name] = {
            "naive_epoch_s": naive["epoch_s"],
            "epochs": eps,
            "cnnbench_test_accuracy_mean": statistics.mean(accuracy[name]),
        }
    for name in filter(None, args.naive_accuracy_models.split(",")):
        per_model[name]["naive_test_accuracy"] = naive_accuracy(name, ds, device, args.naive_epochs)
    return {"naive_extrapolated_s": total, "speedup": total / wall, "per_model": per_model}


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


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--preset", default=None, help="time this preset (default: what `cnnbench run` runs here)")
    p.add_argument("--data", default=None, choices=DATASETS, help="dataset (default: the default study's digits; "
                   "fashion-mnist with --preset)")  # fmt: skip
    p.add_argument("--data-dir", default=None, help="the dataset's folder (default: where cnnbench looks)")
    p.add_argument("--models", default=None, help="narrow the study to these models")
    p.add_argument("--schedules", default=None, help="narrow the study to these schedules")
    p.add_argument("--seeds", default=None, help="number of seeds (1 → seed 0) or a list")
    p.add_argument("--recipe", action="append", default=[], metavar="KEY=VALUE", help="a recipe value (repeatable)")
    p.add_argument("--embed-max-points", type=int, default=None, help="test points through t-SNE per model")
    p.add_argument("--out", default=None, help="study directory is OUT/study (default: a temporary one)")
    p.add_argument("--naive-batches", type=int, default=None, help="naive batches timed per model (0: no naive "
                   "comparison; default 200 on a GPU, 0 on a CPU)")  # fmt: skip
    p.add_argument("--workers", type=int, default=8, help="naive DataLoader workers")
    p.add_argument("--naive-accuracy-models", default="", help="train the naive recipe fully for these models")
    p.add_argument("--naive-epochs", type=int, default=15)
    add_json_flag(p)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    if args.naive_batches is None:
        args.naive_batches = 200 if device.type == "cuda" else 0
    tmp = tempfile.TemporaryDirectory()
    out = Path(args.out or tmp.name) / "study"
    spec, what = study_spec(args)
    result = {"benchmark": "study_wall_time", "device": device_label(device), "versions": versions()}
    result.update(study=what, preset=spec.preset, data=spec.data[0], seeds=list(spec.seeds), goal_s=GOAL_S)
    result["load_before"] = os.getloadavg()
    wall, report_s, rows = run_timed(spec, out)
    result.update(wall_s=wall, report_s=report_s, runs=len(rows), per_run=per_run(rows, out))
    if args.naive_batches > 0:
        result.update(naive_comparison(args, spec, result["per_run"], device, wall))
    result["load_after"] = os.getloadavg()
    emit_json(result, args.json)
    if args.json != "-":
        print_result(result)
    return 0


def print_result(result: dict) -> None:
    v = result["versions"]
    print(f"device: {result['device']}; torch {v['torch']}, torchvision {v['torchvision']}")
    print(f"load average (1/5/15 min): before {_load(result['load_before'])}, after {_load(result['load_after'])}")
    print(
        f"{result['study']}: {result['runs']} runs, wall time {result['wall_s']:.0f} s "
        f"({result['wall_s'] / 60:.1f} min, the report {result['report_s']:.0f} s of it; goal ≤ 10 min)"
    )
    print("| model | schedule | seed | status | steps to target | test accuracy | training s | analysis s | ≥ 90 % |")
    print("|---|---|---|---|---|---|---|---|---|")
    runs = result["per_run"]
    for r in runs:
        acc = r["test_accuracy"]
        ok = "yes" if acc is not None and acc >= 0.90 else "no"
        steps = f"{r['steps_to_target']:.0f}" if r["steps_to_target"] else "not reached"
        analysis = f"{r['analysis_s']:.2f}" if r["analysis_s"] is not None else "—"
        print(
            f"| {r['model']} | {r['schedule']} | {r['seed']} | {r['status']} | {steps} | "
            f"{acc if acc is None else f'{acc:.4f}'} | {r['seconds'] or 0:.1f} | {analysis} | {ok} |"
        )
    reached = sum(r["test_accuracy"] is not None and r["test_accuracy"] >= 0.90 for r in runs)
    print(f"{reached} of {len(runs)} runs reached 90 % test accuracy (goal: every run)")
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


if __name__ == "__main__":
    sys.exit(main())
