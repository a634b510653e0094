"""One look for every report figure: a fixed colour per model, sizes, fonts, PNG encoding.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot, no global backend state),
which renders with Agg on ``savefig``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

DPI = 100  # 100 dpi keeps a 10-model study's ~35 figures within seconds and the HTML small
_TAB10 = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.axisbelow": True,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
}


def model_colors(models: Iterable[str]) -> dict[str, str]:
    """A fixed colour per model, from the sorted model list: the same model has the same colour everywhere.

    Up to 10 models get matplotlib's tab10, up to 20 tab20; more are spread around the hue circle.
    """
    names = sorted(set(models))
    if len(names) <= 10:
        palette = list(_TAB10)
    else:
        from matplotlib import colormaps
        from matplotlib.colors import to_hex

        cmap = colormaps["tab20"] if len(names) <= 20 else colormaps["hsv"]
        n = 20 if len(names) <= 20 else len(names) + 1
        palette = [to_hex(cmap(i / n if n > 20 else i)) for i in range(n)]
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def new_figure(width: float, height: float, layout: str | None = "constrained") -> Any:
    """A matplotlib Figure of ``width`` × ``height`` inches, laid out with constrained layout by default.

    ``layout=None`` leaves placement to ``subplots_adjust``: half the rendering time of a many-axes figure.
    """
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout=layout)


def png_bytes(fig: Any) -> bytes:
    """Render ``fig`` to PNG bytes (Agg)."""
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return buf.getvalue()


def styled(func: Any) -> Any:
    """Decorator: build the figure inside the report's rc context (fonts, grid, spines)."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import matplotlib

        with matplotlib.rc_context(RC):
            return func(*args, **kwargs)

    return wrapper


def model_ticks(ax: Any, names: list[str] | tuple[str, ...]) -> None:
    """Model names under the bars, slanted when they would collide; no vertical grid lines."""
    slant = len(names) * max((len(n) for n in names), default=0) > 36
    ax.set_xticks(range(len(names)), list(names), rotation=30 if slant else 0, ha="right" if slant else "center")
    if slant:
        # anchor the slanted label's end under its bar
        for label in ax.get_xticklabels():
            label.set_rotation_mode("anchor")
    ax.grid(axis="x", visible=False)


def legend_below(fig: Any, handles: list[Any], title: str | None = None) -> None:
    """A figure legend under the panels, outside the data, so it never hides a bar."""
    fig.legend(handles=handles, title=title, loc="outside lower center", ncol=min(len(handles), 5), frameon=False)
