"""The "Dataset samples" section (the sample grid of each samples.npz and the augmentation figure of
each augmented.npz), ``dataset_context`` (what one dataset's sections share), and ``dataset_sections``:
which sections one dataset gets, and in what order.
"""

from __future__ import annotations

import math
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cnnbench.errors import CnnbenchError
from cnnbench.report.aggregate import AggregateRow, select_schedules
from cnnbench.report.document import Paragraph, Section
from cnnbench.report.intervals import PredictionStore
from cnnbench.report.records import Results, RunRecord
from cnnbench.report.sections.classes import classes_section
from cnnbench.report.sections.context import Figures, SectionContext, common_test_batch, common_value
from cnnbench.report.sections.curves import curves_section
from cnnbench.report.sections.features import features_section
from cnnbench.report.sections.pareto import pareto_section
from cnnbench.report.sections.results import comparisons_section, results_section, schedules_section
from cnnbench.report.sections.runs import summaries_section
from cnnbench.report.sections.tuning import tuning_section
from cnnbench.report.significance import compare_dataset
from cnnbench.rundir.files import read_png

# scratch folders in the report's directory; the next report build removes those a killed build left
REPORT_TEMP_PREFIX = ".report-tmp-"


def samples_section(results: Results, figs: Figures, out_dir: Path | None) -> Section | None:
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
            with tempfile.TemporaryDirectory(dir=out_dir, prefix=REPORT_TEMP_PREFIX) as tmp:
                png_path = Path(tmp) / "samples.png"
                per_class = min(8, max(1, len(labels) // max(1, len(classes))))
                title = f"{name}: training images, one row per class" if name else None
                draw_sample_grid(images, labels, classes, png_path, per_class=per_class, title=title)
                png = read_png(png_path)
        except (
            OSError,
            KeyError,
            ValueError,
            IndexError,
            TypeError,
            EOFError,
            zipfile.BadZipFile,
            CnnbenchError,
        ) as exc:
            # a cut or hand-edited samples.npz: np.load raises BadZipFile, labels out of range an IndexError
            blocks.append(Paragraph(f"{path}: could not draw the sample grid ({exc})", "warn"))
            continue
        if png:
            caption = f"Training images per class, from {path}"
            blocks.append(figs.raw(f"samples-{i}" if i else "samples", png, "dataset sample grid", caption))
    blocks += _augmentation_blocks(results, figs, out_dir, draw_augmentation_grid)
    return Section("Dataset samples", "samples", blocks) if blocks else None


def _augmentation_blocks(results: Results, figs: Figures, out_dir: Path | None, draw: Callable) -> list[Any]:
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
            with tempfile.TemporaryDirectory(dir=out_dir, prefix=REPORT_TEMP_PREFIX) as tmp:
                png = read_png(draw(preview, Path(tmp) / "augmentation.png"))
        except (OSError, ValueError, IndexError, TypeError, CnnbenchError) as exc:
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


def dataset_context(
    results: Results,
    dataset: str,
    rows: list[AggregateRow],
    order: list[str],
    colors: dict[str, str],
    figs: Figures,
    several: bool,
    store: PredictionStore | None = None,
) -> SectionContext:
    """One dataset's runs, rows, selected schedules and the comparison of its models."""
    suffix = f" — {dataset}" if several else ""
    runs = results.for_dataset(dataset)
    chosen = select_schedules(rows)
    models = [m for m in order if (dataset, m) in chosen]
    by_cost = stopped_at_target(runs)
    if by_cost:  # runs that train to a target are ranked by what reaching it cost (DAWNBench, MLPerf Training)
        models.sort(key=lambda m: cost_rank(chosen[(dataset, m)]))
    shown = [chosen[(dataset, m)] for m in models]
    finished = [r for r in shown if r.ok > 0]
    schedules = sorted({r.schedule for r in rows})
    target = common_value(r.figures.get("target_accuracy") for r in runs)
    ctx = SectionContext(dataset, runs, rows, chosen, models, shown, finished, schedules, colors, figs, target, suffix)
    ctx.comparison = compare_dataset(dataset, finished, store)
    ctx.ranked_by_cost = by_cost
    return ctx


def stopped_at_target(runs: list[RunRecord]) -> bool:
    """Every finished run of the dataset trained until its target (``stop_at_target``): rank by cost."""
    finished = [r for r in runs if r.ok]
    return bool(finished) and all(r.config.get("stop_at_target") is True for r in finished)


def cost_rank(row: AggregateRow) -> tuple[float, float, float]:
    """Images to the target (fewest first), then seconds; models that never reached it last, by accuracy."""
    images, seconds = row.stats["images_to_target"].mean, row.stats["time_to_target_s"].mean
    if images is None:
        return (math.inf, math.inf, -(row.stats["test_accuracy"].mean or 0.0))
    return (float(images), float(seconds if seconds is not None else math.inf), 0.0)


def dataset_sections(results: Results, ctx: SectionContext) -> list[Section]:
    """The sections of one dataset, in page order."""
    test_batch = common_test_batch(ctx.runs)
    sections = [results_section(ctx, test_batch, results)]
    tuning = tuning_section(ctx)
    if tuning is not None:
        sections.append(tuning)
    if ctx.finished:
        sections.append(comparisons_section(ctx, test_batch))
        sections.append(schedules_section(ctx))
        sections.append(curves_section(ctx))
        sections.append(pareto_section(ctx))
        sections.append(classes_section(ctx))
        sections.append(features_section(ctx))
    sections.append(summaries_section(ctx))
    return sections
