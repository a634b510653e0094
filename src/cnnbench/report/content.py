"""Results → the report ``Document``: which tables, figures and notes appear, and in what order.

One pass per dataset of the study; figures come from ``fig_*`` modules and are encoded to PNG here.
Runs that did not finish are listed (with their error) and left out of every mean and figure.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnbench.errors import CnnbenchError
from cnnbench.report import fig_classes, fig_compare, fig_curves, fig_features, fig_pareto
from cnnbench.report.aggregate import AggregateRow, aggregate, close_pairs, select_schedules
from cnnbench.report.collect import Results, RunRecord
from cnnbench.report.document import Bullets, Code, Details, Document, Gallery, Image, Paragraph, Section, Table
from cnnbench.report.runfiles import (
    ClusterScores,
    read_analysis,
    read_data_info,
    read_metrics,
    read_model_summary,
    read_png,
    read_steps,
    read_test_metrics,
)
from cnnbench.report.style import model_colors, png_bytes
from cnnbench.report.tables import (
    configurations_table,
    fmt_number,
    key_value_table,
    results_columns,
    results_table,
    runs_table,
)

# config.yaml keys that state a run's budget and recipe in the header
_RECIPE_KEYS = (
    "epochs",
    "time_budget_s",
    "patience",
    "target_accuracy",
    "max_train_samples",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "warmup_epochs",
    "augment",
    "amp",
    "image_size",
    "pretrained",
    "finetune",
    "test_batch_size",
)


@dataclass
class Built:
    """The document and what building it found worth telling the caller."""

    document: Document
    colors: dict[str, str]
    seconds: dict[str, float]  # per stage


class _Figures:
    """Encodes figures to PNG, names them uniquely, and times the work."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.seconds = 0.0
        self.count = 0

    def image(
        self,
        name: str,
        build: Callable[[], Any],
        alt: str,
        caption: str = "",
        wide: bool = True,
        data: dict[str, str] | None = None,
    ) -> Image:
        start = time.perf_counter()
        png = png_bytes(build())
        self.seconds += time.perf_counter() - start
        self.count += 1
        return Image(self._unique(name), png, alt, caption, wide, dict(data or {}))

    def raw(self, name: str, png: bytes, alt: str, caption: str = "", wide: bool = True) -> Image:
        return Image(self._unique(name), png, alt, caption, wide)

    def _unique(self, name: str) -> str:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "figure"
        candidate, i = stem, 2
        while candidate in self.names:
            candidate, i = f"{stem}-{i}", i + 1
        self.names.add(candidate)
        return candidate


def build_document(results: Results, title: str | None = None, sample_grid_dir: Path | None = None) -> Built:
    """Assemble every section of the report from ``results``.

    Args:
        title: the page title; default names the datasets.
        sample_grid_dir: where ``draw_sample_grid`` may write its PNG (the report's figures folder).
    """
    start = time.perf_counter()
    figs = _Figures()
    colors = model_colors(r.model for r in results.runs)
    rows = aggregate(results.runs)
    datasets = results.datasets()
    sections = [_header(results, datasets)]
    samples = _samples_section(results, figs, sample_grid_dir)
    if samples:
        sections.append(samples)
    order = _model_order(results)
    for dataset in datasets:
        sections += _dataset_sections(
            results, dataset, [r for r in rows if r.dataset == dataset], order, colors, figs, len(datasets) > 1
        )
    sections.append(_runs_section(results))
    title = title or "cnnbench study report — " + ", ".join(datasets)
    subtitle = (
        f"{len(results.runs)} runs of {len(results.models())} models on {', '.join(datasets)}; "
        f"written {time.strftime('%Y-%m-%d %H:%M')} from {', '.join(str(d) for d in results.study_dirs)}"
    )
    total = time.perf_counter() - start
    seconds = {"figures": round(figs.seconds, 3), "other": round(total - figs.seconds, 3), "figure_count": figs.count}
    return Built(Document(title, subtitle, sections), colors, seconds)


