"""A dataset's "Training curves" section: per model, one figure with the lowest finished seed of
each schedule, read from metrics.csv and steps.csv.
"""

from __future__ import annotations

from typing import Any

from cnnbench.errors import CnnbenchError
from cnnbench.report import fig_curves
from cnnbench.report.document import Gallery, Paragraph, Section
from cnnbench.report.records import RunRecord
from cnnbench.report.sections.context import SectionContext
from cnnbench.rundir import RunFiles
from cnnbench.rundir.layout import METRICS_FILE
from cnnbench.rundir.tables import read_metrics, read_steps


def curves_section(ctx: SectionContext) -> Section:
    blocks: list[Any] = [
        Paragraph(
            "Per model and schedule, the lowest finished seed: loss and accuracy (train dashed, validation solid), "
            "learning rate on the right axis (grey, dotted, log scale when it spans more than 10x), the selected "
            f"checkpoint marked. Runs of {fig_curves.SHORT_RUN_EPOCHS} epochs or more are drawn per epoch; shorter "
            "runs against optimiser steps, with the training loss and accuracy averaged over every few steps and "
            "validation at each pass (each epoch's end, or every --val-every-steps steps).",
            "note",
        )
    ]
    images = []
    for model in ctx.models:
        curves, runs = _model_curves(ctx, model, blocks)
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
        blocks.append(Paragraph(f"No {METRICS_FILE} in these runs.", "note"))
    return Section("Training curves" + ctx.suffix, ctx.anchor("curves"), blocks)


def _model_curves(ctx: SectionContext, model: str, warnings: list[Any]) -> tuple[list, list[str]]:
    """(curves, run ids) of one model: its lowest finished seed per schedule; unreadable files are warnings."""
    curves, runs = [], []
    for schedule in ctx.schedules:
        run = _curve_run(ctx, model, schedule)
        if run is None or run.path is None:
            continue
        try:
            table = read_metrics(run.path)
            steps = read_steps(run.path)
        except CnnbenchError as exc:
            warnings.append(Paragraph(str(exc), "warn"))
            continue
        if table is None or len(table) == 0:
            continue
        best = run.figures.get("best_epoch")
        curves.append(fig_curves.Curve(f"{schedule}, seed {run.seed}", table, best, run.status, steps, run.augmented))
        runs.append(run.run_id)
    return curves, runs


def _curve_run(ctx: SectionContext, model: str, schedule: str) -> RunRecord | None:
    runs = [r for r in ctx.runs if r.model == model and r.schedule == schedule and r.path is not None]
    finished = [r for r in runs if r.ok]
    pool = finished or [r for r in runs if RunFiles(r.path).metrics.is_file()]  # type: ignore[operator]
    return min(pool, key=lambda r: r.seed if r.seed is not None else 0) if pool else None
