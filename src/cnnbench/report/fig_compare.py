"""Bar charts comparing models, one function per figure of the MNIST study (its Figures 38–44).

Every function takes the aggregate rows to show (one per model, in display order) and the colour
of each model, and returns a matplotlib Figure. Bars are means over seeds; error bars are the seed
std and appear only when some model has two or more seeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnnbench.report.aggregate import AggregateRow
from cnnbench.report.style import legend_below, model_ticks, new_figure, styled


@dataclass(frozen=True)
class Metric:
    """How one figure is drawn: its panel title, axis label with unit, scale and axis kind."""

    key: str
    title: str
    ylabel: str
    scale: float = 1.0  # 100 turns fractions into percent
    log: bool = False  # sizes span orders of magnitude (LeNet-5 vs. VGG)
    zoom: bool = False  # accuracies near 100 %: start the axis near the smallest bar, and say so
    missing: str = "n/a"  # written where a model has no value
    digits: int | None = None  # decimals of the value labels; None = three significant figures


TEST_ACCURACY = Metric("test_accuracy", "Test accuracy", "accuracy (%)", 100, zoom=True, digits=2)
TEST_LOSS = Metric("test_loss", "Test loss", "cross-entropy loss")


def fmt_value(value: float) -> str:
    """Three significant figures, no scientific notation for everyday magnitudes."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e9:
        return f"{value / 1e9:.3g} G"
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g} M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.3g} k"
    if magnitude >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


_BOXED = {"color": "0.15", "bbox": {"facecolor": "white", "alpha": 0.85, "linewidth": 0, "pad": 1}}


def _has_spread(rows: Sequence[AggregateRow], key: str) -> bool:
    return any(r.stats[key].std is not None for r in rows)


def _zoom_limits(lows: list[float], highs: list[float], cap: float | None) -> tuple[float, float]:
    lo, hi = min(lows), max(highs)
    span = max(hi - lo, 0.02 * max(abs(hi), 1e-9))
    bottom = max(0.0, lo - 0.6 * span)
    top = hi + 0.35 * span
    if cap is not None:
        top = min(top, cap + 0.12 * span)
    return bottom, top


def draw_bars(ax: Any, rows: Sequence[AggregateRow], colors: Mapping[str, str], metric: Metric) -> None:
    """One panel: a bar per model (mean), seed-std error bars, the value on each bar, n/a where missing."""
    names = [r.model for r in rows]
    xs = list(range(len(rows)))
    means = [r.stats[metric.key].mean for r in rows]
    stds = [r.stats[metric.key].std for r in rows]
    heights = [m * metric.scale if m is not None else 0.0 for m in means]
    errs = [s * metric.scale if s is not None else 0.0 for s in stds]
    show_err = _has_spread(rows, metric.key)
    bars = ax.bar(
        xs,
        heights,
        color=[colors[n] for n in names],
        edgecolor="black",
        linewidth=0.5,
        yerr=errs if show_err else None,
        capsize=3 if show_err else 0,
        error_kw={"elinewidth": 1, "ecolor": "black"},
        log=metric.log,
    )
    labels = [
        ("" if m is None else f"{h:.{metric.digits}f}" if metric.digits is not None else fmt_value(h))
        for h, m in zip(heights, means, strict=False)
    ]
    ax.bar_label(bars, labels=labels, padding=2, fontsize=7.5)
    present = [(h, e) for h, e, m in zip(heights, errs, means, strict=False) if m is not None]
    if metric.zoom and present:
        cap = 100.0 if metric.scale == 100 else None
        ax.set_ylim(*_zoom_limits([h - e for h, e in present], [h + e for h, e in present], cap))
    elif metric.log and present:
        positive = [h for h, _ in present if h > 0]
        if positive:
            ax.set_ylim(min(positive) / 3, max(positive) * 4)
    for x, m, row in zip(xs, means, rows, strict=False):
        if m is None:
            label = metric.missing if row.ok else "no finished\nrun"
            ax.text(
                x, ax.get_ylim()[0], label, ha="center", va="bottom", fontsize=7.5, color="#b00020"
            )  # red: nothing to show
    model_ticks(ax, names)
    ax.set_ylabel(metric.ylabel)
    title = (
        metric.title + (" (axis zoomed)" if metric.zoom and present else "") + (" (log scale)" if metric.log else "")
    )
    ax.set_title(title)


@styled
def bar_panels(
    rows: Sequence[AggregateRow],
    colors: Mapping[str, str],
    metrics: Sequence[Metric],
    title: str,
    note: str | None = None,
) -> Any:
    """Side-by-side bar panels, one per metric, with a figure title and an optional footnote."""
    n = len(metrics)
    fig = new_figure(max(5.0, min(7.0, 1.2 + 0.55 * len(rows))) * n, 4.4)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=False):
        draw_bars(ax, rows, colors, metric)
    if _has_spread(rows, metrics[0].key):
        note = ((note + "; ") if note else "") + "bars: mean over seeds, error bars: ± 1 std"
    fig.suptitle(title, fontsize=12, fontweight="bold")
    if note:
        fig.supxlabel(note, fontsize=8, color="0.35")
    return fig


