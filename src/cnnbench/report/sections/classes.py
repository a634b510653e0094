"""A dataset's "Per-class results" section: every model's per-class test accuracy and each model's
confusion matrix, from the test_metrics.json of its finished runs.
"""

from __future__ import annotations

import warnings as _warnings
from typing import Any

import numpy as np

from cnnbench.errors import CnnbenchError
from cnnbench.report import fig_classes
from cnnbench.report.document import Gallery, Paragraph, Section
from cnnbench.report.sections.context import SectionContext
from cnnbench.rundir.files import read_test_metrics
from cnnbench.rundir.layout import TEST_METRICS_FILE


def classes_section(ctx: SectionContext) -> Section:
    blocks: list[Any] = []
    per_model = {}
    for model in ctx.models:
        summed = _summed_test_metrics(ctx.finished_runs(model), blocks)
        if summed is not None:
            per_model[model] = summed
    if not per_model:
        return Section(
            "Per-class results" + ctx.suffix,
            ctx.anchor("classes"),
            [Paragraph(f"No {TEST_METRICS_FILE} in these runs.", "note")],
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


def _summed_test_metrics(runs, warnings: list[Any]) -> tuple[list[str], np.ndarray, np.ndarray, int] | None:
    """(classes, confusion summed over the runs, mean per-class accuracy, runs) of one model's finished runs;
    an unreadable test_metrics.json is a warning in ``warnings``."""
    summed, per_class, classes, n = None, [], None, 0
    for run in runs:
        try:
            tm = read_test_metrics(run.path)  # type: ignore[arg-type]
        except CnnbenchError as exc:
            warnings.append(Paragraph(str(exc), "warn"))
            continue
        if tm is None or (classes is not None and tm.classes != classes):
            continue
        classes = tm.classes
        summed = tm.confusion if summed is None else summed + tm.confusion
        per_class.append(tm.per_class_accuracy)
        n += 1
    if summed is None or classes is None:
        return None
    with _warnings.catch_warnings():  # a class absent from every run's test split stays NaN: no warning
        _warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(np.stack(per_class), axis=0)
    return classes, summed, mean, n
