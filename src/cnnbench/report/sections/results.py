"""A dataset's "Results" table (with its measurement notes, then which differences hold: intervals,
tests and the pairwise table of sections/differences.py), its "Comparisons" figures (those of the MNIST
study) and its "Schedules" comparison.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from cnnbench.report import fig_compare, fig_curves
from cnnbench.report.aggregate import AggregateRow
from cnnbench.report.document import Bullets, Details, Paragraph, Section
from cnnbench.report.records import Results
from cnnbench.report.sections.context import SectionContext, distinct, gpu_setups
from cnnbench.report.sections.differences import differences_blocks
from cnnbench.report.tables import configurations_table, results_columns, results_table


def results_section(ctx: SectionContext, test_batch: int | None, results: Results) -> Section:
    blocks: list[Any] = []
    several_schedules = len(ctx.schedules) > 1
    specs = results_columns(ctx.target, test_batch, by_cost=ctx.ranked_by_cost)
    table, omitted = results_table(ctx.anchor("results-table"), ctx.shown, specs, several_schedules, ctx.comparison)
    seeds = sorted({s for r in ctx.shown for s in r.seeds})
    if several_schedules:
        how = (
            "One row per model, under the schedule with its best mean validation accuracy (chosen on validation, "
            "never on test)"
        )
    else:
        how = f"One row per model (schedule: {ctx.schedules[0]})" if ctx.schedules else "One row per model"
    how += f"; mean ± std over {len(seeds)} seeds" if len(seeds) > 1 else "; one seed, so no spread is shown"
    if ctx.ranked_by_cost:
        how += (
            ". Every run trained until its validation accuracy reached the target: models are ranked by the "
            "training images it took (then seconds), and tested with the checkpoint that reached it"
        )
    how += (
        ". ★ marks the best value of a column; ≈ marks a value that cannot be told apart from it by a test: the test "
        "accuracy against the most accurate model, the cost to the target against the fastest (below). "
        "Click a header to sort."
    )
    table.caption = how
    blocks.append(table)
    notes = _measurement_notes(ctx, test_batch)
    if omitted:
        notes.append("Not measured in this study: " + ", ".join(s.label for s in omitted) + ".")
    if notes:
        blocks.append(Bullets(notes, "note"))
    blocks += differences_blocks(ctx)
    if several_schedules:
        blocks.append(
            Details(
                "Every model × schedule", [configurations_table(ctx.anchor("configurations"), ctx.rows, ctx.target)]
            )
        )
    return Section("Results" + ctx.suffix, ctx.anchor("results"), blocks)


def _measurement_notes(ctx: SectionContext, test_batch: int | None) -> list[str]:
    notes = [
        "Test accuracy is measured once, on the held-out test split, with the checkpoint selected on the "
        "validation split (the best validation pass; for a run that stops at its target, the pass that reached "
        "it); train and test accuracy are never averaged."
    ]
    speeds = [r.speed for r in ctx.runs if r.speed]
    gpu = gpu_setups(speeds)
    if gpu:
        notes.append(f"GPU throughput: images/s in eval mode after warm-up ({gpu}).")
    if any(s.get("cpu_latency_ms") is not None for s in speeds):
        notes.append("CPU latency: batch 1, median over repeats, in milliseconds.")
    shapes = distinct(str(list(s.get("input"))) for s in speeds if s.get("input"))
    if shapes:
        notes.append(f"Speed and FLOPs at input {shapes} (C, H, W); FLOPs = 2 × multiply-accumulates.")
    if test_batch:
        notes.append(f"Test time: one pass over the whole test split at batch {test_batch}.")
    return notes


def comparisons_section(ctx: SectionContext, test_batch: int | None) -> Section:
    rows, colors, figs = ctx.finished, ctx.colors, ctx.figs
    label = "" if len(ctx.schedules) < 2 else " Each model under its selected schedule (see Results)."
    blocks: list[Any] = [
        Paragraph("The comparisons of the MNIST study (its Figures 38–44), for every model." + label, "note")
    ]
    figures = [
        (
            "test-loss-accuracy",
            lambda: fig_compare.fig_test_loss_accuracy(rows, colors),
            "test loss and accuracy per model",
        ),
        (
            "train-val-test-accuracy",
            lambda: fig_compare.fig_train_val_test_accuracy(rows, colors),
            "train, validation and test accuracy per model",
        ),
        (
            "train-test-time",
            lambda: fig_compare.fig_train_test_time(rows, colors, test_batch),
            "train and test time per model",
        ),
        ("size-params", lambda: fig_compare.fig_size_params(rows, colors), "model size, parameters and FLOPs"),
        (
            "epochs-time-per-epoch",
            lambda: fig_compare.fig_epochs_time_per_epoch(rows, colors),
            "epochs and time per epoch",
        ),
    ]
    blocks += [figs.image(ctx.name(name), draw, alt) for name, draw, alt in figures]
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


def schedules_section(ctx: SectionContext) -> Section:
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