def fig_test_loss_accuracy(rows: Sequence[AggregateRow], colors: Mapping[str, str]) -> Any:
    """MNIST study Figure 38: test loss and test accuracy."""
    return bar_panels(rows, colors, [TEST_LOSS, TEST_ACCURACY], "Test loss and accuracy")


@styled
def fig_train_val_test_accuracy(rows: Sequence[AggregateRow], colors: Mapping[str, str]) -> Any:
    """MNIST study Figure 39: train (at the best epoch, on augmented batches when the runs were), validation
    and test accuracy per model."""
    augmented = {r.augmented is not False for row in rows for r in row.averaged}
    train = {frozenset({True}): "train (augmented)", frozenset({False}): "train", frozenset(): "train"}.get(
        frozenset(augmented), "train (augmented for some)"
    )
    splits = [
        ("train_accuracy", train, {"alpha": 0.35, "hatch": "//"}),
        ("best_val_accuracy", "validation (best)", {"alpha": 0.65, "hatch": ".."}),
        ("test_accuracy", "test", {"alpha": 1.0, "hatch": ""}),
    ]
    fig = new_figure(max(6.5, min(13.0, 1.5 + 0.9 * len(rows))), 4.6)
    ax = fig.subplots(1, 1, squeeze=False)[0][0]
    width = 0.27
    lows, highs = [], []
    for j, (key, _, style) in enumerate(splits):
        for i, row in enumerate(rows):
            stat = row.stats[key]
            if stat.mean is None:
                continue
            mean, err = stat.mean * 100, (stat.std or 0.0) * 100
            lows.append(mean - err)
            highs.append(mean + err)
            ax.bar(
                i + (j - 1) * width,
                mean,
                width,
                color=colors[row.model],
                edgecolor="black",
                linewidth=0.5,
                yerr=err if stat.std is not None else None,
                capsize=2,
                **style,
            )
    if lows:
        ax.set_ylim(*_zoom_limits(lows, highs, 100.0))
    from matplotlib.patches import Patch

    handles = [Patch(facecolor="0.45", edgecolor="black", label=label, **style) for _, label, style in splits]
    legend_below(fig, handles, "split (colour = model)")
    model_ticks(ax, [r.model for r in rows])
    ax.set_ylabel("accuracy (%)")
    ax.set_title(
        "axis zoomed" + ("; bars: mean over seeds, error bars: ± 1 std" if _has_spread(rows, "test_accuracy") else ""),
        fontsize=9,
        color="0.35",
    )
    fig.suptitle("Train, validation and test accuracy", fontsize=12, fontweight="bold")
    return fig


def fig_train_test_time(rows: Sequence[AggregateRow], colors: Mapping[str, str], test_batch: int | None) -> Any:
    """MNIST study Figure 40: training wall time and one pass over the test split."""
    batch = f" at batch {test_batch}" if test_batch else ""
    return bar_panels(
        rows,
        colors,
        [
            Metric("train_time_s", "Train time (training epochs only)", "seconds"),
            Metric("test_time_s", f"Test time (whole test split{batch})", "seconds"),
        ],
        "Train and test time",
    )


def fig_size_params(rows: Sequence[AggregateRow], colors: Mapping[str, str]) -> Any:
    """MNIST study Figure 42: model size, parameters and FLOPs, on log axes so small models stay visible."""
    return bar_panels(
        rows,
        colors,
        [
            Metric("size_mb", "Model size", "MB (fp32 weights)", log=True),
            Metric("params", "Parameters", "count", log=True),
            Metric("flops", "FLOPs per image", "FLOPs (2 × MACs)", log=True),
        ],
        "Model size, parameters and compute",
    )


def fig_epochs_time_per_epoch(rows: Sequence[AggregateRow], colors: Mapping[str, str]) -> Any:
    """MNIST study Figure 43: epochs run (early stopping) and time per epoch."""
    return bar_panels(
        rows,
        colors,
        [
            Metric("epochs_run", "Epochs run", "epochs"),
            Metric("time_per_epoch_s", "Time per epoch", "seconds"),
        ],
        "Epochs and time per epoch",
    )


def fig_time_to_target(rows: Sequence[AggregateRow], colors: Mapping[str, str], target: float) -> Any:
    """MNIST study Figure 44: epochs and time until validation accuracy first reached ``target``.

    A model that never reached it shows "not reached"; one that reached it in some seeds only says
    in how many (the mean is over those).
    """
    pct = f"{target * 100:g} %"
    fig = bar_panels(
        rows,
        colors,
        [
            Metric("epochs_to_target", f"Epochs to {pct}", "epochs", missing="not\nreached"),
            Metric("time_to_target_s", f"Time to {pct}", "seconds", missing="not\nreached"),
        ],
        f"Epochs and time to {pct} validation accuracy",
        note="mean over the seeds that reached the target",
    )
    for ax, key in zip(fig.axes, ("epochs_to_target", "time_to_target_s"), strict=False):
        bottom = ax.get_ylim()[0]
        for i, row in enumerate(rows):
            stat = row.stats[key]
            if 0 < stat.n < row.ok:
                ax.text(i, bottom, f"{stat.n}/{row.ok}\nseeds", ha="center", va="bottom", fontsize=7, **_BOXED)
    return fig
