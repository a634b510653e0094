"""The learning-rate range test of each model: smoothed loss against the learning rate, the pick marked.

What ``--lr auto`` did for every architecture, drawn as fastai's ``lr_find`` plot: one panel per model,
the raw loss faint, the smoothed loss in the model's colour, the picked learning rate as a vertical line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cnnbench.report.style import new_figure, styled
from cnnbench.rundir.tables import LrFindCurve


@styled
def fig_lr_find(curves: Sequence[tuple[str, LrFindCurve]], colors: Mapping[str, str]) -> Any:
    """A grid of panels (up to 5 per row), one per (model, curve)."""
    n = max(1, len(curves))
    cols = min(5, n)
    rows = math.ceil(n / cols)
    fig = new_figure(3.0 * cols + 0.6, 2.5 * rows + 0.9)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, (model, curve) in zip(axes, curves, strict=False):
        color = colors.get(model, "C0")
        ax.plot(curve.lr, curve.loss, color=color, alpha=0.3, lw=0.8)
        ax.plot(curve.lr, curve.smoothed, color=color, lw=1.8)
        ax.set_xscale("log")
        finite = curve.smoothed[np.isfinite(curve.smoothed)]
        if finite.size:  # the rise after divergence would flatten the part that matters
            low, high = float(finite.min()), float(finite[0])
            pad = max(0.05, 0.15 * (high - low))
            ax.set_ylim(low - pad, max(high, low) + 3 * pad)
        if curve.picked_lr is not None:
            ax.axvline(curve.picked_lr, color="black", lw=1.0, ls="--")
            ax.set_title(f"{model}\npicked lr {curve.picked_lr:.2g}", fontsize=9)
        else:
            ax.set_title(model, fontsize=9)
        ax.set_xlabel("learning rate", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(curves) :]:
        ax.set_visible(False)
    axes[0].set_ylabel("training loss", fontsize=8)
    # one panel is 3.6 inches wide: the title goes on two lines there instead of being cut at the edges
    sep = "\n" if cols < 3 else " "
    fig.suptitle(f"Learning-rate range test per model{sep}(smoothed loss; dashed: the pick)", fontsize=11)
    return fig
