"""The parts of ``benchmarks/run_all.py``: which script runs with which flags, and what its result says.

A part is one run of one script of this folder, under its own time limit. Its flags come in two
sizes: the measurement (``args``) and a smoke run that checks, on the CPU and in seconds, that the
same code path still works (``smoke``). ``goals`` turns the script's JSON into one entry per goal of
``goals.py``: the figure, its baseline and ratio, the value judged, met or not, and one short line.
The lists of parts per device, in the order that matters most, are in ``parts_cpu.py`` and
``parts_gpu.py``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from goals import BY_KEY, judge

_UNSET = object()


@dataclass
class Context:
    """What every part's flags depend on."""

    device: str  # "cpu" or "cuda": whose parts run (and where, unless smoke)
    smoke: bool  # tiny sizes on the CPU: does every part still run?
    data: str  # fashion-mnist when found, else mnist-sample (smoke: synthetic)
    work: Path  # scratch for trees, caches and studies; deleted afterwards

    @property
    def run_device(self) -> str:
        return "cpu" if self.smoke else self.device

    @property
    def gpu(self) -> bool:
        return self.device == "cuda"


@dataclass(frozen=True)
class Part:
    name: str  # its result file: OUT/<name>.json
    script: str  # a file of benchmarks/
    limit_s: float  # the most it may take (a measurement; a smoke run takes seconds)
    args: Callable[[Context], list[str]]
    smoke: Callable[[Context], list[str]]
    goals: Callable[[dict, Context], list[dict]]
    needs: tuple[str, ...] = ()  # modules it cannot run without
    min_s: float = 30.0  # not started with less of the budget left
    on_timeout: Callable[[Context, float], list[dict]] | None = None  # goal entries from what it left


def entry(
    key: str,
    value: float | None,
    text: str,
    *,
    data: str | None = None,
    figure: float | None = None,
    baseline: float | None = None,
    ratio: float | None = None,
    met: Any = _UNSET,
) -> dict:
    """One goal's result. ``value`` is what the goal judges; a figure on another dataset than the goal
    names is kept but not judged."""
    goal = BY_KEY[key]
    verdict = judge(goal, value) if met is _UNSET else met
    if goal.data and data and data != goal.data:
        verdict, text = None, f"{text} (on {data}, not {goal.data}: not judged)"
    return {
        "goal": key,
        "goal_text": goal.text,
        "target": goal.target,
        "value": value,
        "figure": figure,
        "baseline": baseline,
        "ratio": ratio,
        "met": verdict,
        "data": data,
        "text": text,
    }


def span(low: float, low_name: str, high: float, high_name: str) -> str:
    """``3.1× (vgg11) to 40.2× (lenet5)``, or one figure when both ends are the same model."""
    if low_name == high_name:
        return f"{low:.1f}× ({low_name})"
    return f"{low:.1f}× ({low_name}) to {high:.1f}× ({high_name})"


def pct(x: float) -> str:
    return f"{x:+.1f} %".replace("-", "−")


def data_pipeline_goals(r: dict, ctx: Context) -> list[dict]:
    c, b, ratio = r["cnnbench"]["seconds"], r["baseline"]["seconds"], r["speedup"]
    a = r.get("augment_only")
    kornia = f"; augmentation alone {a['speedup_cnnbench_over_kornia']:.1f}× kornia" if a else "; kornia not installed"
    text = f"{c:.2f} s vs {b:.2f} s per epoch: {ratio:.1f}×{kornia}"
    key = "data-loader-gpu" if ctx.gpu else "data-loader-cpu"
    return [entry(key, ratio, text, data=r["data"], figure=c, baseline=b, ratio=ratio)]


def data_pipeline_args(ctx: Context) -> list[str]:
    workers = "8" if ctx.gpu else "2"
    return ["--device", ctx.run_device, "--data", ctx.data, "--workers", workers]


def data_pipeline_smoke(ctx: Context) -> list[str]:
    return ["--device", "cpu", "--data", "synthetic", "--workers", "0", "--baseline-batches", "3", "--repeats", "2"]


def imagefolder_args(ctx: Context) -> list[str]:
    size = ["--images", "8000", "--classes", "257", "--workers", "8,16", "--train-batches", "40"]
    if not ctx.gpu:
        size = ["--images", "1500", "--classes", "50", "--workers", "2", "--train-batches", "6", "--batch-size", "32"]
    tree = ["--root", str(ctx.work / "jpeg-tree"), "--cache-dir", str(ctx.work / "jpeg-cache")]
    return ["--device", ctx.run_device, *size, *tree]


def imagefolder_smoke(ctx: Context) -> list[str]:
    tiny = ["--images", "40", "--classes", "4", "--workers", "0", "--decode-workers", "1", "--train-batches", "1"]
    tiny += ["--batch-size", "8", "--input", "64", "--cache-size", "72"]
    return ["--device", "cpu", *tiny, "--root", str(ctx.work / "jpeg-tree"), "--cache-dir", str(ctx.work / "cache")]


def imagefolder_goals(r: dict, ctx: Context) -> list[dict]:
    loaders = {k: v for k, v in r["loader"].items() if k.startswith("imagefolder_")}
    worst = min(loaders.items(), key=lambda kv: kv[1]["speedup_cnnbench"])
    workers = worst[0].removeprefix("imagefolder_").removesuffix("w")
    loader = f"loader alone {worst[1]['speedup_cnnbench']:.1f}× ImageFolder ({workers} workers)"
    out = []
    if ctx.gpu:
        text = f"{loader}; {r['images']:,} JPEGs"
        ratio = worst[1]["speedup_cnnbench"]
        ours, theirs = r["loader"]["cnnbench"]["images_per_s"], worst[1]["images_per_s"]
        out.append(entry("imagefolder-loader-gpu", ratio, text, ratio=ratio, figure=ours, baseline=theirs))
    train = r.get("train")
    if train:
        ours = 100 * train["cnnbench"]["overhead_vs_pregenerated"]
        theirs = min(100 * v["overhead_vs_pregenerated"] for k, v in train.items() if k.startswith("imagefolder_"))
        text = f"{pct(ours)} (ImageFolder {pct(theirs)}); {loader}; {r['images']:,} JPEGs"
        out.append(entry("imagefolder-train-gpu" if ctx.gpu else "imagefolder-train-cpu", ours, text))
    return out


def study_results(ctx: Context) -> list[dict]:
    """results.csv of the study a part left in the work folder (runs finished so far, and those planned)."""
    path = ctx.work / "study" / "study" / "results.csv"
    if not path.is_file():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def finished(rows: list[dict]) -> int:
    return sum(r["status"] in ("completed", "early_stopped") for r in rows)
