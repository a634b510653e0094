"""A synthetic study directory written exactly in the documented file formats (docs/architecture.md).

For the report's tests, its timing measurement and a preview without training anything:

    python tests/support/synthetic_study.py OUT_DIR [--models 10] [--seeds 3]
    cnnbench report OUT_DIR

The figures are invented (plausible for MNIST-like digits); nothing here trains or measures.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnbench.data.preview import AUGMENTED_FILE, PREVIEW_DRAWS, AugmentationPreview
from cnnbench.engine.config import TrainConfig
from cnnbench.models.summary import ModelSummary
from cnnbench.rundir import RunConfig, RunId, RunSummary, TestPredictions, recipe_hash
from cnnbench.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text

# name: (params, FLOPs, base test accuracy, seconds per epoch on a made-up GPU, GPU images/s, CPU ms)
MODEL_TRAITS: dict[str, tuple[int, float, float, float, float, float]] = {
    "lenet5": (44_426, 0.57e6, 0.9890, 2.1, 310_000, 0.08),
    "alexnet": (2_470_000, 0.25e9, 0.9935, 4.5, 41_000, 1.9),
    "vgg11": (9_230_000, 0.31e9, 0.9942, 5.8, 18_500, 3.4),
    "googlenet": (5_600_000, 0.42e9, 0.9946, 9.5, 9_800, 7.9),
    "resnet18": (11_170_000, 0.56e9, 0.9952, 6.2, 16_200, 3.8),
    "squeezenet1_1": (723_000, 0.05e9, 0.9928, 3.9, 52_000, 1.1),
    "shufflenet_v2_x1_0": (1_260_000, 0.03e9, 0.9931, 4.6, 39_000, 2.2),
    "mobilenet_v3_small": (1_520_000, 0.01e9, 0.9921, 4.1, 47_000, 1.6),
    "mnasnet1_0": (3_110_000, 0.06e9, 0.9933, 5.0, 30_000, 2.6),
    "efficientnet_b0": (4_020_000, 0.08e9, 0.9949, 8.8, 14_000, 5.2),
}
DIGITS = [str(d) for d in range(10)]


@dataclass
class SyntheticStudy:
    """What to write; the defaults give a small study with every kind of run the report must handle."""

    models: Sequence[str] = ("lenet5", "resnet18", "mobilenet_v3_small", "vgg11")
    schedules: Sequence[str] = ("cosine", "plateau")
    seeds: Sequence[int] = (0, 1)
    dataset: str = "mnist"
    classes: Sequence[str] = tuple(DIGITS)
    epochs: int = 12
    steps_per_epoch: int = 422  # MNIST's 54,000 training images at batch 128
    short: Sequence[str] = ()  # models whose runs stop after ``short_steps`` optimiser steps (< 1 epoch)
    short_steps: int = 40
    augment: str = "digits"  # the runs' --augment; with samples, an augmented.npz is written unless "none"
    target_accuracy: float | None = 0.99
    gpu: bool = True  # write GPU throughput into the speed files
    onnx: bool = False
    analysis: bool = True  # analysis.json + tsne.png in the first seed of every model and schedule
    samples: bool = True
    predictions: bool = True  # test_predictions.npz in every finished run (False: runs from before the file)
    failed: Sequence[str] = ()  # run_ids that diverged (summary with status diverged and an error)
    missing: Sequence[str] = ()  # run_ids with a run directory but no summary.json (killed mid-run)
    absent: Sequence[str] = ()  # run_ids the study defines but that have no directory at all
    seed: int = 0
    extra_study: dict[str, Any] = field(default_factory=dict)

    def run_ids(self) -> list[str]:
        return [
            str(RunId(self.dataset, m, s, seed)) for m in self.models for s in self.schedules for seed in self.seeds
        ]


def write_synthetic_study(path: str | os.PathLike[str], spec: SyntheticStudy | None = None) -> Path:
    """Write ``spec`` as a study directory at ``path`` and return it."""
    spec = spec or SyntheticStudy()
    root = Path(path)
    rng = np.random.default_rng(spec.seed)
    # the layout cnnbench run writes: the spec, resolved model names, the command, this shard's run ids
    study = {
        "data": [spec.dataset],
        "models": list(spec.models),
        "schedules": list(spec.schedules),
        "seeds": list(spec.seeds),
        "recipe": {"epochs": spec.epochs, "patience": 5, "target_accuracy": spec.target_accuracy},
        "resolved_models": list(spec.models),
        "shard": None,
        "command": "cnnbench run --data mnist --models " + ",".join(spec.models),
        "runs": spec.run_ids(),
        **spec.extra_study,
    }
    atomic_write_text(root / "study.yaml", _yaml(study))
    tsne_png = _tsne_png(len(spec.classes)) if spec.analysis else b""
    for model in spec.models:
        _write_speed(root / "speed" / f"{model}.json", model, spec, rng)
    for run_id in spec.run_ids():
        if run_id in spec.absent:
            continue
        _write_run(root / "runs" / run_id, run_id, spec, rng, tsne_png)
    if spec.samples:
        images, labels = _digit_like(len(spec.classes), 6, rng)
        buf = io.BytesIO()
        np.savez(buf, images=images, labels=labels, classes=np.array(list(spec.classes)))
        atomic_write_bytes(root / "samples.npz", buf.getvalue())
        if spec.augment != "none":
            _augmented_preview(images[::6], labels[::6], spec, rng).save(root / AUGMENTED_FILE)
    return root


def _traits(model: str) -> tuple[int, float, float, float, float, float]:
    if model in MODEL_TRAITS:
        return MODEL_TRAITS[model]
    h = sum(map(ord, model))
    return (
        100_000 + 9_000 * h,
        1e6 * (h % 97 + 1),
        0.985 + (h % 10) / 1000,
        3.0 + h % 5,
        20_000.0 + 100 * h,
        1.0 + h % 7,
    )


def _write_speed(path: Path, model: str, spec: SyntheticStudy, rng: np.random.Generator) -> None:
    params, flops, _, _, ips, cpu_ms = _traits(model)
    atomic_write_json(
        path,
        {
            "model": model,
            "input": [1, 28, 28],
            "params": params,
            "size_mb": params * 4 / 2**20,
            "flops": flops,
            "gpu_throughput": ips * float(rng.uniform(0.97, 1.03)) if spec.gpu else None,
            "gpu_name": "NVIDIA H100 80GB HBM3" if spec.gpu else None,
            "gpu_dtype": "bf16" if spec.gpu else None,
            "gpu_batch_size": 256 if spec.gpu else None,
            "cpu_latency_ms": cpu_ms * float(rng.uniform(0.95, 1.05)),
            "onnx_latency_ms": cpu_ms * 0.7 if spec.onnx else None,
            "test_time_s": 10_000 / ips * 40,
            "versions": {"torch": "2.14.1", "onnxruntime": "1.22.0"},
        },
    )


def _write_run(run_dir: Path, run_id: str, spec: SyntheticStudy, rng: np.random.Generator, tsne_png: bytes) -> None:
    dataset, model, schedule, seed = dataclasses.astuple(RunId.parse(run_id))
    params, flops, base_acc, epoch_s, _, _ = _traits(model)
    failed = run_id in spec.failed
    k = len(spec.classes)
    cfg = TrainConfig(
        model=model,
        data=dataset,
        epochs=spec.epochs,
        batch_size=128,
        lr=1e-3,  # a diverged run of the study ran its recipe: one recipe for every run
        schedule=schedule,
        warmup_epochs=2,
        augment=spec.augment,
        patience=5,
        target_accuracy=spec.target_accuracy,
        seed=seed,
        test_batch_size=32,
        progress=False,
    )
    config = _run_config(cfg, k)
    config.write(run_dir)
    final_acc = base_acc + (0.0006 if schedule == "plateau" else 0.0) + float(rng.normal(0, 0.0007))
    final_acc = min(final_acc, 0.9995)
    epochs = spec.epochs - (int(rng.integers(0, 4)) if not failed else spec.epochs - 3)
    short = model in spec.short and not failed
    if short:
        epochs, final_acc = 1, final_acc - 0.12
    rows, reach = _curves(epochs, final_acc, schedule, epoch_s, failed, spec.target_accuracy, rng)
    steps = _step_rows(rows, spec.short_steps if short else spec.steps_per_epoch * epochs, spec.steps_per_epoch, rng)
    for row in rows:
        row["step"] = min(int(row["epoch"]) * spec.steps_per_epoch, int(steps[-1]["step"]))
    if short:
        rows[0]["val_acc"], rows[0]["val_loss"] = final_acc, -math.log(final_acc)
    if run_id in spec.missing:
        atomic_write_text(run_dir / "metrics.csv", _metrics_csv(rows[: max(1, epochs // 2)]))
        return
    atomic_write_text(run_dir / "metrics.csv", _metrics_csv(rows))
    atomic_write_text(run_dir / "steps.csv", _metrics_csv(steps))
    best = max(rows, key=lambda r: r["val_acc"] if not math.isnan(r["val_acc"]) else -1)
    train_time = rows[-1]["train_time_s"]
    confusion = _confusion(k, final_acc, rng)
    final_acc = float(np.trace(confusion) / confusion.sum())  # what the test pass would report for these counts
    summary = RunSummary(
        model=model,
        dataset=dataset,
        status="diverged" if failed else ("early_stopped" if epochs < spec.epochs else "completed"),
        error=f"loss became NaN at epoch {epochs} (lr 1e+06); the last good checkpoint is kept" if failed else None,
        test_accuracy=None if failed else final_acc,
        test_loss=None if failed else 0.012 + (1 - final_acc) * 2.5 + float(rng.normal(0, 0.0005)),
        test_top5=None if failed else min(1.0, 0.9990 + (final_acc - 0.99) * 0.1),
        test_mean_class_accuracy=None if failed else final_acc - 0.0002,
        best_val_accuracy=None if failed else best["val_acc"],
        train_accuracy=None if failed else best["train_acc"],
        epochs_run=epochs,
        best_epoch=None if failed else int(best["epoch"]),
        train_time_s=train_time,
        time_per_epoch_s=train_time / epochs,
        target_accuracy=spec.target_accuracy,
        epochs_to_target=reach[0],
        time_to_target_s=reach[1],
        test_time_s=None if failed else 1.9 + float(rng.uniform(0, 0.2)),
        test_batch_size=None if failed else cfg.test_batch_size,
        test_samples=None if failed else int(confusion.sum()),
        params=params,
        size_mb=params * 4 / 2**20,
        flops=flops,
        input_size=28,
        device={"type": "cuda", "name": "NVIDIA H100 80GB HBM3", "memory_gb": 79.1},
        versions={"python": "3.11.2", "cnnbench": "0.1.0", "torch": "2.14.1", "timm": "1.0.20", "numpy": "2.4.6"},
        seed=seed,
        schedule=schedule,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        steps=int(steps[-1]["step"]),
        world_size=1,
        notes=[],
        config_hash=config.resolved["config_hash"],
        recipe_hash=config.resolved["recipe_hash"],
    )
    summary.write(run_dir)
    if not failed:
        if spec.predictions:
            _predictions(confusion, rng).write(run_dir)
        atomic_write_json(
            run_dir / "test_metrics.json",
            {
                "classes": list(spec.classes),
                "samples": int(confusion.sum()),
                "confusion_matrix": confusion.tolist(),
                "per_class_accuracy": (np.diag(confusion) / confusion.sum(axis=1)).tolist(),
            },
        )
    atomic_write_json(run_dir / "model.json", _model_json(model, params, flops, k))
    atomic_write_json(run_dir / "data.json", _data_json(dataset, spec.classes))
    if spec.analysis and seed == min(spec.seeds) and not failed:
        ari = 0.55 + (final_acc - 0.985) * 25 + float(rng.normal(0, 0.03))
        tsne = {
            "kmeans": {"ari": min(ari, 0.98), "nmi": min(ari + 0.1, 0.99), "silhouette": 0.5, "k": k},
            "dbscan": {
                "ari": min(ari + 0.15, 0.99),
                "nmi": min(ari + 0.2, 0.99),
                "silhouette": 0.6,
                "eps": 2.1,
                "min_samples": 10,
                "noise_points": int(rng.integers(10, 200)),
                "valid": True,
            },
            "knn_accuracy": final_acc - 0.002,
            "backend": "opentsne",
            "perplexity": 30.0,
        }
        raw = {"kmeans": {"ari": min(ari - 0.1, 0.97), "nmi": min(ari, 0.98)}, "knn_accuracy": final_acc - 0.001}
        atomic_write_json(
            run_dir / "analysis.json",
            {
                "format": "cnnbench-analysis-v1",
                "model": model,
                "dataset": dataset,
                "split": "test",
                "points": 10000,
                "kmeans": tsne["kmeans"],
                "dbscan": tsne["dbscan"],
                "knn_accuracy": raw["knn_accuracy"],
                "dbscan_uses_labels": True,
                "tsne": tsne,
                "raw": raw,
                "seconds": {"features": 3.0, "tsne": 30.0, "total": 40.0},
            },
        )
        atomic_write_bytes(run_dir / "knn_distance.png", tsne_png)
        atomic_write_bytes(run_dir / "tsne.png", tsne_png)


def _run_config(cfg: TrainConfig, num_classes: int) -> RunConfig:
    """config.yaml as the engine writes it (engine/setup.py ``write_config``), for a made-up H100."""
    model_args = {
        "name": cfg.model,
        "num_classes": num_classes,
        "in_chans": 1,
        "input_size": 28,
        "drop_rate": cfg.drop_rate,
        "head": cfg.head,
    }
    resolved = {
        "device": "cuda",
        "world_size": 1,
        "amp": "bfloat16",
        "channels_last": True,
        "lr": cfg.lr,
        "config_hash": cfg.hash(),
        "recipe_hash": recipe_hash(cfg.to_dict()),
    }
    return RunConfig.build(cfg.to_dict(), model_args, cfg.data_config().to_dict(), resolved)


def _curves(
    epochs: int,
    final_acc: float,
    schedule: str,
    epoch_s: float,
    failed: bool,
    target: float | None,
    rng: np.random.Generator,
) -> tuple[list[dict[str, float]], tuple[int | None, float | None]]:
    rows = []
    elapsed = 0.0
    reach: tuple[int | None, float | None] = (None, None)
    for e in range(1, epochs + 1):
        progress = 1 - math.exp(-e / 2.2)
        val = 0.90 + (final_acc - 0.90) * progress + float(rng.normal(0, 0.0006))
        train = val - 0.004 + float(rng.normal(0, 0.001))
        if schedule == "plateau":
            lr = 1e-3 * (0.1 ** (e // 5))
        else:
            lr = 1e-3 * 0.5 * (1 + math.cos(math.pi * e / epochs))
        if e <= 2:
            lr = 1e-3 * e / 2
        t = epoch_s * float(rng.uniform(0.95, 1.05))
        elapsed += t
        if failed and e == epochs:
            val = train = math.nan
        rows.append(
            {
                "epoch": e,
                "train_loss": -math.log(max(train, 1e-6)) * 1.3 if not math.isnan(train) else math.nan,
                "train_acc": train,
                "val_loss": -math.log(max(val, 1e-6)) if not math.isnan(val) else math.nan,
                "val_acc": val,
                "lr": lr,
                "epoch_time_s": t,
                "train_time_s": elapsed,
                "batch_size": 128,
            }
        )
        if target is not None and reach[0] is None and not math.isnan(val) and val >= target:
            reach = (e, elapsed)
    return rows, reach


def _step_rows(
    epochs: list[dict[str, float]], total: int, per_epoch: int, rng: np.random.Generator
) -> list[dict[str, float]]:
    """steps.csv rows at the interval cnnbench.engine.runlog.step_log_interval gives, loss falling from 2.3."""
    interval = max(1, min(per_epoch, total) // 10, total // 1000)
    marks = sorted({*range(interval, total + 1, interval), *range(per_epoch, total + 1, per_epoch), total})
    out, prev = [], 0
    for step in marks:
        epoch = step / per_epoch
        row = epochs[min(len(epochs) - 1, max(0, math.ceil(epoch) - 1))]
        acc = row["train_acc"] if math.isnan(row["train_acc"]) else row["train_acc"] * (1 - math.exp(-step / 30))
        loss = 2.3 * math.exp(-step / 25) + (row["train_loss"] if not math.isnan(row["train_loss"]) else math.nan)
        out.append(
            {
                "step": step,
                "epoch": epoch,
                "train_loss": loss + float(rng.normal(0, 0.02)),
                "train_acc": acc,
                "lr": _short_run_lr(step, total) if total < per_epoch else row["lr"],
                "steps_averaged": step - prev,
                "batch_size": row["batch_size"],
            }
        )
        prev = step
    return out


def _short_run_lr(step: int, total: int) -> float:
    """The quick preset's schedule: warm-up from 1e-6 to 1e-3 over a fifth of the run, cosine to 1e-6."""
    warm = max(1, total // 5)
    if step <= warm:
        return 1e-6 + (1e-3 - 1e-6) * step / warm
    return 1e-6 + 0.5 * (1e-3 - 1e-6) * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def _metrics_csv(rows: list[dict[str, float]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _confusion(k: int, acc: float, rng: np.random.Generator, per_class: int = 1000) -> np.ndarray:
    """Counts (K, K), rows = truth, about ``acc`` on the diagonal, errors spread over a few neighbours."""
    m = np.zeros((k, k), dtype=np.int64)
    for i in range(k):
        errors = int(rng.binomial(per_class, 1 - acc))
        m[i, i] = per_class - errors
        targets = rng.choice([j for j in range(k) if j != i], size=errors) if k > 1 else []
        for j in targets:
            m[i, j] += 1
    return m


# How hard each test image is (one value per image, the same for every model of a study): real models
# err on the same hard images, so a synthetic model's errors fall on them too, mostly.
_DIFFICULTY = np.random.default_rng(12345).random(100_000)


def _predictions(confusion: np.ndarray, rng: np.random.Generator) -> TestPredictions:
    """Per-image predictions with exactly ``confusion``'s counts; test images sorted by class, errors on hard ones."""
    k = len(confusion)
    target = np.repeat(np.arange(k), confusion.sum(axis=1))
    predicted = target.copy()
    start = 0
    for i in range(k):
        n = int(confusion[i].sum())
        wrong = np.repeat([j for j in range(k) if j != i], [confusion[i, j] for j in range(k) if j != i])
        weights = np.exp(4 * _DIFFICULTY[start : start + n])
        where = rng.choice(n, size=len(wrong), replace=False, p=weights / weights.sum())
        predicted[start + where] = wrong
        start += n
    # top-5: the prediction first, the true class next when it is another, then other classes at random
    scores = rng.random((len(target), k))
    rows = np.arange(len(target))
    scores[rows, target] = 2.0
    scores[rows, predicted] = 3.0
    top5 = np.argsort(-scores, axis=1)[:, : min(5, k)]
    return TestPredictions(predicted=predicted, target=target, top5=top5)


def _model_json(model: str, params: int, flops: float, num_classes: int) -> dict[str, Any]:
    """model.json as ``cnnbench.models.summarize`` writes it, with made-up layers."""
    layers = [
        {"name": "stem.conv", "type": "Conv2d", "depth": 2, "output_shape": [32, 28, 28], "params": 320},
        {"name": "stem.bn", "type": "BatchNorm2d", "depth": 2, "output_shape": [32, 28, 28], "params": 64},
        {"name": "features", "type": "Sequential", "depth": 1, "output_shape": [256, 4, 4], "params": params - 3_000},
        {"name": "pool", "type": "AdaptiveAvgPool2d", "depth": 1, "output_shape": [256, 1, 1], "params": 0},
        {"name": "classifier", "type": "Linear", "depth": 1, "output_shape": [num_classes], "params": 2_570},
    ]
    summary = ModelSummary(
        model=model,
        input_shape=[1, 28, 28],
        params=params,
        trainable_params=params,
        size_mb=params * 4 / 2**20,
        flops=int(flops),
        final_feature_map=[256, 4, 4],
        num_features=256,
        num_classes=num_classes,
        adaptation=[] if model == "lenet5" else ["conv1 stride 2→1", "maxpool removed"],
        layers=layers,
    )
    return summary.to_dict()


def _data_json(dataset: str, classes: Sequence[str]) -> dict[str, Any]:
    """data.json as ``Dataset.info()`` writes it, for MNIST-sized splits."""
    return {
        "name": dataset,
        "kind": "digits",
        "train_size": 54_000,
        "val_size": 6_000,
        "test_size": 10_000,
        "num_classes": len(classes),
        "classes": list(classes),
        "image_shape": [1, 28, 28],
        "mean": [0.1307],
        "std": [0.3081],
        "source": "/usr/share/datasets/fashion-mnist (synthetic figures)",
        "skipped": [],
        "notes": ["split: 54000 train / 6000 val (0.1 of train, stratified, seed 0) / 10000 test"],
        "split_file": None,
    }


def _digit_like(k: int, per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1, 28, 28) uint8 images: a bright bar at a class-dependent angle, with noise."""
    yy, xx = np.mgrid[0:28, 0:28] - 13.5
    images, labels = [], []
    for c in range(k):
        for _ in range(per_class):
            angle = math.pi * c / k + float(rng.normal(0, 0.1))
            dist = np.abs(xx * math.sin(angle) - yy * math.cos(angle))
            img = np.clip(255 * np.exp(-(dist**2) / 4) * (np.hypot(xx, yy) < 11), 0, 255)
            img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255)
            images.append(img.astype(np.uint8)[None])
            labels.append(c)
    return np.stack(images), np.array(labels, dtype=np.int64)


def _augmented_preview(
    images: np.ndarray, labels: np.ndarray, spec: SyntheticStudy, rng: np.random.Generator
) -> AugmentationPreview:
    """Invented draws (shifts of up to 3 px and brightness changes), in the format cnnbench run writes."""
    draws = []
    for _ in range(PREVIEW_DRAWS):
        shift = rng.integers(-3, 4, size=2)
        moved = np.roll(images.astype(np.float64), tuple(shift), axis=(2, 3)) * rng.uniform(0.8, 1.2)
        draws.append(np.clip(moved, 0, 255).astype(np.uint8))
    return AugmentationPreview(
        originals=images,
        augmented=np.stack(draws, 1),  # (R, D, C, H, W)
        labels=labels.astype(np.int64),
        classes=list(spec.classes),
        dataset=spec.dataset,
        augment={"kind": "DigitsAugment (synthetic: shifts and brightness only)", "output_size": 28},
        seed=spec.seed,
    )


def _tsne_png(k: int) -> bytes:
    """A three-panel scatter like ``cnnbench embed``'s tsne.png (truth, K-means, DBSCAN)."""
    from cnnbench.report.style import new_figure, png_bytes

    rng = np.random.default_rng(0)
    centers = rng.normal(0, 20, (k, 2))
    labels = np.repeat(np.arange(k), 60)
    xy = centers[labels] + rng.normal(0, 3, (len(labels), 2))
    fig = new_figure(12, 4)
    axes = fig.subplots(1, 3)
    for ax, title in zip(axes, ("true class", "K-means", "DBSCAN"), strict=False):
        ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", s=4)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    return png_bytes(fig)


def _yaml(data: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="directory to write the study into")
    parser.add_argument("--models", type=int, default=4, help="how many models (1–10)")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per model and schedule")
    parser.add_argument("--schedules", default="cosine,plateau", help="comma-separated schedule names")
    args = parser.parse_args(argv)
    models = list(MODEL_TRAITS)[: max(1, min(10, args.models))]
    schedules = [s for s in args.schedules.split(",") if s]
    spec = SyntheticStudy(models=models, schedules=schedules, seeds=tuple(range(args.seeds)))
    print(write_synthetic_study(args.out, spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
