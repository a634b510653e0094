"""The report's tables as ``document.Table``: the results table (one row per model), configurations, runs.

Cells show mean ± std over seeds; each carries the raw mean for sorting, and the best value of a
column is marked (with the values a test cannot tell apart from it marked as ties).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cnnbench.report.aggregate import HIGHER_IS_BETTER, AggregateRow, Stat, best_value
from cnnbench.report.document import Cell, Column, Table
from cnnbench.report.records import RunRecord
from cnnbench.report.significance import DatasetComparison
from cnnbench.report.stats import format_p


@dataclass(frozen=True)
class ColumnSpec:
    key: str
    label: str
    title: str  # tooltip: the definition and unit
    kind: str  # pct | loss | count | seconds | epochs | mb | ips | ms


def results_columns(target: float | None, test_batch: int | None, by_cost: bool = False) -> list[ColumnSpec]:
    """The figures of the results table, in order (issue 7, plus top-5 for the Caltech convention).

    Args:
        by_cost: the runs trained until their target: the costs of reaching it come first (images, steps,
            seconds), then the test accuracy of the checkpoint that reached it.
    """
    pct = f"{target * 100:g} %" if target else "target"
    batch = f"batch {test_batch}" if test_batch else "the run's test batch size"
    specs = _result_specs(pct, batch)
    if not by_cost:
        return [s for s in specs if s.key not in ("images_to_target", "steps_to_target")]
    first = ("images_to_target", "steps_to_target", "time_to_target_s", "test_accuracy")
    ordered = [next(s for s in specs if s.key == k) for k in first] + [s for s in specs if s.key not in first]
    return [
        ColumnSpec(s.key, "Test acc at the stop (%)", s.title + ", with the checkpoint that reached the target", s.kind)
        if s.key == "test_accuracy"
        else s
        for s in ordered
    ]


def _result_specs(pct: str, batch: str) -> list[ColumnSpec]:
    return [
        ColumnSpec("params", "Params", "parameters (count)", "count"),
        ColumnSpec("size_mb", "Size (MB)", "fp32 weights on disk, MB", "mb"),
        ColumnSpec("flops", "FLOPs", "FLOPs per image at the run's input size (2 × MACs)", "count"),
        ColumnSpec("test_accuracy", "Test acc (%)", "top-1 accuracy on the held-out test split, once", "pct"),
        ColumnSpec("test_loss", "Test loss", "cross-entropy on the test split", "loss"),
        ColumnSpec("test_top5", "Top-5 (%)", "top-5 accuracy on the test split", "pct"),
        ColumnSpec("test_mean_class_accuracy", "Mean class acc (%)", "mean of the per-class test accuracies", "pct"),
        ColumnSpec("best_val_accuracy", "Best val acc (%)", "best validation accuracy (selects the checkpoint)", "pct"),
        ColumnSpec("epochs_run", "Epochs", "epochs trained (early stopping may end sooner)", "epochs"),
        ColumnSpec(
            "train_time_s", "Train time (s)", "wall time of the training epochs, evaluation excluded", "seconds"
        ),
        ColumnSpec("time_per_epoch_s", "s / epoch", "train time per epoch, seconds", "seconds"),
        ColumnSpec("epochs_to_target", f"Epochs to {pct}", f"first epoch whose validation accuracy ≥ {pct}", "epochs"),
        ColumnSpec(
            "time_to_target_s", f"Time to {pct} (s)", f"train time until validation accuracy ≥ {pct}", "seconds"
        ),
        ColumnSpec(
            "images_to_target", f"Images to {pct}", f"training images until validation accuracy ≥ {pct}", "count"
        ),
        ColumnSpec("steps_to_target", f"Steps to {pct}", f"optimiser steps until validation accuracy ≥ {pct}", "count"),
        ColumnSpec("test_time_s", "Test time (s)", f"one pass over the whole test split at {batch}", "seconds"),
        ColumnSpec("gpu_throughput", "GPU img/s", "inference throughput on the GPU, images per second", "ips"),
        ColumnSpec("cpu_latency_ms", "CPU latency (ms)", "inference latency on the CPU at batch 1, median, ms", "ms"),
        ColumnSpec("onnx_latency_ms", "ONNX latency (ms)", "ONNX Runtime latency on the CPU at batch 1, ms", "ms"),
    ]


def fmt_number(value: float, kind: str) -> str:
    """One value in the unit of its column."""
    if kind == "pct":
        return f"{value * 100:.2f}"
    if kind == "loss":
        return f"{value:.4f}"
    if kind == "count":
        for div, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
            if abs(value) >= div:
                return f"{value / div:.3g}{suffix}"
        return f"{value:.0f}"
    if kind == "seconds":
        return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    if kind == "epochs":
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    if kind == "mb":
        return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if kind == "ips":
        return f"{value:,.0f}"
    if kind == "ms":
        return f"{value:.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:.4g}"


def fmt_stat(stat: Stat, kind: str) -> str:
    """``mean ± std`` (std only with two or more seeds), or an empty string."""
    if stat.mean is None:
        return ""
    text = fmt_number(stat.mean, kind)
    if stat.std is not None and kind not in ("count", "mb"):  # sizes do not vary with the seed
        text += " ± " + fmt_number(stat.std, kind if kind != "count" else "count")
    return text


def results_table(
    table_id: str,
    rows: Sequence[AggregateRow],
    specs: Sequence[ColumnSpec],
    show_schedule: bool,
    comparison: DatasetComparison | None = None,
) -> tuple[Table, list[ColumnSpec]]:
    """One row per model; columns with no value in any row are left out and returned.

    With ``comparison`` (cnnbench.report.significance), the test accuracy is followed by its 95 %
    interval, and ≈ marks the values that cannot be told apart from the best: test accuracies by
    the paired test against the most accurate model, costs to the target by Welch's test against the
    fastest; no other column carries ≈ (no test stands behind it).

    Returns:
        the table and the specs that were left out (not measured in this study).
    """
    measured = [s for s in specs if any(r.stats[s.key].mean is not None for r in rows)]
    omitted = [s for s in specs if s not in measured]
    shown = [s for s in measured if not _repeats_epochs(rows, s.key)]
    intervals = comparison is not None and any(m.interval for m in comparison.models)
    columns = _result_columns(shown, show_schedule, intervals)
    best = {s.key: _best(rows, s.key) for s in shown}
    # the model holding each ★: a test's ≈ only means something next to the value it was tested against
    leader = {k: next((r.model for r in rows if v is not None and r.stats[k].mean == v), None) for k, v in best.items()}
    out_rows = []
    for row in rows:
        cells = [Cell(row.model, row.model)]
        if show_schedule:
            cells.append(Cell(row.schedule, row.schedule))
        statuses = ", ".join(f"{k}: {v}" for k, v in row.statuses.items())
        cells.append(Cell(f"{row.ok}/{row.runs}", row.ok, title=statuses, css=None if row.ok == row.runs else "bad"))
        for spec in shown:
            stat = row.stats[spec.key]
            text, title = _cost_text(spec.key, stat, spec.kind, row.ok)
            is_best = stat.mean is not None and stat.mean == best[spec.key]
            tie, why = (False, None)
            if not is_best and leader.get(spec.key) is not None:
                tie, why = _cannot_tell(comparison, row.model, spec.key, leader[spec.key])
            cells.append(Cell(text, stat.mean, best=is_best and len(rows) > 1, tie=tie, title=why or title))
            if spec.key == "test_accuracy" and intervals:
                cells.append(_interval_cell(comparison, row.model))
        out_rows.append(cells)
    return Table(table_id, columns, out_rows, css="results"), omitted


def _repeats_epochs(rows: Sequence[AggregateRow], key: str) -> bool:
    """ "Epochs to X" when every run stopped at its target: the "Epochs" column's values again, shown once."""
    if key != "epochs_to_target":
        return False
    stats = [(r.stats.get(key), r.stats.get("epochs_run")) for r in rows]
    return all(a and b and a.mean is not None and (a.mean, a.n) == (b.mean, b.n) for a, b in stats)