def _anchor(*parts: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


def _model_order(results: Results) -> list[str]:
    """The study's own model order (study.yaml ``models``), then any others alphabetically."""
    order: list[str] = []
    for study in results.studies:
        # cnnbench run writes the resolved names (groups expanded) as resolved_models
        models = study.definition.get("resolved_models") or study.definition.get("models")
        if isinstance(models, list):
            order += [m for m in models if isinstance(m, str) and m not in order]
    return order + [m for m in results.models() if m not in order]


def _header(results: Results, datasets: Sequence[str]) -> Section:
    blocks: list[Any] = []
    counts = results.status_counts()
    not_ok = [r for r in results.runs if not r.ok]
    items: list[tuple[str, str]] = [
        ("Study directories", ", ".join(str(d) for d in results.study_dirs)),
        ("Runs", ", ".join(f"{n} {status}" for status, n in counts.items())),
        ("Datasets", ", ".join(datasets)),
        ("Models", ", ".join(results.models())),
        ("Schedules", ", ".join(results.schedules())),
        ("Seeds", ", ".join(str(s) for s in sorted({r.seed for r in results.runs if r.seed is not None}))),
    ]
    command = _first_key(results, ("command", "cmd"))
    items.append(("Command", command or "not recorded in study.yaml"))
    created = _first_key(results, ("created", "started", "date"))
    if created:
        items.append(("Study started", created))
    finished = _finish_times(results.runs)
    if finished:
        items.append(("Runs finished", finished))
    items.append(("Report written", time.strftime("%Y-%m-%d %H:%M:%S %Z")))
    items.append(
        (
            "Device",
            _distinct(_device_text(r.summary.get("device")) for r in results.runs if r.summary) or "not recorded",
        )
    )
    cpu = _cpu_text([r.summary.get("device") for r in results.runs if r.summary])
    if cpu:
        items.append(("CPU threads and load", cpu))
    items += _speed_devices(results)
    for dataset in datasets:
        info = _data_info(results.for_dataset(dataset))
        if info:
            items.append((f"Data: {dataset}", info))
    budget = _budget_text(results)
    if budget:
        items.append(("Budget and recipe", budget))
    blocks.append(key_value_table("study-header", items))
    if not_ok:
        blocks.append(
            Paragraph(
                f"{len(not_ok)} of {len(results.runs)} runs did not finish "
                f"({', '.join(sorted({r.status for r in not_ok}))}); they are listed under Runs and left out of "
                "every mean and figure.",
                "warn",
            )
        )
    if results.problems:
        blocks.append(Paragraph("Files that could not be read, or were read twice:", "warn"))
        blocks.append(Bullets(results.problems, "warn"))
    blocks += _recipe_blocks(results)
    versions = _versions_table(results)
    if versions is not None:
        blocks.append(Details("Library versions", [versions]))
    for study in results.studies:
        if study.text:
            blocks.append(Details(f"Study definition: {study.path / 'study.yaml'}", [Code(study.text)]))
    return Section("Study", "study", blocks)


def _recipe_blocks(results: Results) -> list[Any]:
    """What a reader must know before comparing numbers: timed work, several recipes, duplicate seeds,
    and where the study's recipe differs on purpose from the seed study it reproduces."""
    blocks: list[Any] = []
    budgets = sorted({float(r.config["time_budget_s"]) for r in results.runs if r.config.get("time_budget_s")})
    if budgets:
        blocks.append(
            Paragraph(
                f"Equal-time study (--time-budget {' / '.join(f'{b:g}' for b in budgets)} s per run): the number "
                "of optimiser steps of each run was fixed by timing a few steps on this machine, so its accuracies "
                "depend on the machine and on how busy it was. Runs with fixed epochs or steps do not.",
                "warn",
            )
        )
    variants = sorted({(r.arch, r.variant) for r in results.runs if r.variant})
    if variants:
        blocks.append(
            Paragraph(
                "Some models were trained under more than one recipe; each recipe is its own row, labelled with "
                "the settings that differ, and runs of different recipes are never averaged together:",
                "warn",
            )
        )
        blocks.append(Bullets([f"{arch} [{label}]" for arch, label in variants], "warn"))
    duplicates = [
        f"{row.model} ({row.schedule}): {', '.join(row.duplicates)} repeat(s) a seed already counted; left out of means"
        for row in aggregate(results.runs)
        if row.duplicates
    ]
    if duplicates:
        blocks.append(Paragraph("Runs with the same recipe and the same seed (counted once):", "warn"))
        blocks.append(Bullets(duplicates, "warn"))
    for study in results.studies:
        deviations = study.definition.get("deviations")
        if isinstance(deviations, list) and deviations:
            name = study.definition.get("preset") or study.definition.get("name") or study.path.name
            blocks.append(Paragraph(f"Where this study ({name}) differs on purpose from the seed study's recipe:"))
            blocks.append(Bullets([str(d) for d in deviations]))
    return blocks


def _first_key(results: Results, keys: Sequence[str]) -> str | None:
    for study in results.studies:
        for key in keys:
            value = study.definition.get(key)
            if value:
                return " ".join(value) if isinstance(value, list) else str(value)
    return None


def _finish_times(runs: Sequence[RunRecord]) -> str | None:
    stamps = []
    for run in runs:
        if run.path is not None and (run.path / "summary.json").is_file():
            stamps.append((run.path / "summary.json").stat().st_mtime)
    if not stamps:
        return None
    lo, hi = min(stamps), max(stamps)
    fmt = "%Y-%m-%d %H:%M"
    return time.strftime(fmt, time.localtime(lo)) + (
        "" if hi - lo < 60 else " to " + time.strftime(fmt, time.localtime(hi))
    )


def _device_text(device: Any) -> str | None:
    if device is None:
        return None
    if isinstance(device, dict):
        name = device.get("name") or device.get("type")
        memory = f"{device['memory_gb']} GB" if device.get("memory_gb") else None
        return " ".join(str(x) for x in (name, memory) if x)
    return str(device)


def _cpu_text(devices: list[Any]) -> str | None:
    """Threads, OpenMP spin setting and the 1-minute load average at the end of training, over the runs.

    Accuracies do not depend on the load (the work is fixed); times and throughputs do.
    """
    cpu = [d for d in devices if isinstance(d, dict) and d.get("type") == "cpu" and d.get("torch_threads")]
    if not cpu:
        return None
    threads = _distinct(str(d["torch_threads"]) for d in cpu)
    spin = _distinct(
        f"OMP_WAIT_POLICY={d['omp_wait_policy']}"
        if d.get("omp_wait_policy")
        else f"GOMP_SPINCOUNT={d['omp_spin_count']}"
        for d in cpu
        if d.get("omp_wait_policy") or d.get("omp_spin_count")
    )
    loads = [float(d["load_average"]) for d in cpu if d.get("load_average") is not None]
    load = (
        f"load average {min(loads):.1f}–{max(loads):.1f} at the end of training on {_cores_text(cpu)} cores"
        if loads
        else "load not recorded"
    )
    return "; ".join(x for x in (f"{threads} torch threads", spin, load) if x) + " (times depend on the load)"


def _cores_text(cpu: list[dict[str, Any]]) -> str:
    return _distinct(str(d.get("cpu_count")) for d in cpu) or "?"


def _distinct(values: Any) -> str:
    seen: list[str] = []
    for v in values:
        if v and v not in seen:
            seen.append(v)
    return "; ".join(seen)


def _gpu_setups(speeds: list[dict[str, Any]]) -> str:
    """The distinct GPU measurement set-ups (name, dtype, batch) of speed records, '; '-joined."""
    return _distinct(
        " ".join(
            str(x)
            for x in (
                s.get("gpu_name"),
                s.get("gpu_dtype"),
                f"batch {s['gpu_batch_size']}" if s.get("gpu_batch_size") else None,
            )
            if x
        )
        for s in speeds
        if s.get("gpu_throughput") is not None
    )


def _speed_devices(results: Results) -> list[tuple[str, str]]:
    gpus = _gpu_setups(_speeds(results))
    out = []
    if gpus:
        out.append(("GPU throughput measured on", gpus))
    if len(gpus.split("; ")) > 1:
        out.append(("Warning", "GPU throughput comes from different GPUs or settings: compare it only within one"))
    return out


def _speeds(results: Results) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for s in results.speed_files:
        seen[s.get("_path", str(id(s)))] = s
    for r in results.runs:
        if r.speed:
            seen[r.speed.get("_path", str(id(r.speed)))] = r.speed
    return list(seen.values())


def _data_info(runs: Sequence[RunRecord]) -> str | None:
    for run in runs:
        if run.path is None:
            continue
        try:
            info = read_data_info(run.path)
        except CnnbenchError:
            continue
        if info:
            return _flatten(info)
    return None


def _flatten(info: dict[str, Any], limit: int = 14) -> str:
    """The scalar facts of a data.json, one level deep: "source: ...; train: 54000; ..."."""
    parts = []
    for key, value in info.items():
        if isinstance(value, dict):
            inner = [
                f"{k}={v}" for k, v in value.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)
            ]
            if inner:
                parts.append(f"{key}: " + ", ".join(inner[:8]))
        elif isinstance(value, (list, tuple)):
            if 0 < len(value) <= 4 and all(isinstance(v, (int, float)) for v in value):
                parts.append(f"{key}: {list(value)}")
            elif key in ("classes", "skipped", "notes"):
                parts.append(f"{key}: {len(value)}")
        elif value is not None and not isinstance(value, bool):
            parts.append(f"{key}: {value}")
    return "; ".join(parts[:limit])


