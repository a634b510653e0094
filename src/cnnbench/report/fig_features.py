"""Feature analysis across models: the ARI / NMI comparison chart (the MNIST study's Figure 47, extended)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cnnbench.report.style import legend_below, model_ticks, new_figure, styled
from cnnbench.rundir.analysis import ClusterScores

_METHODS = (
    ("K-means on the t-SNE map", "kmeans", ""),
    ("DBSCAN on the t-SNE map (grid search on labels)", "dbscan", "//"),
    ("K-means on the raw features", "raw_kmeans", ".."),
)


@styled
def fig_cluster_scores(models: Sequence[str], colors: Mapping[str, str], scores: Mapping[str, ClusterScores]) -> Any:
    """ARI and NMI of K-means and DBSCAN on each model's t-SNE map (and K-means on the raw features when
    measured), plus k-NN accuracy when measured.

    Colour is the model's; the hatch tells the clustering method apart.
    """
    from matplotlib.patches import Patch

    methods = [
        m for m in _METHODS if any(getattr(scores[x], f"{m[1]}_ari") is not None for x in models if x in scores)
    ] or list(_METHODS[:2])
    has_knn = any(scores[m].knn_accuracy is not None for m in models if m in scores)
    panels = [
        ("ari", "Adjusted Rand index (ARI)", "ARI (1 = clusters match classes)"),
        ("nmi", "Normalised mutual information", "NMI"),
    ]
    n = len(panels) + (1 if has_knn else 0)
    fig = new_figure(max(9.0, min(17.0, (1.4 + 0.5 * len(models)) * n)), 4.4)
    axes = fig.subplots(1, n, squeeze=False)[0]
    width = 0.8 / len(methods)
    for ax, (score, title, ylabel) in zip(axes, panels, strict=False):
        for j, (_, prefix, hatch) in enumerate(methods):
            for i, model in enumerate(models):
                value = getattr(scores[model], f"{prefix}_{score}") if model in scores else None
                x = i + (j - (len(methods) - 1) / 2) * width
                if value is None:
                    ax.text(x, 0.01, "n/a", ha="center", va="bottom", fontsize=6.5, rotation=90, color="#b00020")
                    continue
                ax.bar(x, value, width, color=colors[model], edgecolor="black", linewidth=0.5, hatch=hatch)
        ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.05)
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        model_ticks(ax, list(models))
    if has_knn:
        ax = axes[-1]
        for i, model in enumerate(models):
            value = scores[model].knn_accuracy if model in scores else None
            if value is not None:
                bar = ax.bar(i, value * 100, 0.6, color=colors[model], edgecolor="black", linewidth=0.5)
                ax.bar_label(bar, labels=[f"{value * 100:.1f}"], padding=2, fontsize=7.5)
        present = [scores[m].knn_accuracy * 100 for m in models if m in scores and scores[m].knn_accuracy is not None]
        lo = min(present)
        ax.set_ylim(max(0.0, lo - 0.6 * max(100 - lo, 1.0)), 100.5)
        ax.set_title("k-NN accuracy on the features (zoomed)")
        ax.set_ylabel("accuracy (%)")
        model_ticks(ax, list(models))
    handles = [Patch(facecolor="white", edgecolor="black", hatch=h * 2, label=label) for label, _, h in methods]
    legend_below(fig, handles, "clustering (colour = model)")
    fig.suptitle("How well the learned features cluster by class", fontsize=12, fontweight="bold")
    return fig
