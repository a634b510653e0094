"""Leave-one-out k-NN classification accuracy: how well the features separate the classes
without training anything on top of them (a label-efficient measure of feature quality)."""

from __future__ import annotations

import numpy as np

from cnnbench.analysis.neighbors import Neighbors, nearest_neighbors
from cnnbench.errors import ConfigError

DEFAULT_KNN_K = 10


def knn_accuracy(
    features: np.ndarray,
    labels: np.ndarray,
    k: int = DEFAULT_KNN_K,
    neighbors: Neighbors | None = None,
) -> float:
    """Fraction of points whose k nearest other points (Euclidean) vote for their own class.

    Every point is classified by the majority of its ``k`` nearest neighbours among the other
    points (leave-one-out: a point never votes for itself). Ties go to the class of the nearer
    neighbours.

    Args:
        features: (N, D) points.
        labels: (N,) integer classes.
        k: voters per point, 1 ≤ k < N.
        neighbors: precomputed ``nearest_neighbors(features, k')`` with k' ≥ k, to share work.

    Raises:
        ConfigError: for a bad ``k`` or mismatched shapes.
    """
    y = np.asarray(labels)
    n = len(features)
    if y.shape != (n,):
        raise ConfigError(f"labels have shape {y.shape}; expected ({n},) to match the features")
    if not 1 <= k < n:
        raise ConfigError(f"k-NN k={k}: expected 1 <= k < {n} (the number of points)")
    if neighbors is None or neighbors.k < k:
        neighbors = nearest_neighbors(features, k)
    return float(np.mean(knn_predictions(y, neighbors, k) == y))


def knn_predictions(labels: np.ndarray, neighbors: Neighbors, k: int) -> np.ndarray:
    """(N,) class voted for each point by its ``k`` nearest other points; ties go to the nearer ones."""
    y = np.asarray(labels)
    classes, y_idx = np.unique(y, return_inverse=True)
    n = len(y)
    voters = y_idx[neighbors.indices[:, :k]]  # (N, k) class index of each neighbour, nearest first
    # Weight 1 per vote, plus a bonus decreasing with rank, summing to < 1: breaks ties toward nearer neighbours.
    weights = 1.0 + (k - np.arange(k)) * (0.5 / (k * k))
    votes = np.zeros((n, len(classes)))
    np.add.at(votes, (np.repeat(np.arange(n), k), voters.ravel()), np.tile(weights, n))
    return classes[votes.argmax(1)]