_COSTS = ("epochs_to_target", "time_to_target_s", "steps_to_target", "images_to_target")


def _cost_text(key: str, stat: Stat, kind: str, finished: int) -> tuple[str, str | None]:
    """A cell's text and tooltip; a cost to the target says when seeds did not reach it."""
    text = fmt_stat(stat, kind)
    if key not in _COSTS or not finished:
        return text, None
    if stat.n == 0:
        return "not reached", None
    if stat.n < finished:
        return (
            f"{text} ({stat.n}/{finished})",
            f"reached the target in {stat.n} of {finished} seeds; the mean is over those",
        )
    return text, None


def _best(rows: Sequence[AggregateRow], key: str) -> float | None:
    """The ★ value of a column; none when every value is equal (every model trained the same fixed steps)."""
    values = [r.stats[key].mean for r in rows if r.stats[key].mean is not None]
    if len(values) > 1 and all(v == values[0] for v in values):
        return None
    return best_value(values, key)


def _result_columns(shown: Sequence[ColumnSpec], show_schedule: bool, intervals: bool) -> list[Column]:
    columns = [Column("Model", "architecture")]
    if show_schedule:
        columns.append(Column("Schedule", "learning-rate schedule shown: best mean validation accuracy"))
    columns.append(Column("Seeds", "finished runs averaged / runs"))
    for s in shown:
        columns.append(Column(s.label, f"{s.title}; {'higher' if s.key in HIGHER_IS_BETTER else 'lower'} is better"))
        if s.key == "test_accuracy" and intervals:
            columns.append(Column("95 % interval", "of the test accuracy (method: see Which differences hold)"))
    return columns