def _budget_text(results: Results) -> str | None:
    values: dict[str, list[str]] = defaultdict(list)
    for run in results.runs:
        config = run.config
        for key in _RECIPE_KEYS:
            if key in config and config[key] is not None:
                text = str(config[key])
                if text not in values[key]:
                    values[key].append(text)
    for study in results.studies:
        for key, value in study.definition.items():
            if "budget" in str(key) and value is not None and str(value) not in values[str(key)]:
                values[str(key)].append(str(value))
    parts = [f"{k} = {' / '.join(v)}" for k, v in values.items() if v]
    return "; ".join(parts) if parts else None


def _versions_table(results: Results) -> Table | None:
    versions: dict[str, list[str]] = defaultdict(list)
    for run in results.runs:
        for lib, ver in (run.summary.get("versions") or {}).items():
            if ver is not None and str(ver) not in versions[lib]:
                versions[lib].append(str(ver))
    if not versions:
        return None
    return key_value_table("versions", [(lib, ", ".join(v)) for lib, v in versions.items()])


def _samples_section(results: Results, figs: _Figures, out_dir: Path | None) -> Section | None:
    blocks: list[Any] = []
    try:
        from cnnbench.report.sample_grid import draw_augmentation_grid, draw_sample_grid
    except ImportError:
        if results.samples:
            blocks.append(
                Paragraph("samples.npz is present, but this installation has no sample-grid renderer.", "note")
            )
            return Section("Dataset samples", "samples", blocks)
        return None
    import tempfile

    for i, path in enumerate(results.samples):
        try:
            with np.load(path, allow_pickle=False) as data:
                images, labels, classes = data["images"], data["labels"], [str(c) for c in data["classes"]]
                name = str(data["dataset"]) if "dataset" in data.files else None
            with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
                png_path = Path(tmp) / "samples.png"
                per_class = min(8, max(1, len(labels) // max(1, len(classes))))
                title = f"{name}: training images, one row per class" if name else None
                draw_sample_grid(images, labels, classes, png_path, per_class=per_class, title=title)
                png = read_png(png_path)
        except (OSError, KeyError, ValueError, CnnbenchError) as exc:
            blocks.append(Paragraph(f"{path}: could not draw the sample grid ({exc})", "warn"))
            continue
        if png:
            caption = f"Training images per class, from {path}"
            blocks.append(figs.raw(f"samples-{i}" if i else "samples", png, "dataset sample grid", caption))
    blocks += _augmentation_blocks(results, figs, out_dir, draw_augmentation_grid)
    return Section("Dataset samples", "samples", blocks) if blocks else None


def _augmentation_blocks(results: Results, figs: _Figures, out_dir: Path | None, draw: Callable) -> list[Any]:
    """The augmentation figure of each study directory's augmented.npz, or one line when no run augments."""
    import tempfile

    from cnnbench.data.preview import AUGMENTED_FILE, AugmentationPreview

    kinds = Counter(str(r.config.get("augment")) for r in results.runs if r.config.get("augment") is not None)
    augmenting = sum(n for kind, n in kinds.items() if kind != "none")
    none_line = "No augmentation: every run of this study trains on the images as stored (augment: none)."
    blocks: list[Any] = [Paragraph(none_line)] if kinds and not augmenting else []
    files = [d / AUGMENTED_FILE for d in results.study_dirs if (d / AUGMENTED_FILE).is_file()]
    for i, path in enumerate(files):
        try:
            preview = AugmentationPreview.load(path)
            with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
                png = read_png(draw(preview, Path(tmp) / "augmentation.png"))
        except (OSError, ValueError, CnnbenchError) as exc:
            blocks.append(Paragraph(f"{path}: could not draw the augmentation figure ({exc})", "warn"))
            continue
        if not png:
            continue
        if preview.used != bool(augmenting):
            continue  # a reference preview next to runs that augment, or a used one next to runs that do not
        caption = (
            f"{preview.dataset}: {preview.rows} training images (left) and {preview.draws} draws of the runs' "
            f"augmentation, {preview.describe()}. Draw k is what the loader of a run with seed {preview.seed} does "
            f"to the sample at that position in the first batch of epoch k; from {path}"
            if preview.used
            else f"{preview.dataset}: {preview.rows} training images (left) and {preview.draws} draws of the "
            f"dataset's default augmentation, {preview.describe()} — for reference only: no run of this study "
            f"used it (--augment auto would); from {path}"
        )
        image = figs.raw(
            f"augmentation-{i}" if i else "augmentation", png, "training images and augmented draws", caption
        )
        image.data = {"rows": str(preview.rows), "draws": str(preview.draws), "seed": str(preview.seed)}
        blocks.append(image)
    if not blocks and augmenting:
        listed = ", ".join(f"{k} ({n} runs)" for k, n in sorted(kinds.items()))
        blocks.append(
            Paragraph(
                f"The runs train with augmentation (augment: {listed}), but no study directory holds {AUGMENTED_FILE} "
                "(written by cnnbench run); 'cnnbench data samples DATASET --augmented' draws the figure.",
                "note",
            )
        )
    elif blocks and kinds.get("none"):
        blocks.append(Paragraph(f"{kinds['none']} of {sum(kinds.values())} runs use no augmentation.", "note"))
    return blocks


def _dataset_sections(
    results: Results,
    dataset: str,
    rows: list[AggregateRow],
    order: list[str],
    colors: dict[str, str],
    figs: _Figures,
    several: bool,
) -> list[Section]:
    suffix = f" — {dataset}" if several else ""
    runs = results.for_dataset(dataset)
    chosen = select_schedules(rows)
    models = [m for m in order if (dataset, m) in chosen]
    shown = [chosen[(dataset, m)] for m in models]
    finished = [r for r in shown if r.ok > 0]
    schedules = sorted({r.schedule for r in rows})
    target = _common_value(r.figures.get("target_accuracy") for r in runs)
    test_batch = _test_batch(runs)
    ctx = _Ctx(dataset, runs, rows, chosen, models, shown, finished, schedules, colors, figs, target, suffix)
    sections = [_results_section(ctx, test_batch, results)]
    if finished:
        sections.append(_comparisons_section(ctx, test_batch))
        sections.append(_schedules_section(ctx))
        sections.append(_curves_section(ctx))
        sections.append(_pareto_section(ctx))
        sections.append(_classes_section(ctx))
        sections.append(_features_section(ctx))
    sections.append(_summaries_section(ctx))
    return sections


@dataclass
class _Ctx:
    dataset: str
    runs: list[RunRecord]
    rows: list[AggregateRow]
    chosen: dict[tuple[str, str], AggregateRow]
    models: list[str]
    shown: list[AggregateRow]  # one per model: the selected schedule
    finished: list[AggregateRow]  # those with at least one finished run
    schedules: list[str]
    colors: dict[str, str]
    figs: _Figures
    target: float | None
    suffix: str

    def anchor(self, name: str) -> str:
        return _anchor(name, self.dataset) if self.suffix else _anchor(name)

    def name(self, name: str) -> str:
        return f"{self.dataset}_{name}" if self.suffix else name

    def finished_runs(self, model: str, schedule: str | None = None) -> list[RunRecord]:
        schedule = schedule or self.chosen[(self.dataset, model)].schedule
        return [r for r in self.runs if r.model == model and r.schedule == schedule and r.ok and r.path is not None]


def _common_value(values: Any) -> Any:
    present = [v for v in values if v is not None]
    return present[0] if present and all(v == present[0] for v in present) else (max(present) if present else None)


def _test_batch(runs: Sequence[RunRecord]) -> int | None:
    """The batch size of the timed test pass (summary.json, else config.yaml), when the runs agree."""
    sizes = set()
    for run in runs:
        value = run.summary.get("test_batch_size", run.config.get("test_batch_size"))
        if isinstance(value, int) and not isinstance(value, bool):
            sizes.add(value)
    return sizes.pop() if len(sizes) == 1 else None


def _results_section(ctx: _Ctx, test_batch: int | None, results: Results) -> Section:
    blocks: list[Any] = []
    several_schedules = len(ctx.schedules) > 1
    specs = results_columns(ctx.target, test_batch)
    table, omitted = results_table(ctx.anchor("results-table"), ctx.shown, specs, several_schedules)
    seeds = sorted({s for r in ctx.shown for s in r.seeds})
    if several_schedules:
        how = (
            "One row per model, under the schedule with its best mean validation accuracy (chosen on validation, "
            "never on test)"
        )
    else:
        how = f"One row per model (schedule: {ctx.schedules[0]})" if ctx.schedules else "One row per model"
    how += f"; mean ± std over {len(seeds)} seeds" if len(seeds) > 1 else "; one seed, so no spread is shown"
    how += ". ★ marks the best value of a column; ≈ marks values within seed spread of it. Click a header to sort."
    table.caption = how
    blocks.append(table)
    notes = _measurement_notes(ctx, test_batch)
    if omitted:
        notes.append("Not measured in this study: " + ", ".join(s.label for s in omitted) + ".")
    if notes:
        blocks.append(Bullets(notes, "note"))
    pairs = close_pairs(ctx.finished)
    if pairs:
        lines = [
            f"{p.a} and {p.b} differ by {p.difference * 100:.2f} points of test accuracy, less than their seed "
            f"spread ({p.spread * 100:.2f} points std): the ranking between them is not meaningful."
            for p in pairs
        ]
        blocks.append(Paragraph("Differences smaller than the seed spread:", "p"))
        blocks.append(Bullets(lines, "p"))
    if several_schedules:
        blocks.append(
            Details(
                "Every model × schedule", [configurations_table(ctx.anchor("configurations"), ctx.rows, ctx.target)]
            )
        )
    return Section("Results" + ctx.suffix, ctx.anchor("results"), blocks)


def _measurement_notes(ctx: _Ctx, test_batch: int | None) -> list[str]:
    notes = [
        "Test accuracy is measured once, on the held-out test split, with the checkpoint that early stopping "
        "selected on the validation split; train and test accuracy are never averaged."
    ]
    speeds = [r.speed for r in ctx.runs if r.speed]
    gpu = _gpu_setups(speeds)
    if gpu:
        notes.append(f"GPU throughput: images/s in eval mode after warm-up ({gpu}).")
    if any(s.get("cpu_latency_ms") is not None for s in speeds):
        notes.append("CPU latency: batch 1, median over repeats, in milliseconds.")
    shapes = _distinct(str(list(s.get("input"))) for s in speeds if s.get("input"))
    if shapes:
        notes.append(f"Speed and FLOPs at input {shapes} (C, H, W); FLOPs = 2 × multiply-accumulates.")
    if test_batch:
        notes.append(f"Test time: one pass over the whole test split at batch {test_batch}.")
    return notes


def _comparisons_section(ctx: _Ctx, test_batch: int | None) -> Section:
    rows, colors, figs = ctx.finished, ctx.colors, ctx.figs
    label = "" if len(ctx.schedules) < 2 else " Each model under its selected schedule (see Results)."
    blocks: list[Any] = [
        Paragraph("The comparisons of the MNIST study (its Figures 38–44), for every model." + label, "note")
    ]
    blocks.append(
        figs.image(
            ctx.name("test-loss-accuracy"),
            lambda: fig_compare.fig_test_loss_accuracy(rows, colors),
            "test loss and accuracy per model",
        )
    )
    blocks.append(
        figs.image(
            ctx.name("train-val-test-accuracy"),
            lambda: fig_compare.fig_train_val_test_accuracy(rows, colors),
            "train, validation and test accuracy per model",
        )
    )
    blocks.append(
        figs.image(
            ctx.name("train-test-time"),
            lambda: fig_compare.fig_train_test_time(rows, colors, test_batch),
            "train and test time per model",
        )
    )
    blocks.append(
        figs.image(
            ctx.name("size-params"),
            lambda: fig_compare.fig_size_params(rows, colors),
            "model size, parameters and FLOPs",
        )
    )
    blocks.append(
        figs.image(
            ctx.name("epochs-time-per-epoch"),
            lambda: fig_compare.fig_epochs_time_per_epoch(rows, colors),
            "epochs and time per epoch",
        )
    )
    if ctx.target is not None:
        target = ctx.target
        blocks.append(
            figs.image(
                ctx.name("time-to-target"),
                lambda: fig_compare.fig_time_to_target(rows, colors, target),
                f"epochs and time to {target * 100:g} % accuracy",
            )
        )
    else:
        blocks.append(
            Paragraph("No target accuracy was set for these runs, so epochs and time to target are not shown.", "note")
        )
    return Section("Comparisons" + ctx.suffix, ctx.anchor("comparisons"), blocks)


def _schedules_section(ctx: _Ctx) -> Section:
    title = "Schedules" + ctx.suffix
    if len(ctx.schedules) < 2:
        only = ctx.schedules[0] if ctx.schedules else "none"
        text = f"This study used one schedule ({only}), so the schedule comparison (cosine vs. plateau) is skipped."
        return Section(title, ctx.anchor("schedules"), [Paragraph(text, "note")])
    by_model: dict[str, dict[str, AggregateRow]] = defaultdict(dict)
    for row in ctx.rows:
        if row.ok:
            by_model[row.model][row.schedule] = row
    models = [m for m in ctx.models if m in by_model]
    img = ctx.figs.image(
        ctx.name("schedules"),
        lambda: fig_curves.fig_schedule_comparison(by_model, ctx.colors, models, ctx.schedules),
        "test accuracy and train time of each model under each schedule",
    )
    return Section(title, ctx.anchor("schedules"), [img])


def _curves_section(ctx: _Ctx) -> Section:
    blocks: list[Any] = [
        Paragraph(
            "Per model and schedule, the lowest finished seed: loss and accuracy (train dashed, validation solid), "
            "learning rate on the right axis (grey, dotted, log scale when it spans more than 10x), the selected "
            f"epoch marked. Runs of {fig_curves.SHORT_RUN_EPOCHS} epochs or more are drawn per epoch; shorter runs "
            "against optimiser steps, with the training loss and accuracy averaged over every few steps and "
            "validation, which is measured once per epoch, at each epoch's end.",
            "note",
        )
    ]
    images = []
    for model in ctx.models:
        curves, runs = [], []
        for schedule in ctx.schedules:
            run = _curve_run(ctx, model, schedule)
            if run is None or run.path is None:
                continue
            try:
                table = read_metrics(run.path)
                steps = read_steps(run.path)
            except CnnbenchError as exc:
                blocks.append(Paragraph(str(exc), "warn"))
                continue
            if table is None or len(table) == 0:
                continue
            best = run.figures.get("best_epoch")
            augment = run.config.get("augment")
            augmented = None if augment is None else augment != "none"
            curves.append(fig_curves.Curve(f"{schedule}, seed {run.seed}", table, best, run.status, steps, augmented))
            runs.append(run.run_id)
        if curves:
            drawn = [fig_curves.curve_data(c.table, c.steps) for c in curves]
            images.append(
                ctx.figs.image(
                    ctx.name(f"curves-{model}"),
                    lambda m=model, c=curves: fig_curves.fig_training_curves(m, ctx.colors[m], c, ctx.target),
                    f"{model} training curves",
                    # per column: the run, its x axis and its training points (read by the browser test)
                    data={
                        "runs": ",".join(runs),
                        "curve-x": ",".join(d.x for d in drawn),
                        "curve-points": ",".join(str(d.points) for d in drawn),
                    },
                )
            )
    if images:
        blocks.append(Gallery(images))
    else:
        blocks.append(Paragraph("No metrics.csv in these runs.", "note"))
    return Section("Training curves" + ctx.suffix, ctx.anchor("curves"), blocks)


def _curve_run(ctx: _Ctx, model: str, schedule: str) -> RunRecord | None:
    runs = [r for r in ctx.runs if r.model == model and r.schedule == schedule and r.path is not None]
    finished = [r for r in runs if r.ok]
    pool = finished or [r for r in runs if (r.path / "metrics.csv").is_file()]  # type: ignore[operator]
    return min(pool, key=lambda r: r.seed if r.seed is not None else 0) if pool else None


def _pareto_section(ctx: _Ctx) -> Section:
    blocks: list[Any] = _pareto_speed_blocks(ctx)
    size = _pareto_points(ctx.finished, "size_mb")
    if len(size) >= 2:
        title = "Accuracy vs. model size"
        blocks.append(_pareto_figure(ctx, "pareto-size", size, "model size (MB, fp32)", False, title, "model size"))
    blocks.append(
        Paragraph(
            "A model is on the frontier (black ring, dashed line) when no other model is both at least as accurate "
            "and at least as fast (or small).",
            "note",
        )
    )
    return Section("Accuracy vs. speed and size" + ctx.suffix, ctx.anchor("pareto"), blocks)


def _pareto_speed_blocks(ctx: _Ctx) -> list[Any]:
    """Accuracy against GPU throughput; against CPU latency (saying so) when no GPU figure was measured."""
    speed = _pareto_points(ctx.finished, "gpu_throughput")
    if len(speed) >= 2:
        title = "Accuracy vs. GPU throughput"
        return [_pareto_figure(ctx, "pareto-speed", speed, "GPU throughput (images/s)", True, title, "GPU throughput")]
    latency = _pareto_points(ctx.finished, "cpu_latency_ms")
    if len(latency) < 2:
        return [Paragraph("No speed was measured for two or more models: no accuracy-vs-speed plot.", "note")]
    return [
        Paragraph(
            "No GPU throughput was measured in this study: the speed axis is CPU latency at batch 1 instead.",
            "note",
        ),
        _pareto_figure(
            ctx,
            "pareto-speed",
            latency,
            "CPU latency at batch 1 (ms)",
            False,
            "Accuracy vs. CPU latency (no GPU throughput measured)",
            "CPU latency",
        ),
    ]


def _pareto_points(rows: list[AggregateRow], key: str) -> list[fig_pareto.ParetoPoint]:
    """One point per aggregate row with a positive ``key`` mean: (that mean, test accuracy in %) ± std."""
    out = []
    for r in rows:
        acc, x = r.stats["test_accuracy"], r.stats[key]
        if acc.mean is None or x.mean is None or x.mean <= 0:
            continue
        out.append(
            fig_pareto.ParetoPoint(
                r.model,
                x.mean,
                acc.mean * 100,
                None if x.std is None else x.std,
                None if acc.std is None else acc.std * 100,
            )
        )
    return out


def _pareto_figure(
    ctx: _Ctx, name: str, points: list[fig_pareto.ParetoPoint], x_label: str, maximize_x: bool, title: str, what: str
) -> Any:
    return ctx.figs.image(
        ctx.name(name),
        lambda: fig_pareto.fig_pareto(points, ctx.colors, x_label=x_label, maximize_x=maximize_x, title=title),
        f"accuracy against {what} with the Pareto frontier",
    )


def _classes_section(ctx: _Ctx) -> Section:
    blocks: list[Any] = []
    per_model: dict[str, tuple[list[str], np.ndarray, np.ndarray, int]] = {}
    for model in ctx.models:
        runs = ctx.finished_runs(model)
        summed, per_class, classes, n = None, [], None, 0
        for run in runs:
            try:
                tm = read_test_metrics(run.path)  # type: ignore[arg-type]
            except CnnbenchError as exc:
                blocks.append(Paragraph(str(exc), "warn"))
                continue
            if tm is None or (classes is not None and tm.classes != classes):
                continue
            classes = tm.classes
            summed = tm.confusion if summed is None else summed + tm.confusion
            per_class.append(tm.per_class_accuracy)
            n += 1
        if summed is not None and classes is not None:
            per_model[model] = (classes, summed, np.nanmean(np.stack(per_class), axis=0), n)
    if not per_model:
        return Section(
            "Per-class results" + ctx.suffix,
            ctx.anchor("classes"),
            [Paragraph("No test_metrics.json in these runs.", "note")],
        )
    models = list(per_model)
    class_sets = {tuple(v[0]) for v in per_model.values()}
    if len(class_sets) == 1:
        classes = per_model[models[0]][0]
        acc = np.stack([per_model[m][2] for m in models])  # (M, K)
        seeds = max(v[3] for v in per_model.values())
        note = f"test split; mean over {seeds} seeds" if seeds > 1 else "test split"
        blocks.append(
            ctx.figs.image(
                ctx.name("per-class-accuracy"),
                lambda: fig_classes.fig_per_class_accuracy(models, ctx.colors, classes, acc, note),
                "per-class test accuracy of every model",
            )
        )
    images = []
    for model in models:
        classes, summed, _, n = per_model[model]
        schedule = ctx.chosen[(ctx.dataset, model)].schedule
        note = f"test split, {schedule}, " + (f"counts summed over {n} seeds" if n > 1 else "one seed")
        images.append(
            ctx.figs.image(
                ctx.name(f"confusion-{model}"),
                lambda m=model, s=summed, c=classes, t=note: fig_classes.fig_confusion(m, ctx.colors[m], s, c, t),
                f"{model} confusion matrix",
                wide=False,
            )
        )
    blocks.append(Gallery(images))
    return Section("Per-class results" + ctx.suffix, ctx.anchor("classes"), blocks)


def _map_dims_text(scores: dict[str, ClusterScores]) -> str:
    dims = sorted({s.map_dims for s in scores.values()})
    return " or ".join(f"{d}-D" for d in dims) or "2-D"


def _features_section(ctx: _Ctx) -> Section:
    blocks: list[Any] = []
    scores: dict[str, ClusterScores] = {}
    panels = []
    knees = []
    for model in ctx.models:
        run = _analysed_run(ctx, model)
        if run is None or run.path is None:
            continue
        try:
            analysis = read_analysis(run.path)
        except CnnbenchError as exc:
            blocks.append(Paragraph(str(exc), "warn"))
            analysis = None
        if analysis is not None:
            scores[model] = analysis
        png = read_png(run.path / "tsne.png")
        if png:
            caption = (
                f"{model} ({run.schedule}, seed {run.seed}): t-SNE of the test-set features, "
                "coloured by true class, by K-means cluster and by DBSCAN cluster"
            )
            panels.append(ctx.figs.raw(ctx.name(f"tsne-{model}"), png, f"{model} t-SNE panels", caption))
        knee = read_png(run.path / "knn_distance.png")
        if knee:
            caption = f"{model}: sorted k-NN distances on the t-SNE map; the knee gives DBSCAN's starting eps"
            knees.append(
                ctx.figs.raw(ctx.name(f"knn-distance-{model}"), knee, f"{model} k-NN distances", caption, False)
            )
    if not scores and not panels:
        text = "No feature analysis in these runs (cnnbench embed RUN_DIR writes analysis.json and tsne.png)."
        return Section("Feature analysis" + ctx.suffix, ctx.anchor("features"), [Paragraph(text, "note")])
    if scores:
        models = [m for m in ctx.models if m in scores]
        blocks.append(
            ctx.figs.image(
                ctx.name("cluster-scores"),
                lambda: fig_features.fig_cluster_scores(models, ctx.colors, scores),
                "ARI and NMI of K-means and DBSCAN per model",
                f"Scores of the {_map_dims_text(scores)} t-SNE map of each model's test-set features. "
                "DBSCAN's eps and min_samples were "
                "chosen by a grid search that maximises ARI, so it uses the labels (as the MNIST study did).",
            )
        )
    if panels:
        blocks.append(Gallery(panels))
    if knees:
        blocks.append(Details("k-NN distance curves (how DBSCAN's eps was found)", [Gallery(knees)]))
    return Section("Feature analysis" + ctx.suffix, ctx.anchor("features"), blocks)


def _analysed_run(ctx: _Ctx, model: str) -> RunRecord | None:
    """The lowest-seed finished run of the selected schedule that has analysis files, else any run of the model."""

    def has(run: RunRecord) -> bool:
        return run.path is not None and ((run.path / "analysis.json").is_file() or (run.path / "tsne.png").is_file())

    preferred = [r for r in ctx.finished_runs(model) if has(r)]
    others = [r for r in ctx.runs if r.model == model and r.ok and has(r)]
    pool = preferred or others
    return min(pool, key=lambda r: (r.schedule, r.seed if r.seed is not None else 0)) if pool else None


def _summaries_section(ctx: _Ctx) -> Section:
    from cnnbench.report.document import Cell, Column

    blocks: list[Any] = []
    for model in ctx.models:
        runs = [r for r in ctx.runs if r.model == model and r.path is not None and (r.path / "model.json").is_file()]
        if not runs:
            continue
        run = min(runs, key=lambda r: (not r.ok, r.seed if r.seed is not None else 0))
        try:
            summary = read_model_summary(run.path)  # type: ignore[arg-type]
        except CnnbenchError as exc:
            blocks.append(Paragraph(str(exc), "warn"))
            continue
        if not summary:
            continue
        facts = []
        for key, kind in (("params", "count"), ("trainable_params", "count"), ("size_mb", "mb"), ("flops", "count")):
            if isinstance(summary.get(key), (int, float)):
                facts.append(f"{key.replace('_', ' ')}: {fmt_number(summary[key], kind)}")
        if summary.get("final_feature_map"):
            facts.append(f"final feature map: {summary['final_feature_map']}")
        inner: list[Any] = [Paragraph("; ".join(facts), "p")] if facts else []
        adaptation = summary.get("adaptation") or []
        inner.append(
            Paragraph("Small-input adaptation: " + ("; ".join(map(str, adaptation)) if adaptation else "none"), "note")
        )
        layers = summary.get("layers") or []
        if layers:
            keys = [k for k in ("name", "type", "output_shape", "params") if any(k in layer for layer in layers)]
            rows = [
                [
                    Cell(
                        _layer_text(layer.get(k)),
                        layer.get(k) if isinstance(layer.get(k), (int, float)) else _layer_text(layer.get(k)),
                    )
                    for k in keys
                ]
                for layer in layers
                if isinstance(layer, dict)
            ]
            inner.append(
                Table(ctx.anchor(f"layers-{model}"), [Column(k.replace("_", " ")) for k in keys], rows, sortable=False)
            )
        blocks.append(Details(f"{model} — {len(layers)} layers", inner))
    if not blocks:
        blocks.append(Paragraph("No model.json in these runs.", "note"))
    return Section("Model summaries" + ctx.suffix, ctx.anchor("models"), blocks)


def _layer_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _runs_section(results: Results) -> Section:
    blocks: list[Any] = []
    bad = [r for r in results.runs if not r.ok]
    if bad:
        blocks.append(Paragraph(f"{len(bad)} runs did not finish; they are left out of every mean and figure.", "warn"))
        blocks.append(runs_table("runs-failed", bad))
    else:
        blocks.append(Paragraph(f"All {len(results.runs)} runs finished.", "note"))
    blocks.append(Details(f"All {len(results.runs)} runs", [runs_table("runs-all", results.runs)]))
    return Section("Runs", "runs", blocks)
