"""Feature analysis of one set of points: t-SNE, K-means, DBSCAN and k-NN, on the t-SNE map (2-D,
or 3-D with ``n_components=3``) and on the raw features. Pure NumPy/scikit-learn: arrays in, an ``Analysis`` out."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from cnnbench.analysis.clustering import DEFAULT_SILHOUETTE_SAMPLE, KMeansResult, kmeans_scores
from cnnbench.analysis.dbscan import DEFAULT_EPS_FACTORS, DEFAULT_MIN_SAMPLES, DbscanResult, dbscan_search
from cnnbench.analysis.knn import DEFAULT_KNN_K, knn_accuracy
from cnnbench.analysis.neighbors import Neighbors, default_n_jobs, nearest_neighbors
from cnnbench.analysis.tsne import DEFAULT_PCA_DIMS, TSNE_BACKENDS, TSNE_COMPONENTS, TsneResult, tsne_map
from cnnbench.errors import ConfigError
from cnnbench.rundir.analysis import ANALYSIS_FORMAT
from cnnbench.utils.config import check_choice, check_range

T = TypeVar("T")


@dataclass(frozen=True)
class AnalysisConfig:
    """How to analyse; every field is also a flag of ``cnnbench embed`` where it says so."""

    perplexity: float = 30.0  # --perplexity; clipped to (N - 1) / 3
    n_components: int = 2  # --n-components: the t-SNE map's dimensions, 2 (the seed's default) or 3
    seed: int = 0  # --seed: t-SNE, K-means, silhouette samples
    tsne_backend: str = "opentsne"  # --tsne-backend: opentsne (faster here) or sklearn
    pca_dims: int | None = DEFAULT_PCA_DIMS  # wider features are PCA-reduced before t-SNE only
    knn_k: int = DEFAULT_KNN_K  # --knn-k: voters of the leave-one-out k-NN accuracy
    min_samples: tuple[int, ...] = DEFAULT_MIN_SAMPLES  # DBSCAN grid
    eps_factors: tuple[float, ...] = DEFAULT_EPS_FACTORS  # DBSCAN grid: multiples of the knee eps
    silhouette_sample: int = DEFAULT_SILHOUETTE_SAMPLE  # points per silhouette (seeded sample)
    kmeans_n_init: int = 4  # k-means++ restarts, the best inertia kept
    raw: bool = True  # --no-raw skips the scores on the raw features
    n_jobs: int | None = None  # CPU threads; None = every core this process may use (at most OMP_NUM_THREADS)
    #: The issue-6 implementation, kept so that benchmarks/embed.py can time it against this one in the
    #: same run: t-SNE with Annoy neighbours from 1,000 points, one thread below 5,000 points and FFT
    #: gradients in both phases from 5,000, scikit-learn's DBSCAN on every grid point, BLAS on every
    #: core during the clustering.
    legacy: bool = False

    def __post_init__(self) -> None:
        check_range("--perplexity", self.perplexity, 0, low_inclusive=False)
        check_choice("--tsne-backend", self.tsne_backend, TSNE_BACKENDS)
        check_choice("--n-components", self.n_components, TSNE_COMPONENTS)
        check_range("--knn-k", self.knn_k, 1)
        check_range("silhouette_sample", self.silhouette_sample, 10)
        check_range("kmeans_n_init", self.kmeans_n_init, 1)
        if not self.min_samples or min(self.min_samples) < 2:
            raise ConfigError(f"DBSCAN min_samples grid {self.min_samples!r}: expected integers ≥ 2")
        if not self.eps_factors or min(self.eps_factors) <= 0:
            raise ConfigError(f"DBSCAN eps factors {self.eps_factors!r}: expected positive numbers")


@dataclass(frozen=True)
class SpaceAnalysis:
    """K-means, DBSCAN and k-NN accuracy in one space (the t-SNE map or the raw features)."""

    kmeans: KMeansResult
    dbscan: DbscanResult
    knn_accuracy: float
    neighbors: Neighbors  # shared k-NN of the points, kept for the k-NN distance figure

    def to_dict(self) -> dict[str, Any]:
        return {"kmeans": self.kmeans.to_dict(), "dbscan": self.dbscan.to_dict(), "knn_accuracy": self.knn_accuracy}


@dataclass
class Analysis:
    """Everything ``cnnbench embed`` computes; ``to_dict()`` is the analysis.json object."""

    features: np.ndarray  # (N, D) float32 pooled pre-logit features
    labels: np.ndarray  # (N,) int64 true classes
    tsne: TsneResult
    map: SpaceAnalysis  # scores on the t-SNE coordinates (2-D: the MNIST study's)
    raw: SpaceAnalysis | None  # the same scores on the (N, D) features; None with raw=False
    config: AnalysisConfig
    classes: list[str] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)  # model, dataset, split, run_dir, ... (set by embed_run)

    @property
    def coords(self) -> np.ndarray:
        """(N, n_components) t-SNE coordinates."""
        return self.tsne.coords

    def to_dict(self) -> dict[str, Any]:
        """The analysis.json object; keys are listed in ``cnnbench.rundir.analysis.ANALYSIS_KEYS``."""
        tsne = {
            **self.map.to_dict(),
            "backend": self.tsne.backend,
            "n_components": self.tsne.n_components,
            "perplexity": self.tsne.perplexity,
            "seed": self.tsne.seed,
            "iterations": self.tsne.iterations,
            "pca_dims": self.tsne.pca_dims,
            "neighbors": self.tsne.neighbors,
            "gradient": self.tsne.gradient,
            "kl_divergence": self.tsne.kl_divergence,
        }
        raw = self.raw.to_dict() if self.raw is not None else None
        out: dict[str, Any] = {"format": ANALYSIS_FORMAT}
        for key in (
            "model",
            "dataset",
            "split",
            "run_dir",
            "checkpoint",
            "checkpoint_epoch",
            "checkpoint_sha256",
            "device",
        ):
            out[key] = self.meta.get(key)
        out.update(
            points=int(len(self.labels)),
            num_classes=int(len(np.unique(self.labels))),
            feature_dim=int(self.features.shape[1]),
            classes=self.classes,
            kmeans=tsne["kmeans"],
            dbscan=tsne["dbscan"],
            knn_accuracy=raw["knn_accuracy"] if raw is not None else None,
            knn_k=self.config.knn_k,
            silhouette_sample=self.config.silhouette_sample,
            dbscan_uses_labels=True,
            tsne=tsne,
            raw=raw,
            notes=list(self.notes),
            seconds={k: round(v, 3) for k, v in self.seconds.items()},
        )
        return out


def _timed(seconds: dict[str, float], stage: str, fn: Callable[[], T]) -> T:
    start = time.perf_counter()
    result = fn()
    seconds[stage] = time.perf_counter() - start
    return result


def _clocked(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and its duration, for a stage that runs on a side thread."""
    start = time.perf_counter()
    return fn(), time.perf_counter() - start


