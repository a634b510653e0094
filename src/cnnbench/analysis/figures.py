"""Figures of ``cnnbench embed``: the three t-SNE panels and the k-NN distance curve.

A 3-D map is drawn as its three 2-D projections side by side (t-SNE 1-2, 1-3, 2-3), one row per
panel: a PNG needs no viewer, and every point is seen from three sides.

Built on ``matplotlib.figure.Figure`` (Agg), never pyplot: no global state, no display needed.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from cnnbench.analysis.analyze import Analysis, SpaceAnalysis

NOISE_COLOR = "#9e9e9e"
OTHER_COLOR = "#303030"
_NOISE, _OTHER = -1, -2
#: Above this many groups a legend would hide the map: it is left out and the title says so.
MAX_LEGEND_ENTRIES = 20


def class_colors(n: int) -> np.ndarray:
    """(n, 4) RGBA colours, one per class: tab10 / tab20 when they suffice, else evenly along turbo."""
    from matplotlib import colormaps

    if n <= 10:
        return colormaps["tab10"](np.arange(n))
    if n <= 20:
        return colormaps["tab20"](np.arange(n))
    return colormaps["turbo"](np.linspace(0.0, 1.0, n))


def match_clusters(clusters: np.ndarray, labels: np.ndarray) -> dict[int, int]:
    """Cluster id -> the class it overlaps most under a one-to-one matching (Hungarian), noise left out.

    Colouring a cluster like its matched class makes the truth and clustering panels comparable.
    Clusters beyond the number of classes stay unmatched.
    """
    from scipy.optimize import linear_sum_assignment

    ids = np.unique(clusters[clusters != -1])
    classes = np.unique(labels)
    if ids.size == 0:
        return {}
    # (clusters, classes) overlap counts
    overlap = np.zeros((ids.size, classes.size), dtype=np.int64)
    np.add.at(
        overlap, (np.searchsorted(ids, clusters[clusters != -1]), np.searchsorted(classes, labels[clusters != -1])), 1
    )
    rows, cols = linear_sum_assignment(-overlap)
    return {int(ids[r]): int(classes[c]) for r, c in zip(rows, cols, strict=True) if overlap[r, c] > 0}


def _name(classes: Sequence[str] | None, label: int) -> str:
    return str(classes[label]) if classes is not None and 0 <= label < len(classes) else str(label)


def _cluster_groups(
    clusters: np.ndarray, labels: np.ndarray, palette: np.ndarray, classes: Sequence[str] | None
) -> tuple[np.ndarray, dict, dict]:
    """Groups to draw for a clustering: matched clusters in their class's colour, the unmatched
    ones together in dark grey, noise in light grey."""
    matched = match_clusters(clusters, labels)
    groups = clusters.copy()
    colors: dict[int, object] = {}
    names: dict[int, str] = {}
    unmatched = [int(c) for c in np.unique(clusters) if c != _NOISE and int(c) not in matched]
    for cid, cls in matched.items():
        colors[cid], names[cid] = palette[cls], f"{cid} ≈ {_name(classes, cls)}"
    if unmatched:
        groups[np.isin(clusters, unmatched)] = _OTHER
        n_pts = int(np.count_nonzero(groups == _OTHER))
        colors[_OTHER], names[_OTHER] = OTHER_COLOR, f"{len(unmatched)} more clusters ({n_pts:,} points)"
    if (clusters == _NOISE).any():
        colors[_NOISE], names[_NOISE] = NOISE_COLOR, f"noise ({int(np.count_nonzero(clusters == _NOISE)):,})"
    return groups, colors, names


#: The 2-D projections of a 3-D map, as pairs of axes (0-based), drawn side by side.
PROJECTIONS_3D = ((0, 1), (0, 2), (1, 2))


def _scatter_groups(ax, coords, groups, colors, names, size, dims=(0, 1)):
    """All points in one scatter, group by group (noise and unmatched first, underneath), and an empty
    scatter per group that carries its legend entry.

    One collection per panel instead of one per group saves a little drawing time (~6 % of the
    t-SNE figure at 1,000 points); the legend entries keep one colour per group.
    ``dims``: the two columns of ``coords`` (N, 2 or 3) to draw.
    """
    i, j = dims
    order = sorted(np.unique(groups), key=lambda v: (v >= 0, v))
    rank = np.empty(len(groups), dtype=np.int64)
    for r, g in enumerate(order):
        rank[groups == g] = r
    idx = np.argsort(rank, kind="stable")
    palette = np.array([to_rgba(colors[g]) for g in order])
    ax.scatter(coords[idx, i], coords[idx, j], s=size, c=palette[rank[idx]], linewidths=0, rasterized=True)
    for g in order:  # legend entries, in the same order
        ax.scatter([], [], s=size, color=colors[g], label=names[g], linewidths=0)


def _finish_panel(ax, title: str, n_groups: int, dims=(0, 1), legend: str | None = "below") -> None:
    """Axis labels, equal aspect, the title, and the legend ``below`` the panel, ``right`` of it, or none."""
    ax.set_xlabel(f"t-SNE {dims[0] + 1}")
    ax.set_ylabel(f"t-SNE {dims[1] + 1}")
    # t-SNE coordinates have no unit or scale worth reading (only neighbourhoods mean something), and
    # tick labels were about a third of the figure's time (every layout pass measures each one)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    if n_groups > MAX_LEGEND_ENTRIES:
        title = f"{title}\n(legend left out: {n_groups} groups)"
    elif legend is not None:
        place = (
            {"loc": "upper center", "bbox_to_anchor": (0.5, -0.12), "ncol": min(5, n_groups)}
            if legend == "below"
            else {"loc": "center left", "bbox_to_anchor": (1.02, 0.5), "ncol": 1 if n_groups <= 12 else 2}
        )
        ax.legend(
            **place,
            fontsize=8,
            markerscale=max(1.0, 24 / max(1.0, ax.collections[0].get_sizes()[0])) ** 0.5,
            frameon=False,
        )
    ax.set_title(title, fontsize=11)


def plot_tsne_panels(analysis: Analysis, title: str | None = None) -> Figure:
    """Three panels of the map: true classes, K-means clusters, DBSCAN clusters.

    A 2-D map gives one row of three panels. A 3-D map gives one row per panel, each with the
    map's three 2-D projections (t-SNE 1-2, 1-3, 2-3) side by side and the legend on the right.
    A cluster takes the colour of the class it is matched to (Hungarian matching on overlap),
    clusters matching no class are drawn together in dark grey, DBSCAN noise in light grey; both are labelled.
    """
    coords, labels, classes = analysis.coords, analysis.labels, analysis.classes
    n_classes = int(labels.max()) + 1
    palette = class_colors(n_classes)
    size = float(np.clip(20000 / max(1, len(coords)), 1.0, 12.0))

    km, db = analysis.map.kmeans, analysis.map.dbscan
    panels = [  # (groups, colours, names, title) of each panel; the legend has an entry per colour
        (
            labels,
            {int(c): palette[c] for c in np.unique(labels)},
            {c: _name(classes, c) for c in range(n_classes)},
            f"Truth ({len(np.unique(labels))} classes, {len(labels):,} points)",
        ),
        (
            *_cluster_groups(km.labels, labels, palette, classes),
            f"K-means, k = {km.k}: ARI {km.scores.ari:.3f}, NMI {km.scores.nmi:.3f}",
        ),
        (
            *_cluster_groups(db.labels, labels, palette, classes),
            f"DBSCAN, eps = {db.eps:.3g}, min_samples = {db.min_samples}: ARI {db.scores.ari:.3f}\n"
            f"{db.clusters} clusters, {db.noise_points:,} noise (grid chosen by ARI with labels)"
            if db.valid
            else "DBSCAN: no grid point gave 2 or more clusters",
        ),
    ]
    if coords.shape[1] == 2:
        fig = Figure(figsize=(18, 7.2), layout="constrained")
        for ax, (groups, colors, names, panel_title) in zip(fig.subplots(1, 3), panels, strict=True):
            _scatter_groups(ax, coords, groups, colors, names, size)
            _finish_panel(ax, panel_title, len(colors))
    else:
        fig = Figure(figsize=(20, 18), layout="constrained")
        for row, panel in zip(fig.subplots(3, 3), panels, strict=True):
            _projections(row, coords, panel, size)
        title = f"{title} · 3-D t-SNE, three projections" if title else "3-D t-SNE, three projections"
    if title:
        fig.suptitle(title, fontsize=13)
    return fig


def _projections(row, coords: np.ndarray, panel: tuple, size: float) -> None:
    """One panel of a 3-D map: its three 2-D projections side by side on the axes of ``row``."""
    groups, colors, names, panel_title = panel
    for k, (ax, dims) in enumerate(zip(row, PROJECTIONS_3D, strict=True)):
        _scatter_groups(ax, coords, groups, colors, names, size, dims)
        if k == 1:  # the panel's title (and a left-out legend's note) over the middle projection
            _finish_panel(ax, panel_title, len(colors), dims, legend=None)
        elif k == 2 and len(colors) <= MAX_LEGEND_ENTRIES:  # the legend right of the last one
            _finish_panel(ax, f"t-SNE {dims[0] + 1}–{dims[1] + 1}", len(colors), dims, legend="right")
        else:
            _finish_panel(ax, f"t-SNE {dims[0] + 1}–{dims[1] + 1}", 0, dims, legend=None)


def _plot_curve(ax, space: SpaceAnalysis, name: str) -> None:
    db = space.dbscan
    m = db.min_samples if db.valid and db.min_samples is not None else min(db.knee_eps)
    k = max(1, m - 1)
    curve = np.sort(space.neighbors.kth_distance(k))
    knee = db.knee_eps[m]
    ax.plot(np.arange(len(curve)), curve, color="C0", lw=1.5, label=f"distance to neighbour {k} (min_samples = {m})")
    ax.axhline(knee, color="C1", ls="--", lw=1.2, label=f"knee: eps = {knee:.3g}")
    knee_at = int(np.searchsorted(curve, knee))
    ax.plot([knee_at], [knee], "o", color="C1")
    if db.valid and db.eps is not None:
        ax.axhline(db.eps, color="C3", lw=1.2, label=f"chosen by ARI: eps = {db.eps:.3g} (ARI {db.scores.ari:.3f})")
    ax.set_xlabel("points, sorted by that distance")
    ax.set_ylabel(f"distance to the {k}-th nearest neighbour")
    ax.set_title(f"k-NN distance curve, {name}")
    ax.legend(loc="upper left", fontsize=9)
    ax.grid(alpha=0.3)


def plot_knn_distance(analysis: Analysis, title: str | None = None) -> Figure:
    """The sorted k-NN distance curve with its knee and the eps the grid search chose, per space."""
    spaces = [(analysis.map, "t-SNE map")] + ([(analysis.raw, "raw features")] if analysis.raw is not None else [])
    fig = Figure(figsize=(6.5 * len(spaces), 4.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(spaces)))
    for ax, (space, name) in zip(axes, spaces, strict=True):
        _plot_curve(ax, space, name)
    if title:
        fig.suptitle(title, fontsize=12)
    return fig


def figure_png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (to write atomically with ``cnnbench.utils.io.atomic_write_bytes``)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
