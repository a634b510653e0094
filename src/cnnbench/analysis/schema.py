"""The keys of ``analysis.json`` (written by ``cnnbench embed``), for readers such as the report.

Pure Python, no numpy or torch, so any layer can import it cheaply. docs/analysis.md describes
the same keys for users.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ANALYSIS_FORMAT = "cnnbench-analysis-v1"

#: Scores of one clustering method, present in every ``<space>.<method>`` object.
CLUSTER_SCORE_KEYS = ("ari", "nmi", "silhouette")

#: Dotted key -> meaning. ``<space>`` is ``tsne`` (the t-SNE map) or ``raw`` (the pooled features).
ANALYSIS_KEYS: dict[str, str] = {
    "format": f"always {ANALYSIS_FORMAT!r}",
    "model": "model name (from the run's config), or null",
    "dataset": "dataset name, or null",
    "split": "split the points come from (test, val or train)",
    "run_dir": "the run directory analysed, or null",
    "checkpoint": "checkpoint file the features came from, or null",
    "checkpoint_epoch": "epochs the run had finished when that checkpoint was saved (its best epoch), or null",
    "checkpoint_sha256": "SHA-256 of the checkpoint's bytes as loaded: the report compares it with the run's "
    "best.pt.sha256 to say when the analysis is older than the run's best checkpoint",
    "device": "device the features were computed on, or null",
    "points": "number of points analysed (after --max-points subsampling)",
    "num_classes": "number of classes among the points",
    "feature_dim": "width D of the pooled pre-logit features",
    "classes": "class names, index = label",
    "kmeans": "copy of tsne.kmeans (the MNIST study's K-means on the t-SNE map)",
    "dbscan": "copy of tsne.dbscan (the MNIST study's DBSCAN on the t-SNE map)",
    "knn_accuracy": "copy of raw.knn_accuracy: leave-one-out k-NN accuracy on the features",
    "knn_k": "k of the k-NN accuracy",
    "silhouette_sample": "at most this many points (seeded sample) enter each silhouette",
    "dbscan_uses_labels": "always true: the DBSCAN grid search picks (eps, min_samples) by ARI against the labels",
    "tsne": "scores on the t-SNE map (kmeans, dbscan, knn_accuracy) and how the map was made",
    "raw": "the same scores on the raw (N, D) features (kmeans, dbscan, knn_accuracy); null with --no-raw",
    "tsne.backend": "t-SNE implementation (opentsne or sklearn)",
    "tsne.n_components": "dimensions of the map: 2 (default) or 3 (--n-components)",
    "tsne.perplexity": "perplexity used (clipped to (N - 1) / 3)",
    "tsne.seed": "seed of the PCA, neighbour search and t-SNE optimisation",
    "tsne.iterations": "early exaggeration + main iterations",
    "tsne.pca_dims": "PCA width applied before t-SNE, or null",
    "tsne.neighbors": "nearest-neighbour search of the t-SNE affinities: exact, or auto (openTSNE's Annoy, legacy)",
    "tsne.gradient": "negative-gradient method: bh, fft, or fft+bh (FFT while exaggerated, then Barnes-Hut)",
    "tsne.kl_divergence": "KL divergence reported by the backend at the end",
    "<space>.kmeans.ari": "adjusted Rand index of K-means (k = num_classes) vs. the labels",
    "<space>.kmeans.nmi": "normalised mutual information of K-means vs. the labels",
    "<space>.kmeans.silhouette": "silhouette of the K-means clusters (null if undefined)",
    "<space>.kmeans.k": "number of K-means clusters",
    "<space>.kmeans.inertia": "K-means within-cluster sum of squares",
    "<space>.dbscan.ari": "ARI of the best DBSCAN labelling, noise counted as one group (null if none valid)",
    "<space>.dbscan.nmi": "NMI of that labelling",
    "<space>.dbscan.silhouette": "silhouette of its clusters, noise points left out",
    "<space>.dbscan.eps": "chosen eps (in the units of that space)",
    "<space>.dbscan.min_samples": "chosen min_samples (the point itself included)",
    "<space>.dbscan.noise_points": "points labelled noise",
    "<space>.dbscan.clusters": "clusters found, noise excluded",
    "<space>.dbscan.valid": "false when every grid point gave all noise or one cluster",
    "<space>.dbscan.uses_labels": "always true (see dbscan_uses_labels)",
    "<space>.dbscan.knee_eps": "min_samples -> eps at the knee of its sorted k-NN distance curve",
    "<space>.dbscan.grid": "eps_factors, min_samples, evaluated (count), truncated (largest eps skipped for memory)",
    "<space>.dbscan.candidates": "every grid point: eps, min_samples, ari, clusters, noise_points",
    "<space>.knn_accuracy": "leave-one-out k-NN accuracy in that space",
    "notes": "list of remarks (subsampling, clipped perplexity, skipped raw analysis, ...)",
    "seconds": "wall time per stage; keys listed in SECONDS_KEYS, plus total (raw_kmeans and files may overlap others)",
}

#: Arrays in ``embedding.npz`` -> meaning (``raw_*`` absent with --no-raw, ``classes`` when known).
EMBEDDING_KEYS: dict[str, str] = {
    "features": "(N, D) float32 pooled pre-logit features",
    "coords": "(N, n_components) float32 t-SNE coordinates (n_components 2 or 3)",
    "labels": "(N,) int64 true classes",
    "kmeans": "(N,) int64 K-means cluster per point, on the t-SNE map",
    "dbscan": "(N,) int64 DBSCAN cluster per point on the t-SNE map, -1 = noise",
    "raw_kmeans": "(N,) int64 K-means cluster per point, on the raw features",
    "raw_dbscan": "(N,) int64 DBSCAN cluster per point on the raw features, -1 = noise",
    "indices": "(N,) int64 row of each point in the split (after --max-points sampling)",
    "classes": "(num_classes,) str class names, index = label",
}

#: Stages timed in ``seconds`` (those that ran; ``model``, ``data``, ``features``, ``figures`` and
#: ``files`` (embedding.npz) only from ``cnnbench embed``). ``imports``: openTSNE, scikit-learn and
#: matplotlib, once per process. ``tsne`` is the whole map; ``tsne_pca``, ``tsne_affinities`` (k-NN
#: search, perplexity calibration, PCA initialisation), ``tsne_early`` and ``tsne_main`` (the two
#: optimisation phases) are its parts. ``total`` is wall time.
SECONDS_KEYS = (
    "model",
    "data",
    "features",
    "imports",
    "tsne",
    "tsne_pca",
    "tsne_affinities",
    "tsne_early",
    "tsne_main",
    "tsne_neighbors",
    "tsne_kmeans",
    "tsne_dbscan",
    "tsne_knn",
    "raw_neighbors",
    "raw_kmeans",
    "raw_dbscan",
    "raw_knn",
    "figures",
    "files",
    "total",
)


def analysis_value(obj: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """Read a dotted key (``"raw.kmeans.ari"``) from a parsed analysis.json, ``default`` when absent or null."""
    node: Any = obj
    for part in key.split("."):
        if not isinstance(node, Mapping) or node.get(part) is None:
            return default
        node = node[part]
    return node
