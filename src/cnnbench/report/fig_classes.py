"""Per-class views: a confusion matrix per model and per-class accuracy of every model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cnnbench.report.style import new_figure, styled

_ANNOTATE_MAX = 12  # write the numbers in the cells up to this many classes
_TICKS_MAX = 40  # class names on the axes up to this many classes


def _short(name: str, width: int = 14) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


@styled
def fig_confusion(model: str, color: str, confusion: np.ndarray, classes: Sequence[str], note: str) -> Any:
    """Row-normalised confusion matrix (K, K) of one model: each row is one true class and sums to 100 %.

    Args:
        confusion: counts, rows = truth, columns = prediction.
        note: where the counts come from ("test split, summed over 3 seeds").
    """
    k = confusion.shape[0]
    rows = confusion.sum(axis=1, keepdims=True)
    share = np.divide(confusion, rows, out=np.zeros_like(confusion, dtype=np.float64), where=rows > 0) * 100
    side = 4.6 if k <= 20 else 6.0
    fig = new_figure(side + 0.9, side)
    ax = fig.subplots(1, 1, squeeze=False)[0][0]
    from matplotlib.colors import Normalize, PowerNorm

    # many classes: no numbers in the cells, so a power scale keeps small confusions visible
    norm = Normalize(0, 100) if k <= _ANNOTATE_MAX else PowerNorm(0.4, 0, 100)
    im = ax.imshow(share, cmap="Blues", norm=norm, interpolation="nearest")
    ax.grid(False)
    if k <= _TICKS_MAX:
        labels = [_short(c) for c in classes]
        ax.set_xticks(range(k), labels, rotation=90 if k > 10 or max(map(len, labels)) > 3 else 0, fontsize=8)
        ax.set_yticks(range(k), labels, fontsize=8)
    if k <= _ANNOTATE_MAX:
        for i in range(k):
            for j in range(k):
                value = share[i, j]
                if value >= 0.05:
                    ax.text(
                        j,
                        i,
                        f"{value:.1f}" if value < 99.95 else "100",
                        ha="center",
                        va="center",
                        fontsize=6.5,
                        color="white" if value > 60 else "black",
                    )
    index = "" if k <= _TICKS_MAX else " (index)"
    ax.set_xlabel("predicted class" + index)
    ax.set_ylabel("true class" + index)
    for spine in ax.spines.values():  # the model's colour frames its matrix, as in every other figure
        spine.set_visible(True)
        spine.set_color(color)
        spine.set_linewidth(3)
    ax.set_title(f"{model}: confusion matrix", fontweight="bold")
    cbar = fig.colorbar(im, ax=ax, shrink=0.8)
    cbar.set_label("share of the true class (%)" + ("" if k <= _ANNOTATE_MAX else ", power scale"))
    fig.supxlabel(note, fontsize=8, color="0.35")
    return fig


@styled
def fig_per_class_accuracy(
    models: Sequence[str], colors: Mapping[str, str], classes: Sequence[str], accuracy: np.ndarray, note: str
) -> Any:
    """Heat map of per-class test accuracy, models (rows, labelled in their colours) × classes (columns).

    Args:
        accuracy: (M, K) fractions; NaN where a model has no value.
    """
    m, k = accuracy.shape
    width = min(16.0, max(7.0, 2.5 + 0.55 * k)) if k <= 40 else 16.0
    fig = new_figure(width, max(2.8, 1.2 + 0.42 * m))
    ax = fig.subplots(1, 1, squeeze=False)[0][0]
    pct = accuracy * 100
    finite = pct[np.isfinite(pct)]
    vmin = float(np.floor(finite.min())) if finite.size else 0.0
    vmin = min(vmin, 99.0)
    im = ax.imshow(
        np.ma.masked_invalid(pct), cmap="viridis", vmin=vmin, vmax=100, aspect="auto", interpolation="nearest"
    )
    ax.grid(False)
    ax.set_yticks(range(m), list(models))
    for tick, model in zip(ax.get_yticklabels(), models, strict=False):
        tick.set_color(colors[model])
        tick.set_fontweight("bold")
    if k <= _TICKS_MAX:
        labels = [_short(c) for c in classes]
        ax.set_xticks(range(k), labels, rotation=90 if max(map(len, labels)) > 3 else 0, fontsize=8)
    else:
        step = max(1, k // 20)
        ax.set_xticks(range(0, k, step), [str(i) for i in range(0, k, step)], fontsize=7)
    if k <= 20 and m <= 20:
        for i in range(m):
            for j in range(k):
                if np.isfinite(pct[i, j]):
                    light = pct[i, j] < vmin + 0.55 * (100 - vmin)
                    ax.text(
                        j,
                        i,
                        f"{pct[i, j]:.1f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if light else "black",
                    )
    ax.set_xlabel("class" if k <= _TICKS_MAX else "class index")
    ax.set_title("Per-class test accuracy", fontweight="bold")
    cbar = fig.colorbar(im, ax=ax, shrink=0.9)
    cbar.set_label("accuracy (%)")
    fig.supxlabel(note, fontsize=8, color="0.35")
    return fig