def _cannot_tell(comparison: DatasetComparison | None, model: str, key: str, leader: str) -> tuple[bool, str | None]:
    """(≈, why) for one cell: a test could not tell the value from the column's best (held by ``leader``)."""
    if comparison is None:
        return False, None
    if key == "test_accuracy":
        m, best = comparison.model(model), comparison.best
        if m is None or best is None or best.model != leader or m.distinguishable_from_best is not False:
            return False, None
        method = m.vs_best.method if m.vs_best else "test"
        return True, f"cannot be told apart from the best ({method}, Holm-adjusted {format_p(m.p_vs_best or 1.0)})"
    costs = comparison.to_target.get(key, [])
    cost = next((c for c in costs if c.model == model), None)
    fastest = next((c for c in costs if c.is_fastest), None)
    if cost is None or fastest is None or fastest.model != leader or cost.distinguishable_from_fastest is not False:
        return False, None
    p = format_p(cost.p_vs_fastest or 1.0)
    return True, f"cannot be told apart from the fastest (Welch's t test over seeds, Holm-adjusted {p})"


def _interval_cell(comparison: DatasetComparison | None, model: str) -> Cell:
    m = comparison.model(model) if comparison is not None else None
    if m is None or m.interval is None:
        return Cell("", None)
    low, high = fmt_number(m.interval.low, "pct"), fmt_number(m.interval.high, "pct")
    title = f"{m.interval.level:.0%} {m.interval.method}"
    if len(m.per_seed) > 1:
        title += "; per seed: " + ", ".join(
            f"{fmt_number(a, 'pct')} (seed {s})" for s, a in zip(m.seeds, m.per_seed, strict=True)
        )
    return Cell(f"[{low}, {high}]", m.interval.low, title=title)


def configurations_table(table_id: str, rows: Sequence[AggregateRow], target: float | None) -> Table:
    """Every dataset × model × schedule with its main figures, mean ± std over seeds."""
    keys = [
        ("test_accuracy", "Test acc (%)", "pct"),
        ("test_loss", "Test loss", "loss"),
        ("best_val_accuracy", "Best val acc (%)", "pct"),
        ("train_accuracy", "Train acc (%)", "pct"),
        ("epochs_run", "Epochs", "epochs"),
        ("train_time_s", "Train time (s)", "seconds"),
        ("epochs_to_target", f"Epochs to {target * 100:g} %" if target else "Epochs to target", "epochs"),
    ]
    columns = [Column("Model"), Column("Schedule"), Column("Seeds", "finished / runs")]
    columns += [Column(label) for _, label, _ in keys]
    out = []
    for row in rows:
        cells = [Cell(row.model, row.model), Cell(row.schedule, row.schedule), Cell(f"{row.ok}/{row.runs}", row.ok)]
        cells += [Cell(fmt_stat(row.stats[k], kind), row.stats[k].mean) for k, _, kind in keys]
        out.append(cells)
    return Table(table_id, columns, out)


def runs_table(table_id: str, runs: Sequence[RunRecord], with_error: bool = True) -> Table:
    """One row per run: identity, status, the headline figures, and the error of a run that did not finish."""
    columns = [Column("Run"), Column("Model"), Column("Schedule"), Column("Seed"), Column("Status")]
    columns += [Column("Test acc (%)"), Column("Epochs"), Column("Train time (s)")]
    if with_error:
        columns.append(Column("Error / note"))
    out = []
    for run in runs:
        acc = run.figures.get("test_accuracy")
        epochs = run.figures.get("epochs_run")
        train = run.figures.get("train_time_s")
        cells = [
            Cell(run.run_id, run.run_id, title=str(run.path) if run.path else None),
            Cell(run.model, run.model),
            Cell(run.schedule, run.schedule),
            Cell("" if run.seed is None else str(run.seed), run.seed),
            Cell(run.status, run.status, css=None if run.ok else "bad"),
            Cell("" if acc is None else fmt_number(acc, "pct"), acc),
            Cell("" if epochs is None else fmt_number(epochs, "epochs"), epochs),
            Cell("" if train is None else fmt_number(train, "seconds"), train),
        ]
        if with_error:
            cells.append(Cell(run.error or "", run.error or ""))
        out.append(cells)
    return Table(table_id, columns, out)


def key_value_table(table_id: str, items: Sequence[tuple[str, str]]) -> Table:
    rows = [[Cell(k, k), Cell(v, v)] for k, v in items]
    return Table(table_id, [Column("Item"), Column("Value")], rows, sortable=False, css="kv")
