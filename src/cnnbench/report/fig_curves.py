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
from cnnbench.report.style import legend_below, model_ticks, new_figure, styled
from cnnbench.rundir import STATUS_OK
from cnnbench.rundir.tables import EpochTable, StepTable

_SCHEDULE_HATCHES = ("", "//", "..", "xx", "\\\\", "oo")
_LR_COLOR = "0.45"


# Runs shorter than this many epochs are drawn against optimiser steps (steps.csv), longer ones per epoch.
SHORT_RUN_EPOCHS = 5


@dataclass(frozen=True)
class Curve:
    """One run's epochs (and steps), and what to mark on them."""

    label: str  # "plateau, seed 0"
    table: EpochTable
    best_epoch: float | None
    status: str
    steps: StepTable | None = None  # steps.csv, for runs written since it exists
    augmented: bool | None = None  # trained on augmented images (None: not known)


@dataclass(frozen=True)
class CurveData:
    """What one column of the training-curves figure draws, on one x axis.

    ``x`` is ``"step"`` (optimiser steps; training figures from steps.csv, each the mean over the steps
    since the previous point) for runs shorter than ``SHORT_RUN_EPOCHS`` that have steps.csv, else
    ``"epoch"`` (metrics.csv). Validation is measured at the end of each epoch only, on either axis.
    """

    x: str  # "step" | "epoch"
    train_x: np.ndarray  # (P,)
    train_loss: np.ndarray  # (P,)
    train_acc: np.ndarray  # (P,)
    lr: np.ndarray  # (P,) learning rate at train_x
    val_x: np.ndarray  # (E,) where each epoch's validation falls on the x axis
    val_loss: np.ndarray  # (E,)
    val_acc: np.ndarray  # (E,)
    epochs: float  # epochs trained (fractional on a step axis)
    steps: int | None  # optimiser steps trained (None when unknown)
    interval: int | None  # steps between training points on a step axis
    steps_per_epoch: float | None  # to label a step axis in epochs too
    val_epochs: np.ndarray | None = None  # (E,) metrics.csv's epoch of each validation pass (fractional inside one)

    @property
    def points(self) -> int:
        """Training points with a finite loss: what a reader sees of the run's progress."""
        return int(np.isfinite(self.train_loss).sum())

    def x_of_epoch(self, epoch: float) -> float | None:
        """Where the validation pass of ``epoch`` (metrics.csv's epoch: 1-based, fractional for a pass inside
        an epoch) falls on the x axis."""
        if self.x == "epoch":
            return float(epoch)
        if self.val_epochs is not None:
            hits = np.flatnonzero(np.isclose(self.val_epochs, epoch, atol=1e-4))
            return float(self.val_x[hits[0]]) if hits.size else None
        idx = int(round(epoch)) - 1
        return float(self.val_x[idx]) if 0 <= idx < len(self.val_x) else None


def curve_data(table: EpochTable, steps: StepTable | None = None) -> CurveData:
    """The points of one run's curves (``table``: metrics.csv, ``steps``: steps.csv or None)."""
    e = table["epoch"]
    have_steps = steps is not None and len(steps) >= 2 and bool(np.isfinite(steps["train_loss"]).any())
    fractions = steps["epoch"] if have_steps else np.array([np.nan])
    trained = float(np.nanmax(fractions)) if np.isfinite(fractions).any() else float("nan")
    if not have_steps or not np.isfinite(trained) or trained >= SHORT_RUN_EPOCHS:
        return CurveData(
            "epoch",
            e,
            table["train_loss"],
            table["train_acc"],
            table["lr"],
            e,
            table["val_loss"],
            table["val_acc"],
            float(len(table)),
            None,
            None,
            None,
        )
    s = steps["step"]
    ratio = s / steps["epoch"]
    ratio = ratio[np.isfinite(ratio) & (steps["epoch"] > 0)]
    per_epoch = float(np.median(ratio)) if ratio.size else None
    if table.has("step"):
        val_x = table["step"]
    else:  # metrics.csv written before its step column: the end of each whole epoch
        val_x = e * per_epoch if per_epoch else np.full(len(e), np.nan)
    averaged = steps["steps_averaged"]
    interval = int(np.nanmax(averaged)) if np.isfinite(averaged).any() else None
    return CurveData(
        "step",
        s,
        steps["train_loss"],
        steps["train_acc"],
        steps["lr"],
        val_x,
        table["val_loss"],
        table["val_acc"],
        trained,
        int(np.nanmax(s)),
        interval,
        per_epoch,
        e,
    )


