"""DBSCAN on a set of points, with (eps, min_samples) searched against the true labels.

The search is the MNIST study's method (its section 4.3): ``eps`` starts at the knee of the sorted
k-NN distance curve, then a grid over ``eps`` around that knee and over ``min_samples`` keeps the
pair with the highest ARI. That search reads the true labels, so its scores are an optimistic upper
bound for DBSCAN, not an unsupervised result; ``uses_labels`` says so in every output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from cnnbench.analysis.clustering import DEFAULT_SILHOUETTE_SAMPLE, ClusterScores, check_points, score_clustering
from cnnbench.analysis.knee import find_knee
from cnnbench.analysis.neighbors import Neighbors, nearest_neighbors, pair_counts, radius_graph, restrict_graph
from cnnbench.errors import ConfigError

#: ``eps`` = knee × factor; nine steps, geometric from half to twice the knee.
DEFAULT_EPS_FACTORS: tuple[float, ...] = tuple(float(f) for f in np.round(np.geomspace(0.5, 2.0, 9), 4))
#: ``min_samples`` tried (the point itself included, as scikit-learn counts it).
DEFAULT_MIN_SAMPLES: tuple[int, ...] = (5, 10, 20, 40)
#: Cap on the stored pairs of the shared eps-neighbourhood graph (~12 bytes each, ~120 MB): a mean
#: neighbourhood of 1,000 points at N = 10,000, where ten equal classes must already merge.
DEFAULT_MAX_GRAPH_ENTRIES = 10_000_000


@dataclass(frozen=True)
class DbscanCandidate:
    """One (eps, min_samples) point of the grid and what it gave."""

    eps: float
    min_samples: int
    ari: float
    clusters: int  # noise excluded
    noise_points: int

    @property
    def degenerate(self) -> bool:
        """All noise, or a single cluster: never kept as the best, whatever its ARI."""
        return self.clusters < 2


@dataclass(frozen=True)
class DbscanResult:
    """The best DBSCAN labelling found by the ARI-guided grid search.

    ``valid`` is False when every grid point gave all noise or a single cluster; the labels are
    then all -1 and the scores None.
    """

    labels: np.ndarray  # (N,) cluster index per point, -1 = noise
    valid: bool
    eps: float | None
    min_samples: int | None
    scores: ClusterScores
    noise_points: int | None
    clusters: int | None
    knee_eps: dict[int, float]  # min_samples -> eps at the knee of its k-NN distance curve
    candidates: list[DbscanCandidate] = field(default_factory=list)
    eps_factors: tuple[float, ...] = DEFAULT_EPS_FACTORS
    grid_truncated: bool = False  # the largest eps values were skipped to bound memory

    def to_dict(self) -> dict[str, Any]:
        return {
            "ari": self.scores.ari,
            "nmi": self.scores.nmi,
            "silhouette": self.scores.silhouette,
            "eps": self.eps,
            "min_samples": self.min_samples,
            "noise_points": self.noise_points,
            "clusters": self.clusters,
            "valid": self.valid,
            "uses_labels": True,
            "knee_eps": {str(m): e for m, e in self.knee_eps.items()},
            "grid": {
                "eps_factors": list(self.eps_factors),
                "min_samples": sorted(self.knee_eps),
                "evaluated": len(self.candidates),
                "truncated": self.grid_truncated,
            },
            "candidates": [
                {
                    "eps": c.eps,
                    "min_samples": c.min_samples,
                    "ari": c.ari,
                    "clusters": c.clusters,
                    "noise_points": c.noise_points,
                }
                for c in self.candidates
            ],
        }


def knee_eps(neighbors: Neighbors, min_samples: int) -> float:
    """``eps`` at the knee of the sorted distances to the (min_samples - 1)-th other point.

    A point is a DBSCAN core point at ``eps`` exactly when that distance is ≤ eps (scikit-learn
    counts the point itself in ``min_samples``).
    """
    curve = np.sort(neighbors.kth_distance(max(1, min_samples - 1)))
    eps = float(curve[find_knee(curve)])
    if eps <= 0:  # duplicated points: fall back to the smallest positive distance
        positive = curve[curve > 0]
        eps = float(positive[0]) if positive.size else 1e-6
    return eps


def dbscan_labels(graph: sparse.csr_matrix, min_samples: int) -> np.ndarray:
    """DBSCAN on a precomputed eps-neighbourhood graph: the labels of scikit-learn's
    ``DBSCAN(eps, min_samples, metric="precomputed").fit(graph)``, computed with array operations.

    scikit-learn turns the graph into one Python array per point and walks it point by point: 36
    grid points on 10,000 raw features took 6 of the 11 s of the search. Here, core points have at
    least ``min_samples`` points within eps (the point itself counted); clusters are the connected
    components of the core points, numbered in the order of their lowest-index core point (the order
    scikit-learn's scan finds them); a border point joins the lowest-numbered cluster among its core
    neighbours (the first one that reaches it in that scan); the rest is noise, -1.

    Args:
        graph: (N, N) CSR, one entry per pair within eps (symmetric, as a distance graph is; the
            diagonal may be present or not).
        min_samples: neighbours within eps that make a core point, the point itself included.

    Returns:
        (N,) int64 cluster per point, -1 = noise.
    """
    from scipy.sparse.csgraph import connected_components

    n = graph.shape[0]
    per_row = np.diff(graph.indptr)
    cols = graph.indices
    rows = np.repeat(np.arange(n, dtype=cols.dtype), per_row)  # (nnz,) row of every entry
    has_self = np.zeros(n, dtype=bool)
    has_self[rows[cols == rows]] = True
    core = per_row + ~has_self >= min_samples  # neighbours within eps, the point itself counted once
    labels = np.full(n, -1, dtype=np.int64)
    if not core.any():
        return labels
    col_core, row_core = core[cols], np.repeat(core, per_row)  # (nnz,) each entry's ends are core points
    # The core points and the edges between them; components of this graph are the clusters.
    core_graph = _core_graph(graph, cols, col_core & row_core)
    # On a symmetric graph the strong components are the connected ones, and need no transpose.
    _, component = connected_components(core_graph, directed=True, connection="strong")
    core_idx = np.flatnonzero(core)
    labels[core_idx] = _numbered(component, core_idx)
    border = np.flatnonzero(col_core > row_core)  # entries from a non-core point to a core point
    if border.size:
        claim = np.full(n, np.iinfo(np.int64).max)
        np.minimum.at(claim, rows[border], labels[cols[border]])
        claimed = claim != np.iinfo(np.int64).max
        labels[claimed] = claim[claimed]
    return labels


def _core_graph(graph: sparse.csr_matrix, cols: np.ndarray, keep: np.ndarray) -> sparse.csr_matrix:
    """The entries ``keep`` of ``graph`` (the edges between core points) as an (N, N) CSR matrix."""
    n = graph.shape[0]
    kept_before = np.zeros(len(keep) + 1, dtype=graph.indptr.dtype)
    np.cumsum(keep, dtype=graph.indptr.dtype, out=kept_before[1:])
    core_graph = sparse.csr_matrix((np.ones(int(kept_before[-1])), cols[keep], kept_before[graph.indptr]), shape=(n, n))
    # Rows keep their order, so they stay sorted and duplicate-free: said so, scipy skips a sort per call.
    core_graph.has_sorted_indices = True
    core_graph.has_canonical_format = True
    return core_graph


def _numbered(component: np.ndarray, core_idx: np.ndarray) -> np.ndarray:
    """The cluster of each core point: its component, numbered by the component's lowest-index core point."""
    ids, first = np.unique(component[core_idx], return_index=True)
    number = np.empty(len(ids), dtype=np.int64)
    number[np.argsort(first)] = np.arange(len(ids))
    lookup = np.full(int(component.max()) + 1, -1, dtype=np.int64)
    lookup[ids] = number
    return lookup[component[core_idx]]


def _dbscan_sklearn(graph: sparse.csr_matrix, eps: float, min_samples: int) -> np.ndarray:
    """scikit-learn's DBSCAN on the same graph: the reference ``dbscan_labels`` must equal (legacy=True)."""
    from sklearn.cluster import DBSCAN

    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit(graph).labels_.astype(np.int64)


def dbscan_search(
    features: np.ndarray,
    labels: np.ndarray,
    neighbors: Neighbors | None = None,
    min_samples_grid: Sequence[int] = DEFAULT_MIN_SAMPLES,
    eps_factors: Sequence[float] = DEFAULT_EPS_FACTORS,
    silhouette_sample: int = DEFAULT_SILHOUETTE_SAMPLE,
    seed: int = 0,
    max_graph_entries: int = DEFAULT_MAX_GRAPH_ENTRIES,
    n_jobs: int | None = None,
    legacy: bool = False,
) -> DbscanResult:
    """DBSCAN with (eps, min_samples) chosen by the highest ARI against ``labels``.

    For every ``min_samples`` m of the grid, the knee of the sorted distance to the (m-1)-th
    neighbour gives a base eps; eps = base × each of ``eps_factors``. One neighbourhood graph at
    the largest eps is computed once and every grid point runs DBSCAN on it. A labelling that is
    all noise or a single cluster is never kept, whatever its ARI. ``min_samples`` values that no
    class could reach (≥ N / number of classes) are skipped, keeping at least the smallest.

    Args:
        features: (N, D) points.
        labels: (N,) true class per point: the search uses them.
        neighbors: precomputed ``nearest_neighbors(features, k)`` with k ≥ max(min_samples) - 1.
        max_graph_entries: memory bound on the shared graph; the largest eps values are dropped
            (``grid_truncated``) when the graph would hold more pairs.
        legacy: run scikit-learn's DBSCAN on each grid point (the same labels, slower), for timing
            the issue-6 implementation against this one.
    """
    x, y = check_points(features, labels)
    knees = _knees(x, _min_samples_grid(min_samples_grid, eps_factors, y), neighbors, n_jobs)
    pairs, truncated = _eps_pairs(x, knees, eps_factors, max_graph_entries, seed)
    candidates, best = _pick_best(_run_grid(x, y, pairs, n_jobs, legacy))
    if best is None:
        return _no_valid_result(len(x), knees, candidates, eps_factors, truncated)
    chosen, best_labels = best
    return DbscanResult(
        labels=best_labels,
        valid=True,
        eps=chosen.eps,
        min_samples=chosen.min_samples,
        scores=score_clustering(x, y, best_labels, silhouette_sample, seed),
        noise_points=chosen.noise_points,
        clusters=chosen.clusters,
        knee_eps=knees,
        candidates=candidates,
        eps_factors=tuple(float(f) for f in eps_factors),
        grid_truncated=truncated,
    )


def _knees(x: np.ndarray, grid: list[int], neighbors: Neighbors | None, n_jobs: int | None) -> dict[int, float]:
    """min_samples -> eps at the knee of its k-NN distance curve (the neighbours computed when not given)."""
    need = max(grid) - 1
    if neighbors is None or neighbors.k < need:
        neighbors = nearest_neighbors(x, need, n_jobs=n_jobs)
    return {m: knee_eps(neighbors, m) for m in grid}


def _min_samples_grid(min_samples_grid: Sequence[int], eps_factors: Sequence[float], y: np.ndarray) -> list[int]:
    """The checked grid's ``min_samples`` values, sorted, less those no class could reach (the smallest is kept).

    Raises:
        ConfigError: no ``min_samples`` ≥ 2, or an ``eps`` factor that is not positive.
    """
    n = len(y)
    per_class = n / max(1, len(np.unique(y)))
    grid = sorted({int(m) for m in min_samples_grid if int(m) >= 2})
    if not grid:
        raise ConfigError(f"DBSCAN min_samples grid {list(min_samples_grid)}: expected values ≥ 2")
    if not eps_factors or min(eps_factors) <= 0:
        raise ConfigError(f"DBSCAN eps factors {list(eps_factors)}: expected positive numbers")
    grid = [m for m in grid if m < per_class] or grid[:1]
    return [m for m in grid if m - 1 < n] or [2]


def _eps_pairs(
    x: np.ndarray, knees: dict[int, float], eps_factors: Sequence[float], max_graph_entries: int, seed: int
) -> tuple[list[tuple[float, int]], bool]:
    """The (eps, min_samples) grid points by increasing eps, and whether the largest radii were dropped.

    ``knees`` maps each ``min_samples`` of the grid, in grid order, to its knee eps.
    """
    pairs = sorted(((knees[m] * float(f), m) for m in knees for f in eps_factors), key=lambda p: p[0])
    if len(x) ** 2 <= max_graph_entries:
        # Even the complete graph fits: no estimate needed (it cost 20-70 ms at 1,000 points, a third
        # of the raw-feature graph's own cost).
        return pairs, False
    # Drop the largest radii whose shared graph would exceed the memory bound (estimated from a sample).
    sizes = pair_counts(x, np.array([eps for eps, _ in pairs]), seed=seed)
    fits = sizes <= max_graph_entries
    fits[0] = True  # always try the smallest radius
    truncated = not bool(fits.all())
    return [p for p, ok in zip(pairs, fits, strict=True) if ok], truncated


def _run_grid(
    x: np.ndarray, y: np.ndarray, pairs: list[tuple[float, int]], n_jobs: int | None, legacy: bool
) -> dict[tuple[float, int], tuple[DbscanCandidate, np.ndarray]]:
    """DBSCAN at every (eps, min_samples) of ``pairs`` (sorted by eps): each one's candidate and labels."""
    from sklearn.metrics import adjusted_rand_score

    graph = radius_graph(x, pairs[-1][0], n_jobs=n_jobs)
    results: dict[tuple[float, int], tuple[DbscanCandidate, np.ndarray]] = {}
    # Largest eps first, each on the previous graph cut down to its radius: DBSCAN's cost then
    # follows the neighbourhood size of that eps, not of the largest one.
    for eps, m in reversed(pairs):
        graph = restrict_graph(graph, eps)
        found = _dbscan_sklearn(graph, eps, m) if legacy else dbscan_labels(graph, m)
        noise = int(np.count_nonzero(found == -1))
        cand = DbscanCandidate(
            eps=float(eps),
            min_samples=m,
            ari=float(adjusted_rand_score(y, found)),
            clusters=len(np.unique(found[found != -1])),
            noise_points=noise,
        )
        results[(eps, m)] = (cand, found)
    return results


def _pick_best(
    results: dict[tuple[float, int], tuple[DbscanCandidate, np.ndarray]],
) -> tuple[list[DbscanCandidate], tuple[DbscanCandidate, np.ndarray] | None]:
    """The candidates in grid order, and the best non-degenerate one with its labels (None if every one is)."""
    # Report in grid order (min_samples, then eps); on equal ARI, fewer noise points, then the earlier one wins.
    candidates: list[DbscanCandidate] = []
    best: tuple[float, int] | None = None
    best_index = -1
    best_labels: np.ndarray | None = None
    for key in sorted(results, key=lambda p: (p[1], p[0])):
        cand, found = results[key]
        candidates.append(cand)
        if cand.degenerate:
            continue
        score = (cand.ari, -cand.noise_points)
        if best is None or score > best:
            best, best_index, best_labels = score, len(candidates) - 1, found
    if best_labels is None:
        return candidates, None
    return candidates, (candidates[best_index], best_labels)


def _no_valid_result(
    n: int,
    knees: dict[int, float],
    candidates: list[DbscanCandidate],
    eps_factors: Sequence[float],
    truncated: bool,
) -> DbscanResult:
    """The search's result when every grid point gave all noise or a single cluster: all noise, no scores."""
    return DbscanResult(
        labels=np.full(n, -1, dtype=np.int64),
        valid=False,
        eps=None,
        min_samples=None,
        scores=ClusterScores(None, None, None),
        noise_points=None,
        clusters=None,
        knee_eps=knees,
        candidates=candidates,
        eps_factors=tuple(float(f) for f in eps_factors),
        grid_truncated=truncated,
    )