def uses_side_thread(n_jobs: int | None) -> bool:
    """Whether single-threaded stages may run beside each other: only with two cores or more to use
    (``n_jobs``, else every core this process may use, at most ``OMP_NUM_THREADS``: ``--threads 1``
    keeps everything on one)."""
    return (n_jobs or default_n_jobs()) >= 2


def _import_numeric_libraries() -> None:
    """Import openTSNE and the scikit-learn modules up front (~2 s once per process), so that the
    first stage to need them is not charged for it."""
    import openTSNE  # noqa: F401
    import sklearn.cluster  # noqa: F401
    import sklearn.decomposition  # noqa: F401
    import sklearn.metrics  # noqa: F401
    import sklearn.neighbors  # noqa: F401


def _kmeans(points: np.ndarray, labels: np.ndarray, config: AnalysisConfig) -> KMeansResult:
    return kmeans_scores(
        points, labels, seed=config.seed, n_init=config.kmeans_n_init, silhouette_sample=config.silhouette_sample
    )


def _side_kmeans(points: np.ndarray, labels: np.ndarray, config: AnalysisConfig) -> KMeansResult:
    """``_kmeans`` on a side thread, under its own one-thread BLAS limit: with a pthreads BLAS the limit
    set around both spaces already holds (the call changes nothing), but a BLAS built on OpenMP keeps
    its thread count per thread, and the silhouette would otherwise use every core there."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _kmeans(points, labels, config)


def _analyze_space(
    points: np.ndarray,
    labels: np.ndarray,
    config: AnalysisConfig,
    prefix: str,
    seconds: dict[str, float],
    kmeans_future: Future[tuple[KMeansResult, float]] | None = None,
) -> SpaceAnalysis:
    """The scores of one space; K-means comes from ``kmeans_future`` (result, seconds) when it was
    started on a side thread."""
    k_needed = max(config.knn_k, max(config.min_samples) - 1)
    neighbors = _timed(
        seconds, f"{prefix}_neighbors", lambda: nearest_neighbors(points, k_needed, n_jobs=config.n_jobs)
    )
    if kmeans_future is None:
        kmeans = _timed(seconds, f"{prefix}_kmeans", lambda: _kmeans(points, labels, config))
    else:
        seconds[f"{prefix}_kmeans"] = 0.0  # its place in the stage order; its time once it is done
    dbscan = _timed(
        seconds,
        f"{prefix}_dbscan",
        lambda: dbscan_search(
            points,
            labels,
            neighbors=neighbors,
            min_samples_grid=config.min_samples,
            eps_factors=config.eps_factors,
            silhouette_sample=config.silhouette_sample,
            seed=config.seed,
            n_jobs=config.n_jobs,
            legacy=config.legacy,
        ),
    )
    knn = _timed(
        seconds,
        f"{prefix}_knn",
        lambda: knn_accuracy(points, labels, k=min(config.knn_k, len(points) - 1), neighbors=neighbors),
    )
    if kmeans_future is not None:
        kmeans, seconds[f"{prefix}_kmeans"] = kmeans_future.result()
    return SpaceAnalysis(kmeans=kmeans, dbscan=dbscan, knn_accuracy=knn, neighbors=neighbors)


def _analyze_spaces(
    coords: np.ndarray, x: np.ndarray, y: np.ndarray, config: AnalysisConfig, seconds: dict[str, float]
) -> tuple[SpaceAnalysis, SpaceAnalysis | None]:
    """The scores on the map and, unless ``config.raw`` is off, on the raw features.

    With two cores to use, K-means on the raw features runs on a side thread beside everything else:
    it is single-threaded (one OpenMP thread, so that its inertia does not depend on the core count),
    scikit-learn runs it outside the GIL, and on 1,000 4096-D points it is the longest single-threaded
    stage (0.2-0.4 s). Nothing changes but the time: each stage computes the same thing on its own
    arrays.

    BLAS runs on one thread for the whole section: these products are thin (k-means++ tries 4
    candidates against all points, the silhouette goes by blocks), and on the shared 2-core CPU
    OpenBLAS's second thread made them 2-5x slower (1,000 AlexNet features, 4096-D: 10.1 s with two
    threads, 2.7 s with one, load 2), for the same numbers. Its limit is process-wide, so it is set once
    here rather than per space, where one space's exit would lift it under the other. The neighbour
    searches parallelise by themselves (scikit-learn's OpenMP).
    """
    from threadpoolctl import threadpool_limits

    side = config.raw and not config.legacy and uses_side_thread(config.n_jobs)
    with (
        nullcontext() if config.legacy else threadpool_limits(limits=1, user_api="blas"),
        ThreadPoolExecutor(1, thread_name_prefix="cnnbench-kmeans") if side else nullcontext() as pool,
    ):
        raw_kmeans = pool.submit(_clocked, lambda: _side_kmeans(x, y, config)) if pool is not None else None
        map_ = _analyze_space(coords, y, config, "tsne", seconds)
        raw = _analyze_space(x, y, config, "raw", seconds, raw_kmeans) if config.raw else None
    return map_, raw


def analyze(
    features: np.ndarray,
    labels: np.ndarray,
    config: AnalysisConfig | None = None,
    classes: Sequence[str] | None = None,
) -> Analysis:
    """t-SNE the features to 2-D (or ``config.n_components``), then cluster and score both the map
    and the raw features.

    Args:
        features: (N, D) pooled features, N ≥ 10 and at least 2 classes among ``labels``.
        labels: (N,) true classes (integers).
        config: analysis options (defaults: ``AnalysisConfig()``).
        classes: class names, index = label, for figures and analysis.json.

    Raises:
        ConfigError: for mismatched shapes, non-finite features, or too few points or classes.
    """
    config = config or AnalysisConfig()
    x, y = _checked_points(features, labels)
    seconds: dict[str, float] = {}
    wall = time.perf_counter()
    _timed(seconds, "imports", _import_numeric_libraries)
    tsne = tsne_map(
        x,
        config.perplexity,
        config.seed,
        backend=config.tsne_backend,
        pca_dims=config.pca_dims,
        n_jobs=config.n_jobs,
        n_components=config.n_components,
        legacy=config.legacy,
    )
    _add_tsne_seconds(seconds, tsne)
    notes = _tsne_notes(tsne, config, x)
    map_, raw = _analyze_spaces(tsne.coords, x, y, config, seconds)
    notes.extend(_dbscan_notes(map_, raw))
    seconds["total"] = time.perf_counter() - wall
    return Analysis(
        features=x,
        labels=y,
        tsne=tsne,
        map=map_,
        raw=raw,
        config=config,
        classes=list(classes) if classes is not None else None,
        seconds=seconds,
        notes=notes,
    )


def _checked_points(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The features as C-contiguous float32 (N, D) and the labels as int64 (N,), once checked.

    Raises:
        ConfigError: for mismatched shapes, too few points or classes, negative labels, non-finite features.
    """
    x = np.ascontiguousarray(features, dtype=np.float32)
    y = np.asarray(labels).astype(np.int64)
    if x.ndim != 2:
        raise ConfigError(f"features have shape {x.shape}; expected (N, D)")
    if y.shape != (len(x),):
        raise ConfigError(f"labels have shape {y.shape}; expected ({len(x)},) to match the features")
    if len(x) < 10:
        raise ConfigError(f"{len(x)} points; expected at least 10 for t-SNE and clustering")
    if y.size and y.min() < 0:
        raise ConfigError(f"labels contain {int(y.min())}; expected class indices ≥ 0")
    if len(np.unique(y)) < 2:
        raise ConfigError("all points have the same label; expected at least 2 classes to score clusterings")
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x).all(1)))
        raise ConfigError(f"{bad} of {len(x)} feature vectors contain NaN or Inf; the model's embedding is not finite")
    return x, y


