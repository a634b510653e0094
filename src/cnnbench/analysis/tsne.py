"""t-SNE of a feature matrix to 2-D (the default) or 3-D, seeded.

openTSNE is the default: on 10,000 points of this project's 2-core CPU it ran 1.4-1.7x faster than
scikit-learn's Barnes-Hut TSNE at an equal or lower KL divergence (figures in docs/analysis.md).
scikit-learn stays available as ``backend="sklearn"`` for comparison.

How openTSNE is driven (issue 19, measured in docs/analysis.md): exact nearest neighbours for the
affinities at every size (a brute-force search on the 50 PCA components: 1 s at 10,000 points where
Annoy's 50 trees took 3-6 s; at 1,000 points the whole affinities stage takes 0.09-0.11 s against
0.28-0.40 s with Annoy; and exact, so the map no longer depends on the thread count Annoy was built
with). Barnes-Hut gradients, on every core from 1,000 points when idle OpenMP threads sleep soon
(the CLI's bounded spin), else from 5,000. From 5,000 points, in 2-D, the early-exaggeration phase
uses FFT gradients instead (the map is still small, so the FFT grid is); the main phase stays on
Barnes-Hut: once the map has spread out (a span of ~160 at 10,000 points) the FFT grid costs twice
Barnes-Hut per iteration, and the Barnes-Hut map ends at a lower KL. Both gradients give the same
map on any number of threads: the thread count changes the speed, never the result.
``legacy=True`` runs the issue-6 recipe at every size (openTSNE's "auto" neighbours, Annoy from
1,000 points; one thread below 5,000 points; FFT gradients in both phases from 5,000 points), kept
so that ``benchmarks/embed.py`` can time the two in one run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from cnnbench.analysis.neighbors import default_n_jobs
from cnnbench.errors import ConfigError
from cnnbench.utils.threads import openmp_waits_briefly

TSNE_BACKENDS = ("opentsne", "sklearn")
#: Dimensions of the map: 2 (the MNIST study's) or 3 (drawn as three 2-D projections).
TSNE_COMPONENTS = (2, 3)
#: Features wider than this are reduced by PCA first (the usual t-SNE practice): the neighbour
#: search then costs far less and the map barely changes.
DEFAULT_PCA_DIMS = 50
#: Iterations in all: 250 with early exaggeration, then 500 (openTSNE's defaults).
DEFAULT_MAX_ITER = 750
_EARLY_ITER = 250
#: Below this many points t-SNE runs on one thread: its iterations are then so short that thread
#: synchronisation costs more than it saves. At 1,000 points two threads ran the 750 iterations
#: 1.2-1.7x faster on a quiet 2-core CPU, and as fast as one with two busy processes beside them
#: when OpenMP threads sleep soon (the CLI's bounded spin); with libgomp's default spin they were
#: 1.6-4x slower there, so from 1,000 to 5,000 points t-SNE uses every core only when idle threads
#: sleep soon (``openmp_waits_briefly``). The issue-6 recipe (``legacy=True``) keeps one thread
#: below 5,000 points.
PARALLEL_MIN_POINTS = 1000
_ALWAYS_PARALLEL_POINTS = 5000
#: Below this many points openTSNE's Barnes-Hut gradients beat its FFT ones, whose interpolation grid
#: costs about the same at any size (2 cores, 64-D blobs: 1,000 points 1.1 s vs 8.0 s, 3,000 points
#: 4.0 s vs 8.7 s, 5,000 points 7.8 s vs 8.1 s, KL equal or lower with Barnes-Hut). From this size on,
#: a 2-D map's early-exaggeration phase (and, with ``legacy=True``, the main phase) uses FFT.
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
    neighbors: str = "exact"  # neighbour search of the affinities: "exact", or openTSNE's "auto" (Annoy from 1,000)
    gradient: str = "bh"  # negative-gradient method: "bh", "fft", or "fft+bh" (early phase + main phase)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # pca, affinities, early, main (openTSNE)


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
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the randomized SVD's products are thin, and on the 2-core CPU a second thread made
    # it 1.8-2x slower (1,000 x 4096: 0.11 s instead of 0.19-0.36 s); its sums then no longer depend on
    # the core count either (two threads changed the components by up to 2e-5).
    with threadpool_limits(limits=1, user_api="blas"):
        reduced = PCA(n_components=pca_dims, random_state=seed).fit_transform(x)
    return reduced.astype(np.float32), pca_dims


def tsne_2d(
    features: np.ndarray,
    perplexity: float = 30.0,
    seed: int = 0,
    backend: str = "opentsne",
    pca_dims: int | None = DEFAULT_PCA_DIMS,
    n_jobs: int | None = None,
    max_iter: int = DEFAULT_MAX_ITER,
    *,
    legacy: bool = False,
) -> TsneResult:
    """Embed (N, D) features in 2-D: :func:`tsne_map` with ``n_components=2``."""
    return tsne_map(features, perplexity, seed, backend, pca_dims, n_jobs, max_iter, n_components=2, legacy=legacy)


def tsne_map(
    features: np.ndarray,
    perplexity: float = 30.0,
    seed: int = 0,
    backend: str = "opentsne",
    pca_dims: int | None = DEFAULT_PCA_DIMS,
    n_jobs: int | None = None,
    max_iter: int = DEFAULT_MAX_ITER,
    n_components: int = 2,
    *,
    legacy: bool = False,
) -> TsneResult:
    """Embed (N, D) features in 2-D or 3-D with t-SNE (PCA initialisation, 250 early-exaggeration
    iterations first).

    Args:
        features: (N, D) points, N ≥ 4.
        perplexity: effective number of neighbours; clipped to (N - 1) / 3.
        seed: seeds the neighbour search, the PCA and the optimisation.
        backend: "opentsne" (default) or "sklearn".
        pca_dims: reduce wider features to this many PCA components first; None keeps them.
        n_jobs: CPU threads (default: :func:`tsne_threads`). The map does not depend on it (with
            ``legacy`` from 1,000 points it does: Annoy builds its trees on these threads).
        max_iter: iterations in all, the 250 early-exaggeration ones included (as scikit-learn counts).
        n_components: 2 or 3 dimensions. openTSNE's FFT gradients exist for 2-D only, so a 3-D map
            always uses its Barnes-Hut gradients.
        legacy: openTSNE as issue 6 ran it (Annoy neighbours from 1,000 points, one thread below
            5,000, FFT gradients in both phases from 5,000 points in 2-D), for timing the old recipe
            against the new one.

    Raises:
        ConfigError: for a bad perplexity, backend, dimension, iteration count or input shape.
    """
    x = _checked_input(features, backend, max_iter, n_components)
    return _tsne(x, perplexity, seed, backend, pca_dims, n_jobs, max_iter, n_components, legacy)


def _tsne(x: np.ndarray, perplexity, seed, backend, pca_dims, n_jobs, max_iter, n_components, legacy) -> TsneResult:
    """``tsne_map`` of checked (N, D) float32 points."""
    perp = effective_perplexity(perplexity, len(x))
    n_jobs = n_jobs or tsne_threads(len(x), legacy)
    start = time.perf_counter()
    x, used_pca = _reduce(x, pca_dims, seed)
    stages = {"pca": time.perf_counter() - start}
    early, main = _EARLY_ITER, max_iter - _EARLY_ITER
    if backend == "opentsne":
        coords, kl, neighbors, gradient = _opentsne_recipe(
            x, perp, seed, n_jobs, early, main, n_components, legacy, stages
        )
    else:
        coords, kl = _sklearn_tsne(x, perp, seed, n_jobs, early + main, n_components, stages)
        neighbors, gradient = "exact", "bh"
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
        neighbors=neighbors,
        gradient=gradient,
        stage_seconds=stages,
    )


def _checked_input(features: np.ndarray, backend: str, max_iter: int, n_components: int) -> np.ndarray:
    """The features as a C-contiguous float32 (N, D) array, once the options and the points are checked.

    Raises:
        ConfigError: for a bad dimension, backend, input shape, non-finite value or iteration count.
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
    if max_iter <= _EARLY_ITER:
        raise ConfigError(f"t-SNE max_iter {max_iter}: expected more than the {_EARLY_ITER} early-exaggeration ones")
    return x


