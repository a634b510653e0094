"""Training curves per model (loss, accuracy, learning rate) and the schedule comparison.

These are the MNIST study's Figures 33–36 ("LeNet, Plateau", "LeNet, Cosine", ...), drawn for every
model, and its cosine-vs-plateau discussion turned into one chart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnbench.report.aggregate import AggregateRow
from cnnbench.report.runfiles import EpochTable
from cnnbench.report.style import legend_below, model_ticks, new_figure, styled

_SCHEDULE_HATCHES = ("", "//", "..", "xx", "\\\\", "oo")
_LR_COLOR = "0.45"


@dataclass(frozen=True)
class Curve:
    """One run's epochs, and what to mark on them."""

    label: str  # "plateau, seed 0"
    table: EpochTable
    best_epoch: float | None
    status: str


@styled
def fig_training_curves(model: str, color: str, curves: Sequence[Curve], target: float | None = None) -> Any:
    """Loss (top) and accuracy (bottom) per epoch for each schedule (columns), learning rate on a second axis.

    Train lines are dashed, validation lines solid, both in the model's colour; the learning rate is
    grey and dotted, on a log axis when it spans more than a factor of 100 (warm-up, plateau cuts).
    """
    from matplotlib.ticker import MaxNLocator, NullFormatter

    n = max(1, len(curves))
    width = max(7.5, min(5.6 * n, 16.0))
    fig = new_figure(width, 6.8, layout=None)  # fixed margins: these figures are many, constrained layout is slow
    # margins and gaps in inches, as fractions: the lr axis on the right of each panel, the legend below
    left, right, gap = 0.8, 0.85, 1.7
    axis_width = (width - left - right - gap * (n - 1)) / n
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, top=0.9, bottom=0.16, wspace=gap / axis_width, hspace=0.08
    )
    axes = fig.subplots(2, n, squeeze=False, sharex="col")
    legend: dict[str, Any] = {}  # label -> handle, one entry per kind of line across all panels
    for col, curve in enumerate(curves):
        t = curve.table
        epochs = t["epoch"]
        for row, (kind, ylabel, scale) in enumerate(
            (("loss", "loss (cross-entropy)", 1.0), ("acc", "accuracy (%)", 100.0))
        ):
            ax = axes[row][col]
            lines = []
            for split, style in (("train", "--"), ("val", "-")):
                key = f"{split}_{kind}"
                if t.has(key):
                    label = "train (augmented)" if split == "train" else "validation"
                    lines += ax.plot(
                        epochs, t[key] * scale, style, color=color, lw=1.6, label=label, marker="o", ms=2.5
                    )
            if curve.best_epoch is not None:
                lines.append(ax.axvline(curve.best_epoch, color="black", lw=0.8, ls=":", label="selected epoch"))
            if kind == "acc" and target is not None:
                lines.append(
                    ax.axhline(target * 100, color="#b00020", lw=0.8, ls="-.", label=f"target {target * 100:g} %")
                )
            if kind == "acc":
                _zoom_accuracy(ax, t)
            ax.set_ylabel(ylabel)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
            if t.has("lr"):
                lr_ax = ax.twinx()
                lr = t["lr"]
                lines += lr_ax.plot(epochs, lr, ":", color=_LR_COLOR, lw=1.4, label="learning rate")
                finite = lr[np.isfinite(lr)]
                positive = finite[finite > 0]
                # log axis for warm-up and plateau cuts (factors of 10), linear when the lr reaches 0 (cosine)
                if positive.size == finite.size and positive.size and positive.max() / positive.min() > 100:
                    lr_ax.set_yscale("log")
                    lr_ax.yaxis.set_minor_formatter(NullFormatter())  # decades only: readable at a glance
                elif finite.size:
                    lr_ax.set_ylim(0, max(float(finite.max()), 1e-12) * 1.08)  # a flat lr stays a flat line
                lr_ax.set_ylabel("learning rate", color=_LR_COLOR)
                lr_ax.tick_params(axis="y", colors=_LR_COLOR, labelsize=8)
                lr_ax.grid(False)
                lr_ax.spines["right"].set_visible(True)
            if row == 0:
                status = "" if curve.status in ("completed", "early_stopped") else f" — {curve.status}"
                ax.set_title(f"{curve.label}{status}")
            else:
                ax.set_xlabel("epoch")
            for line in lines:
                legend.setdefault(line.get_label(), line)
    fig.legend(handles=list(legend.values()), loc="lower center", ncol=min(len(legend), 5), frameon=False)
    fig.suptitle(f"{model}: training curves", fontsize=12, fontweight="bold", color="black")
    return fig


