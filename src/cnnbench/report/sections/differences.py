"""Which differences hold: the "Findings" section at the top of the page (one sentence per dataset),
and the blocks of each dataset's Results that back it — accuracy intervals and the test against the
best, the pairwise table, the intervals of the cost to the target — with the method and its assumptions.
The numbers come from ``cnnbench.report.significance``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cnnbench.report.document import Bullets, Cell, Column, Paragraph, Section, Table
from cnnbench.report.sections.context import SectionContext
from cnnbench.report.significance import TO_TARGET, DatasetComparison, ModelAccuracy, TargetCost
from cnnbench.report.stats import MCNEMAR, PAIRED_SEEDS_IMAGES, SEEDS, SEEDS_AND_IMAGES, WILSON, Interval, format_p
from cnnbench.report.tables import fmt_number

# how each TO_TARGET figure is named and printed
TARGET_LABELS = {
    "steps_to_target": ("Steps", "count"),
    "images_to_target": ("Images", "count"),
    "epochs_to_target": ("Epochs", "epochs"),
    "time_to_target_s": ("Seconds", "seconds"),
}


def findings_section(contexts: Sequence[SectionContext]) -> Section | None:
    """One sentence per dataset on top of the page: which differences the data supports."""
    lines = []
    for ctx in contexts:
        comparison = ctx.comparison
        if comparison is None or len(comparison.models) < 2:
            continue
        text = comparison.summary or (comparison.notes[0] if comparison.notes else "")
        if text:
            lines.append(f"{ctx.dataset}: {text}" if ctx.suffix else text)
    if not lines:
        return None
    blocks: list[Any] = [Paragraph(line) for line in lines]
    blocks.append(
        Paragraph(
            "A difference holds when its test, corrected for the number of models compared (Holm), gives p < 0.05; "
            "“cannot be told apart” means these test images and seeds do not show a difference, not that there is "
            "none. Details and assumptions under each dataset's Results.",
            "note",
        )
    )
    return Section("Findings", "findings", blocks)


def differences_blocks(ctx: SectionContext) -> list[Any]:
    """The intervals, tests and notes of one dataset, below its results table."""
    comparison = ctx.comparison
    if comparison is None or not comparison.models:
        return []
    blocks: list[Any] = [
        Paragraph("Which differences hold" + (f": {comparison.summary}" if comparison.summary else ""))
    ]
    blocks.append(_accuracy_table(ctx, comparison))
    if comparison.pairs:
        blocks.append(_pairwise_table(ctx, comparison))
    target = _target_table(ctx, comparison)
    if target is not None:
        blocks.append(target)
    notes = list(comparison.notes)
    if comparison.models and all(len(m.seeds) == 1 for m in comparison.models):
        notes.append(
            "Every model was trained with one seed: the intervals and tests cover the choice of test images only, "
            "and say nothing about how much another seed would change a model's accuracy."
        )
    if notes:
        blocks.append(Bullets(notes, "note"))
    return blocks


def fmt_interval(interval: Interval | None, kind: str) -> str:
    """``[91.52, 93.21]`` in the unit of the column (percent for accuracies)."""
    if interval is None:
        return ""
    return f"[{fmt_number(interval.low, kind)}, {fmt_number(interval.high, kind)}]"


def interval_title(model: ModelAccuracy) -> str:
    """Tooltip of an accuracy interval: its method, and the per-seed accuracies behind it."""
    if model.interval is None:
        return "test size unknown: no interval"
    text = f"{model.interval.level:.0%} {model.interval.method}"
    if model.images:
        text += f" ({model.images:,} images)"
    if len(model.per_seed) > 1:
        seeds = ", ".join(f"seed {s}: {fmt_number(a, 'pct')}" for s, a in zip(model.seeds, model.per_seed, strict=True))
        text += f"; per seed: {seeds}"
    return text


def verdict_text(model: ModelAccuracy) -> str:
    if model.is_best:
        return "the most accurate"
    if model.distinguishable_from_best is None:
        return "not tested"
    return "below the best" if model.distinguishable_from_best else "cannot be told apart from the best"


def _accuracy_table(ctx: SectionContext, comparison: DatasetComparison) -> Table:
    several = any(len(m.seeds) > 1 for m in comparison.models)
    columns = [Column("Model"), Column("Test acc (%)", "mean over the finished seeds")]
    columns.append(Column("95 % interval", "of the test accuracy; the method is in the caption"))
    if several:
        columns.append(Column("Per seed (%)", "test accuracy of each finished seed"))
    columns += [
        Column("p vs. best", "against the most accurate model, Holm-adjusted over the models compared with it"),
        Column("Verdict", f"whether the difference from the best holds (p < {comparison.alpha:g})"),
    ]
    rows = []
    for m in comparison.models:
        cells = [
            Cell(m.model, m.model),
            Cell("" if m.accuracy is None else fmt_number(m.accuracy, "pct"), m.accuracy, best=m.is_best),
            Cell(fmt_interval(m.interval, "pct"), m.interval.low if m.interval else None, title=interval_title(m)),
        ]
        if several:
            per_seed = ", ".join(fmt_number(a, "pct") for a in m.per_seed)
            cells.append(Cell(per_seed, per_seed, title=", ".join(f"seed {s}" for s in m.seeds)))
        p = m.p_vs_best
        test = m.vs_best
        title = None
        if test is not None:
            title = f"{test.method}; difference {test.difference * 100:+.2f} points; unadjusted p = {test.p_value:.3g}"
            if test.only_a is not None:
                title += f"; images only {m.model} got right: {test.only_a}, only the best: {test.only_b}"
        cells.append(Cell("" if p is None else format_p(p), p, title=title))
        verdict = verdict_text(m)
        cells.append(Cell(verdict, verdict))
        rows.append(cells)
    return Table(ctx.anchor("accuracy-intervals"), columns, rows, caption=_method_caption(comparison))


def _method_caption(comparison: DatasetComparison) -> str:
    intervals = {m.interval.method for m in comparison.models if m.interval}
    tests = {m.vs_best.method for m in comparison.models if m.vs_best} | {p.test.method for p in comparison.pairs}
    parts = []
    if WILSON in intervals:
        parts.append("one seed: the 95 % interval is the Wilson score interval over the test images")
    if SEEDS_AND_IMAGES in intervals:
        parts.append(
            "several seeds: a t interval whose variance adds the spread of the per-seed accuracies to the per-image "
            "variance (Welch–Satterthwaite degrees of freedom; slightly conservative)"
        )
    if SEEDS in intervals:
        parts.append("a t interval over the per-seed accuracies (test size unknown)")
    if MCNEMAR in tests:
        parts.append("McNemar's exact test compares two models on the images where exactly one of them is right")
    if PAIRED_SEEDS_IMAGES in tests:
        parts.append(
            "with two or more seeds in common, a t test on the per-image differences, paired by seed and by image, "
            "over the same variance as the intervals"
        )
    text = "; ".join(parts)
    if tests:
        compared = sum(1 for m in comparison.models if m.vs_best)
        text += (
            f". p vs. best is Holm-adjusted over the {_count(compared, 'model')} compared with the most accurate one. "
            "Both assume the test images are independent draws from the data the models will meet"
        )
    return (text[0].upper() + text[1:] + ".") if text else ""


def _pairwise_table(ctx: SectionContext, comparison: DatasetComparison) -> Table:
    names = [m.model for m in comparison.models if m.model in {n for p in comparison.pairs for n in (p.a, p.b)}]
    columns = [Column("Model (row) vs.")] + [Column(n, f"the row's model against {n}") for n in names]
    rows = []
    for a in names:
        cells = [Cell(a, a)]
        for b in names:
            pair = comparison.pair(a, b) if a != b else None
            if pair is None:
                cells.append(Cell("—", None))
                continue
            text = f"{pair.verdict} ({format_p(pair.p_holm)})"
            title = f"{pair.test.method}; {a} − {b}: {pair.test.difference * 100:+.2f} points"
            if pair.test.only_a is not None:
                title += f"; right only for {a}: {pair.test.only_a}, only for {b}: {pair.test.only_b}"
            cells.append(Cell(text, pair.p_holm, title=title))
        rows.append(cells)
    caption = (
        f"Every pair of models: better / worse when the difference holds (Holm-adjusted over the "
        f"{_count(len(comparison.pairs), 'pair')}, p < {comparison.alpha:g}); same when these test images cannot "
        "tell them apart — not a proof that they are equal."
    )
    return Table(ctx.anchor("pairwise"), columns, rows, caption=caption, sortable=False)


def _target_table(ctx: SectionContext, comparison: DatasetComparison) -> Table | None:
    """Cost to the target over seeds, one column per figure measured; None unless some model has ≥ 2 values."""
    figures = [f for f in TO_TARGET if any(c.interval for c in comparison.to_target.get(f, []))]
    if not figures:
        return None
    models = [m.model for m in comparison.models]
    columns = [Column("Model")]
    columns += [Column(f"{TARGET_LABELS[f][0]} to target", "mean [95 % interval] over seeds") for f in figures]
    rows = []
    for model in models:
        cells = [Cell(model, model)]
        for figure in figures:
            cost = next((c for c in comparison.to_target[figure] if c.model == model), None)
            cells.append(_target_cell(cost, TARGET_LABELS[figure][1]))
        rows.append(cells)
    caption = (
        "Cost to reach the target accuracy: mean over the seeds that reached it, with a t interval over those seeds "
        "(k/n: only k of n seeds reached it, and the mean flatters the model). ★ the fastest of the models whose "
        "every seed reached the target; ≈ cannot be told apart from it (Welch's t test over seeds, Holm-adjusted)."
    )
    return Table(ctx.anchor("target-intervals"), columns, rows, caption=caption)


def _target_cell(cost: TargetCost | None, kind: str) -> Cell:
    if cost is None:
        return Cell("not reached", None)
    text = fmt_number(cost.mean, kind) if cost.mean is not None else ""
    if cost.interval is not None:
        text += " " + fmt_interval(cost.interval, kind)
    if len(cost.values) < cost.seeds:
        text += f" ({len(cost.values)}/{cost.seeds})"
    title = None
    if cost.vs_fastest is not None and cost.p_vs_fastest is not None:
        title = f"{cost.vs_fastest.method} against the fastest: {format_p(cost.p_vs_fastest)} (Holm)"
    return Cell(text, cost.mean, best=cost.is_fastest, tie=cost.distinguishable_from_fastest is False, title=title)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