def tsne_threads(n_points: int, legacy: bool = False) -> int:
    """Threads t-SNE uses by default: every core this process may use from 5,000 points; from 1,000
    points too when idle OpenMP threads sleep soon (as the CLI sets up; not with ``legacy``); else
    one. The map is the same on any number of threads."""
    if n_points >= _ALWAYS_PARALLEL_POINTS or (
        n_points >= PARALLEL_MIN_POINTS and not legacy and openmp_waits_briefly()
    ):
        return default_n_jobs()
    return 1


def tsne_neighbors(n_points: int, legacy: bool = False) -> str:
    """openTSNE's neighbour search for the affinities: "exact" (``legacy``: its default "auto"). The
    choice no longer depends on ``n_points``; the argument stays for callers that pass it.

    "auto" is exact below 1,000 points and Annoy (50 random-projection trees) from there: at 10,000
    points Annoy took 3-6 s where the exact search takes 1 s; at 1,000 points the affinities stage took
    0.28-0.40 s with Annoy against 0.09-0.11 s.
    Annoy also builds its trees on ``n_jobs`` threads, so its neighbours, and the map, changed with
    the thread count; with exact neighbours the map is the same on any number of threads.
    """
    return "auto" if legacy else "exact"


def tsne_gradients(n_points: int, n_components: int = 2, legacy: bool = False) -> tuple[str, str]:
    """openTSNE's negative-gradient method of the early-exaggeration phase and of the main phase."""
    fft = n_points >= BH_MAX_POINTS and n_components == 2  # openTSNE has FFT gradients for 2-D only
    early = "fft" if fft else "bh"
    return early, (early if legacy else "bh")