def _add_tsne_seconds(seconds: dict[str, float], tsne: TsneResult) -> None:
    """The t-SNE's time as ``tsne``, and each of its stages as ``tsne_<stage>``."""
    seconds["tsne"] = tsne.seconds
    for stage, value in tsne.stage_seconds.items():
        seconds[f"tsne_{stage}"] = value


def _tsne_notes(tsne: TsneResult, config: AnalysisConfig, x: np.ndarray) -> list[str]:
    """How the map was made where it differs from what was asked, and what DBSCAN's scores mean."""
    notes: list[str] = []
    if tsne.perplexity < config.perplexity:
        notes.append(f"perplexity {config.perplexity:g} clipped to {tsne.perplexity:g} for {len(x)} points")
    if tsne.pca_dims is not None:
        notes.append(f"t-SNE ran on the first {tsne.pca_dims} PCA components of the {x.shape[1]}-D features")
    notes.append(
        "DBSCAN (eps, min_samples) are chosen by the highest ARI against the true labels: "
        "its scores are an optimistic upper bound, not an unsupervised result"
    )
    return notes


def _dbscan_notes(map_: SpaceAnalysis, raw: SpaceAnalysis | None) -> list[str]:
    """A note for each space whose DBSCAN search found nothing valid or skipped its largest radii."""
    notes: list[str] = []
    for name, space in (("t-SNE map", map_), ("raw features", raw)):
        if space is not None and not space.dbscan.valid:
            notes.append(f"DBSCAN on the {name}: every grid point gave all noise or a single cluster")
        if space is not None and space.dbscan.grid_truncated:
            notes.append(f"DBSCAN on the {name}: the largest eps values were skipped to bound memory")
    return notes
