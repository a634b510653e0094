"""t-SNE of a feature matrix to 2-D (the default) or 3-D, seeded.

openTSNE (FFT-accelerated gradients) is the default: on 10,000 points of this project's 2-core CPU
it ran 2–3× faster than scikit-learn's Barnes–Hut TSNE at an equal or lower KL divergence (figures
in docs/analysis.md). scikit-learn stays available as ``backend="sklearn"`` for comparison.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from cnnbench.analysis.neighbors import default_n_jobs
from cnnbench.errors import ConfigError

TSNE_BACKENDS = ("opentsne", "sklearn")
#: Dimensions of the map: 2 (the MNIST study's) or 3 (drawn as three 2-D projections).
TSNE_COMPONENTS = (2, 3)
#: Features wider than this are reduced by PCA first (the usual t-SNE practice): the neighbour
#: search then costs far less and the map barely changes.
DEFAULT_PCA_DIMS = 50
#: Iterations in all: 250 with early exaggeration, then 500 (openTSNE's defaults).
DEFAULT_MAX_ITER = 750
_EARLY_ITER = 250
#: Below this many points t-SNE runs on one thread: its 750 iterations are then so short that
#: thread synchronisation costs more than it saves (3-8x slower with 2 threads on a busy 2-core CPU).
PARALLEL_MIN_POINTS = 5000
#: Below this many points openTSNE's Barnes-Hut gradients beat its FFT ones, whose interpolation grid
#: costs about the same at any size (2 cores, 64-D blobs: 1,000 points 1.1 s vs 8.0 s, 3,000 points
#: 4.0 s vs 8.7 s, 5,000 points 7.8 s vs 8.1 s, KL equal or lower with Barnes-Hut).
BH_MAX_POINTS = 5000


@dataclass(frozen=True)
class TsneResult:
    """A 2-D or 3-D map of the points and how it was made."""

    coords: np.ndarray  # (N, n_components) float32
    kl_divergence: float | None  # the backend's own estimate at the last iteration
    backend: str
    perplexity: float  # the perplexity used (clipped to (N - 1) / 3 for few points)
    seed: int
    iterations: int  # early exaggeration + main phase
    pca_dims: int | None  # PCA width applied before t-SNE, None when not applied
    seconds: float
    n_components: int = 2  # dimensions of the map


def effective_perplexity(perplexity: float, n_points: int) -> float:
    """``perplexity`` clipped so every point has enough neighbours ((N - 1) / 3, the usual bound).

    Raises:
        ConfigError: naming ``--perplexity`` when it is not a positive number.
    """
    if not np.isfinite(perplexity) or perplexity <= 0:
        raise ConfigError(f"--perplexity {perplexity!r}: expected a positive number (typically 5 to 50)")
    return float(min(perplexity, max(1.0, (n_points - 1) / 3.0)))


def _reduce(x: np.ndarray, pca_dims: int | None, seed: int) -> tuple[np.ndarray, int | None]:
    if pca_dims is None or x.shape[1] <= pca_dims or len(x) <= pca_dims:
        return x, None
    from sklearn.decomposition import PCA

    return PCA(n_components=pca_dims, random_state=seed).fit_transform(x).astype(np.float32), pca_dims


def tsne_2d(
    features: np.ndarray,
    perplexity: float = 30.0,
    seed: int = 0,
    backend: str = "opentsne",
    pca_dims: int | None = DEFAULT_PCA_DIMS,
    n_jobs: int | None = None,
    max_iter: int = DEFAULT_MAX_ITER,
) -> TsneResult:
    """Embed (N, D) features in 2-D: :func:`tsne_map` with ``n_components=2``."""
    return tsne_map(features, perplexity, seed, backend, pca_dims, n_jobs, max_iter, n_components=2)


def tsne_map(
    features: np.ndarray,
    perplexity: float = 30.0,
    seed: int = 0,
    backend: str = "opentsne",
    pca_dims: int | None = DEFAULT_PCA_DIMS,
    n_jobs: int | None = None,
    max_iter: int = DEFAULT_MAX_ITER,
    n_components: int = 2,
) -> TsneResult:
    """Embed (N, D) features in 2-D or 3-D with t-SNE (PCA initialisation, 250 early-exaggeration
    iterations first).

    Args:
        features: (N, D) points, N ≥ 4.
        perplexity: effective number of neighbours; clipped to (N - 1) / 3.
        seed: seeds the neighbour search, the PCA and the optimisation.
        backend: "opentsne" (default) or "sklearn".
        pca_dims: reduce wider features to this many PCA components first; None keeps them.
        n_jobs: CPU threads (default: every core this process may use from 5,000 points, else 1).
        max_iter: iterations in all, the 250 early-exaggeration ones included (as scikit-learn counts).
        n_components: 2 or 3 dimensions. openTSNE's FFT gradients exist for 2-D only, so a 3-D map
            always uses its Barnes-Hut gradients (slower from about 5,000 points).

    Raises:
        ConfigError: for a bad perplexity, backend, dimension, iteration count or input shape.
    """
    if n_components not in TSNE_COMPONENTS or isinstance(n_components, bool):
        raise ConfigError(f"--n-components {n_components!r}: expected 2 or 3")
    if backend not in TSNE_BACKENDS:
        raise ConfigError(f"t-SNE backend {backend!r}: expected one of {', '.join(TSNE_BACKENDS)}")
    x = np.ascontiguousarray(features, dtype=np.float32)
    if x.ndim != 2 or len(x) < 4:
        raise ConfigError(f"t-SNE input has shape {x.shape}; expected (N, D) with N ≥ 4 points")
    if not np.all(np.isfinite(x)):
        raise ConfigError("t-SNE input contains NaN or infinite values; the model's embedding is not finite")
    perp = effective_perplexity(perplexity, len(x))
    n_jobs = n_jobs or (default_n_jobs() if len(x) >= PARALLEL_MIN_POINTS else 1)
    start = time.perf_counter()
    x, used_pca = _reduce(x, pca_dims, seed)
    if max_iter <= _EARLY_ITER:
        raise ConfigError(f"t-SNE max_iter {max_iter}: expected more than the {_EARLY_ITER} early-exaggeration ones")
    early, main = _EARLY_ITER, max_iter - _EARLY_ITER
    if backend == "opentsne":
        from openTSNE import TSNE

        emb = TSNE(
            n_components=n_components,
            perplexity=perp,
            early_exaggeration_iter=early,
            n_iter=main,
            n_jobs=n_jobs,
            random_state=seed,
            negative_gradient_method="bh" if len(x) < BH_MAX_POINTS or n_components > 2 else "fft",
            verbose=False,
        ).fit(x)
        coords = np.asarray(emb, dtype=np.float32)
        kl = float(emb.kl_divergence)
    else:
        from sklearn.manifold import TSNE as SkTSNE

        sk = SkTSNE(
            n_components=n_components,
            perplexity=perp,
            max_iter=early + main,
            n_jobs=n_jobs,
            random_state=seed,
            init="pca",
        )
        coords = sk.fit_transform(x).astype(np.float32)
        kl = float(sk.kl_divergence_)
    return TsneResult(
        coords=coords,
        kl_divergence=kl,
        backend=backend,
        perplexity=perp,
        seed=seed,
        iterations=early + main,
        pca_dims=used_pca,
        seconds=time.perf_counter() - start,
        n_components=n_components,
    )


def exact_kl_divergence(features: np.ndarray, coords: np.ndarray, perplexity: float = 30.0, seed: int = 0) -> float:
    """KL(P || Q) of a 2-D or 3-D map, computed the same way for any t-SNE implementation.

    P: openTSNE's symmetric perplexity-based affinities of ``features`` (sparse, 3 × perplexity
    neighbours). Q: the Student-t similarities of ``coords``, normalised over all N² pairs exactly
    (in row blocks, O(N²) time, O(N) memory). Used to compare backends fairly, since each one
    reports its own approximation.
    """
    from openTSNE.affinity import PerplexityBasedNN

    x = np.ascontiguousarray(features, dtype=np.float32)
    y = np.asarray(coords, dtype=np.float64)
    p = PerplexityBasedNN(x, perplexity=effective_perplexity(perplexity, len(x)), random_state=seed).P.tocoo()
    sq = (y**2).sum(1)
    z = 0.0
    for s in range(0, len(y), 2048):
        # (b, N) squared distances of a block of rows to all points
        d2 = np.maximum(sq[s : s + 2048, None] + sq[None, :] - 2.0 * y[s : s + 2048] @ y.T, 0.0)
        z += float((1.0 / (1.0 + d2)).sum()) - d2.shape[0]  # minus the diagonal terms (each 1)
    q = 1.0 / (1.0 + ((y[p.row] - y[p.col]) ** 2).sum(1)) / z
    pv = p.data / p.data.sum()
    mask = pv > 0
    return float(np.sum(pv[mask] * np.log(pv[mask] / q[mask])))
