"""Nearest neighbours of every point, computed once per space and shared by the k-NN curve,
k-NN accuracy and the DBSCAN search."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from scipy import sparse


def default_n_jobs() -> int:
    """The CPU cores this process may use (2 on the development machine), at most ``OMP_NUM_THREADS``
    when that is set (``--threads N`` sets it: a user who asked for one thread gets one here too)."""
    try:
        cores = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        cores = max(1, os.cpu_count() or 1)
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(cores, int(limit)) if limit.isdigit() and int(limit) > 0 else cores


@dataclass(frozen=True)
class Neighbors:
    """The ``k`` nearest other points of every point (self excluded), nearest first."""

    distances: np.ndarray  # (N, k) float64, ascending per row
    indices: np.ndarray  # (N, k) int64

    @property
    def k(self) -> int:
        return int(self.distances.shape[1])

    def kth_distance(self, k: int) -> np.ndarray:
        """(N,) distance of every point to its k-th nearest other point (k starts at 1)."""
        return self.distances[:, k - 1]


def nearest_neighbors(features: np.ndarray, k: int, n_jobs: int | None = None) -> Neighbors:
    """Exact Euclidean k nearest neighbours of every point among the others.

    Args:
        features: (N, D) points.
        k: neighbours per point; clipped to N - 1.
        n_jobs: CPU threads (default: every core this process may use).
    """
    from sklearn.neighbors import NearestNeighbors

    x = np.ascontiguousarray(features, dtype=np.float32)
    k = int(min(k, len(x) - 1))
    # Trees help in 2-D; in hundreds of dimensions a blocked brute-force matmul is faster.
    algorithm = "kd_tree" if x.shape[1] <= 8 else "brute"
    nn = NearestNeighbors(n_neighbors=k, algorithm=algorithm, n_jobs=n_jobs or default_n_jobs()).fit(x)
    # X=None: a point is not its own neighbour, even when it has exact duplicates.
    dist, idx = nn.kneighbors(None, return_distance=True)
    return Neighbors(distances=dist.astype(np.float64), indices=idx.astype(np.int64))


def pair_counts(features: np.ndarray, radii: np.ndarray, sample: int = 1000, seed: int = 0) -> np.ndarray:
    """Estimated number of ordered pairs (self pairs included) at most each radius apart, from a sample of rows.

    Returns:
        (R,) estimates, one per radius, for sizing a neighbourhood graph before building it.
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    rng = np.random.default_rng(seed)
    rows = x[rng.choice(len(x), size=min(sample, len(x)), replace=False)]
    # (S, N) squared distances by the dot-product identity; float32 is enough for a count.
    d2 = ((rows**2).sum(1)[:, None] + (x**2).sum(1)[None, :] - 2.0 * rows @ x.T).ravel()
    radii = np.atleast_1d(np.asarray(radii, dtype=np.float64))
    order = np.argsort(radii)
    r2 = radii[order] ** 2
    # Each distance counts for every radius at least as large: bin the distances between the sorted
    # radii and add up (a million distances at 1,000 points: 10 ms, where sorting them took 60 ms).
    first = np.searchsorted(r2, d2, side="left")  # the smallest radius that holds each pair
    hits = np.empty(len(radii), dtype=np.int64)
    hits[order] = np.cumsum(np.bincount(first, minlength=len(radii) + 1)[: len(radii)])
    return hits * (len(x) / len(rows))


def restrict_graph(graph: sparse.csr_matrix, radius: float) -> sparse.csr_matrix:
    """The entries of a row-sorted distance graph that are ≤ ``radius`` (rows stay sorted)."""
    keep = graph.data <= radius
    # New row pointers: kept entries before each old row start.
    kept_before = np.zeros(len(keep) + 1, dtype=graph.indptr.dtype)
    np.cumsum(keep, dtype=graph.indptr.dtype, out=kept_before[1:])
    indptr = kept_before[graph.indptr]
    restricted = sparse.csr_matrix((graph.data[keep], graph.indices[keep], indptr), shape=graph.shape)
    restricted.has_sorted_indices = graph.has_sorted_indices  # a row's kept entries keep their order
    return restricted


def radius_graph(features: np.ndarray, radius: float, n_jobs: int | None = None) -> sparse.csr_matrix:
    """Sparse (N, N) distances of all pairs closer than ``radius``, rows sorted, for DBSCAN(metric="precomputed")."""
    from sklearn.neighbors import NearestNeighbors

    x = np.ascontiguousarray(features, dtype=np.float32)
    algorithm = "kd_tree" if x.shape[1] <= 8 else "brute"
    nn = NearestNeighbors(radius=radius, algorithm=algorithm, n_jobs=n_jobs or default_n_jobs()).fit(x)
    graph = nn.radius_neighbors_graph(x, mode="distance", sort_results=True).tocsr()
    if graph.nnz < np.iinfo(np.int32).max:  # 32-bit indices: half the memory traffic of every later pass
        graph.indices = graph.indices.astype(np.int32)
        graph.indptr = graph.indptr.astype(np.int32)
    return graph