def _zoom_accuracy(ax: Any, t: EpochTable) -> None:
    """Accuracy curves live near the top: show from the median of the first epochs, so late epochs are legible."""
    values = np.concatenate([t[k] * 100 for k in ("train_acc", "val_acc") if t.has(k)] or [np.array([np.nan])])
    values = values[np.isfinite(values)]
    if values.size < 3:
        return
    lo = float(np.percentile(values, 10))
    hi = float(values.max())
    pad = max(0.5, 0.08 * (hi - lo))
    ax.set_ylim(max(0.0, lo - pad), min(100.5, hi + pad))


@styled
def fig_schedule_comparison(
    rows: Mapping[str, Mapping[str, AggregateRow]],
    colors: Mapping[str, str],
    models: Sequence[str],
    schedules: Sequence[str],
) -> Any:
    """Each model under each schedule: test accuracy and train time, mean ± std over seeds.

    Args:
        rows: model → schedule → its aggregate row.
        models: display order.
        schedules: the schedules, each drawn with its own hatch (colour stays the model's).
    """
    from matplotlib.patches import Patch

    k = len(schedules)
    width = 0.8 / k
    fig = new_figure(max(8.0, min(16.0, 2.0 + 1.1 * len(models) * 2)), 4.6)
    axes = fig.subplots(1, 2, squeeze=False)[0]
    panels = (
        ("test_accuracy", "Test accuracy (axis zoomed)", "accuracy (%)", 100.0),
        ("train_time_s", "Train time", "seconds", 1.0),
    )
    for ax, (key, title, ylabel, scale) in zip(axes, panels, strict=False):
        lows, highs = [], []
        for j, schedule in enumerate(schedules):
            for i, model in enumerate(models):
                row = rows.get(model, {}).get(schedule)
                stat = row.stats[key] if row else None
                x = i + (j - (k - 1) / 2) * width
                if stat is None or stat.mean is None:
                    ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=6.5, color="#b00020", rotation=90)
                    continue
                mean, err = stat.mean * scale, (stat.std or 0.0) * scale
                lows.append(mean - err)
                highs.append(mean + err)
                ax.bar(
                    x,
                    mean,
                    width,
                    color=colors[model],
                    edgecolor="black",
                    linewidth=0.5,
                    hatch=_SCHEDULE_HATCHES[j % len(_SCHEDULE_HATCHES)],
                    yerr=err if stat.std is not None else None,
                    capsize=2,
                )
        if key == "test_accuracy" and lows:
            lo, hi = min(lows), max(highs)
            span = max(hi - lo, 0.05)
            ax.set_ylim(max(0.0, lo - 0.6 * span), min(100 + 0.1 * span, hi + 0.35 * span))
        model_ticks(ax, list(models))
        ax.set_title(title)
        ax.set_ylabel(ylabel)
    handles = [
        Patch(facecolor="white", edgecolor="black", hatch=_SCHEDULE_HATCHES[j % len(_SCHEDULE_HATCHES)] * 2, label=s)
        for j, s in enumerate(schedules)
    ]
    legend_below(fig, handles, "schedule (colour = model); bars: mean over seeds, error bars: ± 1 std")
    fig.suptitle("Learning-rate schedules compared per model", fontsize=12, fontweight="bold")
    return fig
