"""Accuracy against speed and against size, with the Pareto frontier marked.

A model is on the frontier when no other model is at least as accurate and at least as fast (or
small) while strictly better in one of the two. Neither seed study drew this; it answers "what do I
give up for speed".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cnnbench.report.style import new_figure, styled


@dataclass(frozen=True)
class ParetoPoint:
    model: str
    x: float
    y: float  # accuracy in %
    xerr: float | None = None
    yerr: float | None = None


def pareto_front(xs: Sequence[float], ys: Sequence[float], maximize_x: bool) -> list[int]:
    """Indices of the non-dominated points, ordered from the best x to the worst.

    ``ys`` is always maximised; ``xs`` is maximised (throughput) or minimised (size, latency).
    """
    order = sorted(range(len(xs)), key=lambda i: (-xs[i] if maximize_x else xs[i], -ys[i]))
    front: list[int] = []
    best_y = float("-inf")
    for i in order:
        if ys[i] > best_y:
            front.append(i)
            best_y = ys[i]
    return front


@styled
def fig_pareto(
    points: Sequence[ParetoPoint],
    colors: Mapping[str, str],
    *,
    x_label: str,
    maximize_x: bool,
    title: str,
    note: str | None = None,
    log_x: bool = True,
) -> Any:
    """Scatter of accuracy vs. ``x`` per model (its colour, its name beside it), frontier joined by a line."""
    fig = new_figure(7.6, 5.0)
    ax = fig.subplots(1, 1, squeeze=False)[0][0]
    xs = [p.x for p in points]
    ys = [p.y for p in points]
    front = set(pareto_front(xs, ys, maximize_x))
    for i, p in enumerate(points):
        _point(ax, p, colors[p.model], on_front=i in front)
    ordered = pareto_front(xs, ys, maximize_x)
    if ordered:
        fx = [xs[i] for i in ordered]
        fy = [ys[i] for i in ordered]
        ax.step(fx, fy, where="post", color="black", lw=1.2, ls="--", zorder=2, label="Pareto frontier")
        ax.plot([], [], "o", color="white", mec="black", mew=1.6, label="on the frontier (black ring)")
        ax.legend(loc="lower right" if maximize_x else "lower left", fontsize=8, framealpha=0.9)
    if log_x and all(x > 0 for x in xs):
        ax.set_xscale("log")
    if ys:
        span = max(max(ys) - min(ys), 0.05)
        ax.set_ylim(max(0.0, min(ys) - 0.5 * span), min(100 + 0.1 * span, max(ys) + 0.3 * span))
    _label_points(fig, ax, points)
    ax.set_xlabel(x_label + ("  (better →)" if maximize_x else "  (← better)"))
    ax.set_ylabel("test accuracy (%)  (better ↑)")
    ax.set_title(title, fontweight="bold")
    if note:
        fig.supxlabel(note, fontsize=8, color="0.35")
    return fig


def _point(ax: Any, p: ParetoPoint, color: str, on_front: bool) -> None:
    """One model: its mean with error bars; a black ring when it is on the frontier."""
    ax.errorbar(
        p.x,
        p.y,
        xerr=p.xerr,
        yerr=p.yerr,
        fmt="o",
        ms=9 if on_front else 7,
        color=color,
        mec="black" if on_front else color,
        mew=1.6 if on_front else 0.5,
        ecolor="0.5",
        elinewidth=0.8,
        capsize=2,
        zorder=3,
    )


def _label_points(fig: Any, ax: Any, points: Sequence[ParetoPoint]) -> None:
    """Name each point beside it, choosing for each the offset that overlaps the labels placed so far least."""
    fig.canvas.draw()  # fixes the axis limits, so data → pixel positions are final
    offsets = [(6, 5), (6, -13), (-8, 5), (-8, -13), (6, 14), (6, -22)]
    char_w, height = 5.6, 11.0  # pixels of an 8.5 pt character at 100 dpi, roughly
    pixels = [ax.transData.transform((p.x, p.y)) for p in points]
    placed: list[tuple[float, float, float, float]] = [(x - 6, y - 6, x + 6, y + 6) for x, y in pixels]  # markers
    for p, (px, py) in zip(points, pixels, strict=False):
        width = char_w * len(p.model)
        best, best_cost = offsets[0], float("inf")
        for dx, dy in offsets:
            x0 = px + dx if dx > 0 else px + dx - width
            box = (x0, py + dy, x0 + width, py + dy + height)
            cost = sum(_overlap(box, other) for other in placed)
            if cost < best_cost:
                best, best_cost = (dx, dy), cost
            if cost == 0:
                break
        dx, dy = best
        x0 = px + dx if dx > 0 else px + dx - width
        placed.append((x0, py + dy, x0 + width, py + dy + height))
        ax.annotate(
            p.model,
            (p.x, p.y),
            xytext=(dx, dy),
            textcoords="offset pixels",
            ha="left" if dx > 0 else "right",
            fontsize=8.5,
            color="0.1",
        )


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)
