"""``analysis.json`` and ``embedding.npz`` (written by ``cnnbench embed``): their keys, and the report's reader.

Pure Python, no numpy or torch, so any layer can import it cheaply. docs/analysis.md describes
the same keys for users.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnbench.errors import ResultsError
from cnnbench.rundir.files import read_if_present
from cnnbench.rundir.layout import RunFiles, checksum_path

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


@dataclass
class ClusterScores:
    """The clustering scores of one run's embedding (``analysis.json``); None where not measured."""

    kmeans_ari: float | None
    kmeans_nmi: float | None
    dbscan_ari: float | None
    dbscan_nmi: float | None
    knn_accuracy: float | None
    raw_kmeans_ari: float | None  # the same scores on the raw high-dimensional features
    raw_kmeans_nmi: float | None
    dbscan_noise_points: float | None
    map_dims: int = 2  # the t-SNE map's dimensions (tsne.n_components; 3 with --n-components 3)
    checkpoint_sha256: str | None = None  # of the checkpoint analysed (analyses since round 3 record it)
    checkpoint_epoch: int | float | None = None


# what each score of analysis.json can be (an adjusted Rand index goes below 0; the others are fractions)
_SCORE_RANGES = {"ari": (-1.0, 1.0), "nmi": (0.0, 1.0), "knn_accuracy": (0.0, 1.0), "n_components": (1.0, 3.0)}
_FIGURE_LIMIT = 1e15


def read_analysis(run_dir: Path) -> ClusterScores | None:
    """``analysis.json`` read defensively (docs/analysis.md): top-level or ``tsne``-nested scores."""
    data = read_if_present(RunFiles(run_dir).analysis)
    if not isinstance(data, dict):
        return None
    two_d = data.get("tsne") if isinstance(data.get("tsne"), dict) else data
    raw = data.get("raw") if isinstance(data.get("raw"), dict) else {}

    path = RunFiles(run_dir).analysis

    def get(obj: Any, *keys: str) -> float | None:
        for key in keys:
            obj = obj.get(key) if isinstance(obj, dict) else None
        if not isinstance(obj, (int, float)) or isinstance(obj, bool):
            return None
        low, high = _SCORE_RANGES.get(keys[-1], (0.0, _FIGURE_LIMIT))
        if not (math.isfinite(obj) and low <= obj <= high):  # JSON cannot hold NaN here (refused when read)
            raise ResultsError(f"{path}: {'.'.join(keys)} {obj!r}: expected a number between {low:g} and {high:g}")
        return float(obj)

    def first(*values: float | None) -> float | None:
        return next((v for v in values if v is not None), None)

    return ClusterScores(
        kmeans_ari=first(get(two_d, "kmeans", "ari"), get(data, "kmeans", "ari")),
        kmeans_nmi=first(get(two_d, "kmeans", "nmi"), get(data, "kmeans", "nmi")),
        dbscan_ari=first(get(two_d, "dbscan", "ari"), get(data, "dbscan", "ari")),
        dbscan_nmi=first(get(two_d, "dbscan", "nmi"), get(data, "dbscan", "nmi")),
        knn_accuracy=first(get(data, "knn_accuracy"), get(two_d, "knn_accuracy"), get(raw, "knn_accuracy")),
        raw_kmeans_ari=get(raw, "kmeans", "ari"),
        raw_kmeans_nmi=get(raw, "kmeans", "nmi"),
        dbscan_noise_points=first(get(two_d, "dbscan", "noise_points"), get(data, "dbscan", "noise_points")),
        map_dims=3 if get(two_d, "n_components") == 3 else 2,
        checkpoint_sha256=data.get("checkpoint_sha256") if isinstance(data.get("checkpoint_sha256"), str) else None,
        checkpoint_epoch=get(data, "checkpoint_epoch"),
    )


def analysis_is_outdated(run_dir: Path, scores: ClusterScores) -> bool:
    """Whether ``analysis.json`` was made from another checkpoint than the run's best one now (``cnnbench
    embed --force`` while the run trained on, or a run resumed after its analysis): its recorded hash is
    not in ``checkpoint/best.pt.sha256``. An analysis that records no hash (older versions) is not judged."""
    return best_checkpoint_differs(run_dir, scores.checkpoint_sha256)


def best_checkpoint_differs(run_dir: str | Path, sha256: str | None) -> bool:
    """Whether the run's best checkpoint now is another file than the one whose SHA-256 is ``sha256``
    (judged by ``checkpoint/best.pt.sha256``; False when either is unknown)."""
    side = checksum_path(RunFiles(run_dir).checkpoint("best"))
    if not sha256 or not side.is_file():
        return False
    try:
        hashes = {line.split()[0].lower() for line in side.read_text(encoding="utf-8").splitlines() if line.strip()}
    except (OSError, UnicodeDecodeError):
        return False
    return bool(hashes) and sha256.lower() not in hashes