def _opentsne_recipe(
    x: np.ndarray,
    perplexity: float,
    seed: int,
    n_jobs: int,
    early: int,
    main: int,
    n_components: int,
    legacy: bool,
    stages: dict[str, float],
) -> tuple[np.ndarray, float, str, str]:
    """openTSNE with the neighbour search and gradients chosen for this many points (or issue 6's with
    ``legacy``); the coordinates, the KL divergence, and the neighbours and gradient to report."""
    early_gradient, main_gradient = tsne_gradients(len(x), n_components, legacy)
    neighbors = tsne_neighbors(len(x), legacy)
    coords, kl = _opentsne(
        x, perplexity, seed, n_jobs, (early, early_gradient), (main, main_gradient), n_components, neighbors, stages
    )
    gradient = early_gradient if early_gradient == main_gradient else f"{early_gradient}+{main_gradient}"
    return coords, kl, neighbors, gradient


def _opentsne(
    x: np.ndarray,
    perplexity: float,
    seed: int,
    n_jobs: int,
    early: tuple[int, str],
    main: tuple[int, str],
    n_components: int,
    neighbors: str,
    stages: dict[str, float],
) -> tuple[np.ndarray, float]:
    """openTSNE's two phases, as ``TSNE.fit`` runs them but each with its own gradient method
    (``(iterations, method)``); the coordinates and the KL divergence. Times go to ``stages``."""
    from openTSNE import TSNE

    tsne = TSNE(
        n_components=n_components,
        perplexity=perplexity,
        n_jobs=n_jobs,
        random_state=seed,
        neighbors=neighbors,
        negative_gradient_method=early[1],
        verbose=False,
    )
    start = time.perf_counter()
    embedding = tsne.prepare_initial(x)  # k-NN, perplexity-calibrated affinities, PCA initialisation
    stages["affinities"] = time.perf_counter() - start
    for phase, (n_iter, gradient), exaggeration, momentum in (
        ("early", early, tsne.early_exaggeration, tsne.initial_momentum),
        ("main", main, tsne.exaggeration, tsne.final_momentum),
    ):
        start = time.perf_counter()
        embedding.optimize(
            n_iter=n_iter,
            exaggeration=exaggeration,
            momentum=momentum,
            negative_gradient_method=gradient,
            inplace=True,
            propagate_exception=True,
        )
        stages[phase] = time.perf_counter() - start
    # openTSNE sums the KL over its threads in whatever order they finish, so its last digits changed
    # from run to run with 2 threads (the map does not): evaluate it once more on one thread (~0.1 s).
    embedding.optimize(n_iter=0, momentum=tsne.final_momentum, negative_gradient_method=main[1], n_jobs=1, inplace=True)
    return np.asarray(embedding, dtype=np.float32), float(embedding.kl_divergence)


def _sklearn_tsne(
    x: np.ndarray,
    perplexity: float,
    seed: int,
    n_jobs: int,
    max_iter: int,
    n_components: int,
    stages: dict[str, float],
) -> tuple[np.ndarray, float]:
    """scikit-learn's Barnes-Hut TSNE (PCA initialisation); the coordinates and its KL divergence. Its
    time goes to ``stages["optimise"]``."""
    from sklearn.manifold import TSNE as SkTSNE

    begin = time.perf_counter()
    sk = SkTSNE(
        n_components=n_components,
        perplexity=perplexity,
        max_iter=max_iter,
        n_jobs=n_jobs,
        random_state=seed,
        init="pca",
    )
    coords = sk.fit_transform(x).astype(np.float32)
    kl = float(sk.kl_divergence_)
    stages["optimise"] = time.perf_counter() - begin
    return coords, kl


def exact_kl_divergence(
    features: np.ndarray, coords: np.ndarray, perplexity: float = 30.0, seed: int = 0, neighbors: str = "auto"
) -> float:
    """KL(P || Q) of a 2-D or 3-D map, computed the same way for any t-SNE implementation.

    P: openTSNE's symmetric perplexity-based affinities of ``features`` (sparse, 3 × perplexity
    neighbours, found by ``neighbors``: openTSNE's "auto", Annoy from 1,000 points, as the figures
    recorded so far used; or "exact"). Q: the Student-t similarities of ``coords``, normalised over
    all N² pairs exactly (in row blocks, O(N²) time, O(N) memory). Used to compare backends and
    recipes fairly, since each one reports its own approximation.
    """
    from openTSNE.affinity import PerplexityBasedNN

    x = np.ascontiguousarray(features, dtype=np.float32)
    y = np.asarray(coords, dtype=np.float64)
    perp = effective_perplexity(perplexity, len(x))
    p = PerplexityBasedNN(x, perplexity=perp, method=neighbors, random_state=seed, n_jobs=1).P.tocoo()
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
