"""A dataset's "Tuning" section: the procedure every model's learning rate came from (``--lr auto``),
each model's pick, and its range-test curve (from lr_find.csv and summary.json's ``lr_find``).
"""

from __future__ import annotations

from typing import Any

from cnnbench.errors import ResultsError
from cnnbench.report import fig_lr_find
from cnnbench.report.document import Cell, Column, Paragraph, Section, Table
from cnnbench.report.records import RunRecord
from cnnbench.report.sections.context import SectionContext
from cnnbench.rundir.layout import RunFiles
from cnnbench.rundir.tables import LrFindCurve, read_lr_find


def tuning_section(ctx: SectionContext) -> Section | None:
    """None when no run of the dataset picked its learning rate by the range test."""
    tuned = [r for r in ctx.runs if r.ok and isinstance(r.summary.get("lr_find"), dict)]
    if not tuned:
        return None
    blocks: list[Any] = [Paragraph(procedure_text(tuned), "p")]
    blocks.append(_picks_table(ctx, tuned))
    curves, problems = [], []
    for model in ctx.models:
        run = min((r for r in tuned if r.model == model and r.path is not None), key=_seed_key, default=None)
        if run is None:
            continue
        try:
            curve = read_lr_find(run.path)  # type: ignore[arg-type]
        except ResultsError as exc:
            problems.append(str(exc))
            continue
        damage = _damage(run, curve)
        if damage:
            problems.append(f"{model}: {RunFiles(run.path).lr_find} {damage}")  # type: ignore[arg-type]
        if curve is not None and len(curve.lr):
            curves.append((model, curve))
    if curves:
        blocks.append(
            ctx.figs.image(
                ctx.name("lr-find"),
                lambda: fig_lr_find.fig_lr_find(curves, ctx.colors),
                "learning-rate range test per model",
                "Each model's range test (its lowest seed): the loss at each step of the ramp (faint), its "
                "smoothed value (the line the rule reads) and the picked learning rate (dashed).",
            )
        )
    blocks += [Paragraph(p, "warn") for p in problems]
    return Section("Tuning" + ctx.suffix, ctx.anchor("tuning"), blocks)


def procedure_text(tuned: list[RunRecord]) -> str:
    """The tuning procedure in words, from the runs' own records (the same for every model, or said otherwise)."""
    ramps = {
        (f.get("steps"), f.get("start_lr"), f.get("end_lr"), f.get("rule"))
        for f in (r.summary["lr_find"] for r in tuned)
    }
    if len(ramps) == 1:
        steps, start, end, rule = next(iter(ramps))
        ramp = (
            f"a learning-rate range test of {steps} optimiser steps, the rate growing exponentially from "
            f"{start:g} to {end:g}"
        )
        fairness = "The same ramp and rule for every model is this comparison's fairness rule"
    else:
        ramp = "a learning-rate range test"
        rule = ", ".join(sorted({str(r[3]) for r in ramps}))
        fairness = f"The runs used {len(ramps)} different ramps, so their tuning budgets differ"
    return (
        f"Every model's learning rate was picked by the same procedure ({len(tuned)} runs): {ramp}, from the "
        "model's seeded initial weights and with the run's own optimiser, batch and regularisation; the rule "
        f"'{rule}' picks the rate half a decade below the one where the smoothed loss is lowest (docs/training.md). "
        f"{fairness}: equal procedure, not equal constants (fastai's lr_find, Lightning's Tuner.lr_find). The "
        "range tests' steps are not counted in the steps to the target; their seconds are in the table below."
    )


def _damage(run: RunRecord, curve: LrFindCurve | None) -> str | None:
    """What is wrong with a tuned run's lr_find.csv (missing, fewer rows than the test took, no pick), or None."""
    taken = run.summary["lr_find"].get("steps_taken")
    if curve is None:
        return "is missing: this model's range test is left out of the figure"
    rows = len(curve.lr)
    if isinstance(taken, int) and rows < taken:
        return (
            f"holds {rows} readable rows of the {taken} steps the test took (damaged or edited): its curve is partial"
        )
    if curve.picked is None:
        return "marks no picked step (damaged or edited): its pick is not drawn"
    return None


def _seed_key(run: RunRecord) -> tuple[int, str]:
    return (run.seed if run.seed is not None else 1 << 30, run.run_id)


def _picks_table(ctx: SectionContext, tuned: list[RunRecord]) -> Table:
    columns = [
        Column("Model"),
        Column("Picked lr", "the learning rate each run trained with (per seed)"),
        Column("Range-test steps", "steps taken of those planned (the ramp stops once the loss diverges)"),
        Column("Range-test time (s)", "wall time of the test (this machine, its load); 'cached' when a run read it"),
    ]
    rows = []
    for model in ctx.models:
        runs = sorted((r for r in tuned if r.model == model), key=_seed_key)
        if not runs:
            continue
        finds = [r.summary["lr_find"] for r in runs]
        picks = ", ".join(
            f"{f.get('lr', float('nan')):.2g}" + (f" (s{r.seed})" if len(runs) > 1 else "")
            for r, f in zip(runs, finds, strict=True)
        )
        steps = sorted({f"{f.get('steps_taken', '?')}/{f.get('steps', '?')}" for f in finds})
        seconds = [float(f.get("seconds") or 0.0) for f in finds if not f.get("cached")]
        rows.append(
            [
                Cell(model, model),
                Cell(picks, finds[0].get("lr")),
                Cell(", ".join(steps), None),
                Cell(f"{max(seconds):.1f}", max(seconds)) if seconds else Cell("cached", None),
            ]
        )
    return Table(ctx.anchor("lr-picks"), columns, rows)