@styled
def fig_training_curves(model: str, color: str, curves: Sequence[Curve], target: float | None = None) -> Any:
    """Loss (top) and accuracy (bottom) for each schedule (columns), learning rate on a second axis.

    Runs of ``SHORT_RUN_EPOCHS`` epochs or more are drawn per epoch (whole-number ticks); shorter
    runs against optimiser steps, the training figures every few steps (the mean since the previous
    point) and validation at each pass (each epoch's end, or every --val-every-steps steps).
    Train lines are dashed, validation lines solid, both in the model's colour; the learning rate is
    grey and dotted, on a log axis whenever it is positive and changes by more than 10x (warm-up from
    1e-6, cosine to 1e-6, plateau cuts).
    """
    n = max(1, len(curves))
    width = max(7.5, min(5.6 * n, 16.0))
    fig = new_figure(width, 6.8, layout=None)  # fixed margins: these figures are many, constrained layout is slow
    # margins and gaps in inches, as fractions: the lr axis on the right of each panel, the legend below
    left, right, gap = 0.8, 0.85, 1.7
    axis_width = (width - left - right - gap * (n - 1)) / n
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, top=0.86, bottom=0.16, wspace=gap / axis_width, hspace=0.08
    )
    axes = fig.subplots(2, n, squeeze=False, sharex="col")
    legend: dict[str, Any] = {}  # label -> handle, one entry per kind of line across all panels
    for col, curve in enumerate(curves):
        d = curve_data(curve.table, curve.steps)
        for row, kind in enumerate(("loss", "acc")):
            lines = _curve_panel(axes[row][col], d, curve, kind, color, target)
            if kind == "loss":
                _panel_title(axes[row][col], d, curve)
            else:
                axes[row][col].set_xlabel("optimiser step" if d.x == "step" else "epoch")
            for line in lines:
                legend.setdefault(line.get_label(), line)
    fig.legend(handles=list(legend.values()), loc="lower center", ncol=min(len(legend), 4), frameon=False)
    fig.suptitle(f"{model}: training curves", fontsize=12, fontweight="bold", color="black")
    return fig


def _curve_panel(ax: Any, d: CurveData, curve: Curve, kind: str, color: str, target: float | None) -> list[Any]:
    """One panel of ``fig_training_curves``: train and validation ``kind`` ("loss" or "acc"), the selected
    epoch, the target, the learning rate on a second axis; the lines drawn (for the shared legend)."""
    from matplotlib.ticker import MaxNLocator

    by_step = d.x == "step"
    train_label = "train (augmented)" if curve.augmented is not False else "train"
    if by_step and d.interval:
        train_label += f", mean of every {d.interval} steps" if d.interval > 1 else ", every step"
    val_label = "validation (each pass)" if by_step else "validation"
    ylabel, scale = ("loss (cross-entropy)", 1.0) if kind == "loss" else ("accuracy (%)", 100.0)
    lines = []
    train_y, val_y = (d.train_loss, d.val_loss) if kind == "loss" else (d.train_acc, d.val_acc)
    if np.isfinite(train_y).any():
        lines += ax.plot(d.train_x, train_y * scale, "--", color=color, lw=1.6, label=train_label, marker="o", ms=2.5)
    if np.isfinite(val_y).any():
        # on a step axis a run of one epoch has one validation point: a marker big enough to see
        lines += ax.plot(
            d.val_x,
            val_y * scale,
            "-",
            color=color,
            lw=1.6,
            label=val_label,
            marker="o",
            ms=6 if by_step else 2.5,
            markeredgecolor="black" if by_step else color,
        )
    best_x = d.x_of_epoch(curve.best_epoch) if curve.best_epoch is not None else None
    if best_x is not None and np.isfinite(best_x):
        lines.append(ax.axvline(best_x, color="black", lw=0.8, ls=":", label="selected checkpoint"))
    if kind == "acc" and target is not None:
        lines.append(ax.axhline(target * 100, color="#b00020", lw=0.8, ls="-.", label=f"target {target * 100:g} %"))
    if kind == "acc":
        _zoom_accuracy(ax, d)
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs and steps are whole numbers
    if not by_step and len(d.train_x) == 1:
        ax.set_xlim(0, 2)  # one epoch (a run from before steps.csv): not a 0.95-1.05 axis
    if np.isfinite(d.lr).any():
        lines += _lr_axis(ax, d)
    return lines


def _lr_axis(ax: Any, d: CurveData) -> list[Any]:
    """The learning rate, grey and dotted, on a second y axis: log when positive and changing by over 10x."""
    from matplotlib.ticker import NullFormatter

    lr_ax = ax.twinx()
    lines = lr_ax.plot(d.train_x, d.lr, ":", color=_LR_COLOR, lw=1.4, label="learning rate")
    finite = d.lr[np.isfinite(d.lr)]
    positive = finite[finite > 0]
    # log axis for warm-up, cosine to a floor and plateau cuts; linear when the lr reaches 0
    if positive.size == finite.size and positive.size and positive.max() / positive.min() > 10:
        lr_ax.set_yscale("log")
        lr_ax.yaxis.set_minor_formatter(NullFormatter())  # decades only: readable at a glance
    elif finite.size:
        lr_ax.set_ylim(0, max(float(finite.max()), 1e-12) * 1.08)  # a flat lr stays a flat line
    lr_ax.set_ylabel("learning rate", color=_LR_COLOR)
    lr_ax.tick_params(axis="y", colors=_LR_COLOR, labelsize=8)
    lr_ax.grid(False)
    lr_ax.spines["right"].set_visible(True)
    return lines


def _panel_title(ax: Any, d: CurveData, curve: Curve) -> None:
    """The schedule (and status, and length of a short run) above a column; epochs on top of a step axis."""
    status = "" if curve.status in STATUS_OK else f" — {curve.status}"
    span = f" — {d.steps} steps, {d.epochs:.2g} epochs" if d.x == "step" and d.steps else ""
    ax.set_title(f"{curve.label}{status}{span}", fontsize=10)
    if d.x == "step" and d.steps_per_epoch:
        spe = d.steps_per_epoch
        top = ax.secondary_xaxis("top", functions=(lambda x, k=spe: x / k, lambda x, k=spe: x * k))
        top.set_xlabel("epochs", fontsize=8)
        top.tick_params(labelsize=7)


def _zoom_accuracy(ax: Any, d: CurveData) -> None:
    """Accuracy curves live near the top: show from the 10th percentile, so late points are legible."""
    values = np.concatenate([d.train_acc * 100, d.val_acc * 100])
    values = values[np.isfinite(values)]
    if values.size < 3:
        return
    lo = float(np.percentile(values, 10))
    hi = float(values.max())
    pad = max(0.5, 0.08 * (hi - lo))
    ax.set_ylim(max(0.0, lo - pad), min(100.5, hi + pad))


def _schedule_bars(
    ax: Any,
    rows: Mapping[str, Mapping[str, AggregateRow]],
    colors: Mapping[str, str],
    models: Sequence[str],
    schedules: Sequence[str],
    key: str,
    scale: float,
) -> tuple[list[float], list[float]]:
    """Draw one panel's bars (a group per model, a bar per schedule); return the error bars' low and high ends."""
    k = len(schedules)
    width = 0.8 / k
    lows: list[float] = []
    highs: list[float] = []
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
    return lows, highs


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

    fig = new_figure(max(8.0, min(16.0, 2.0 + 1.1 * len(models) * 2)), 4.6)
    axes = fig.subplots(1, 2, squeeze=False)[0]
    panels = (
        ("test_accuracy", "Test accuracy (axis zoomed)", "accuracy (%)", 100.0),
        ("train_time_s", "Train time", "seconds", 1.0),
    )
    for ax, (key, title, ylabel, scale) in zip(axes, panels, strict=False):
        lows, highs = _schedule_bars(ax, rows, colors, models, schedules, key, scale)
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
