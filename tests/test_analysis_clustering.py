"""K-means and the ARI-guided DBSCAN search on synthetic points."""

import numpy as np
import pytest
from scipy import sparse
from sklearn.datasets import make_blobs

from cnnbench.analysis.clustering import kmeans_scores, score_clustering
from cnnbench.analysis.dbscan import dbscan_search, knee_eps
from cnnbench.analysis.neighbors import nearest_neighbors, pair_counts, radius_graph, restrict_graph
from cnnbench.errors import ConfigError


@pytest.fixture(scope="module")
def blobs():
    # 5 well-separated Gaussian blobs in 16-D, 120 points each
    x, y = make_blobs(600, 16, centers=5, cluster_std=0.6, center_box=(-20, 20), random_state=3)
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def blobs_2d():
    x, y = make_blobs(800, 2, centers=[(0, 0), (12, 0), (0, 12), (12, 12)], cluster_std=0.8, random_state=1)
    return x.astype(np.float32), y


@pytest.mark.parametrize("name", ["blobs", "blobs_2d"])
def test_separated_blobs_give_ari_at_least_095_for_both(name, request):
    x, y = request.getfixturevalue(name)
    km = kmeans_scores(x, y, seed=0)
    db = dbscan_search(x, y, seed=0)
    assert km.scores.ari >= 0.95 and km.scores.nmi >= 0.95
    assert db.valid and db.scores.ari >= 0.95
    assert db.clusters == len(np.unique(y))
    assert 0.5 < km.scores.silhouette <= 1.0
    assert km.labels.shape == db.labels.shape == y.shape


def test_shuffled_labels_give_ari_near_zero(blobs):
    x, y = blobs
    shuffled = np.random.default_rng(0).permutation(y)
    km = kmeans_scores(x, shuffled, k=5, seed=0)
    db = dbscan_search(x, shuffled, seed=0)
    assert abs(km.scores.ari) < 0.05
    assert db.valid and abs(db.scores.ari) < 0.05


def test_dbscan_never_keeps_all_noise_or_one_cluster_even_when_its_ari_is_highest():
    # Two far blobs, each half class 0 and half class 1: splitting by blob scores ARI ≈ -0.005,
    # below the ARI 0 of an all-noise or single-cluster labelling. The blob split must still win.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.3, (100, 2)), rng.normal(50, 0.3, (100, 2))]).astype(np.float32)
    y = np.tile(np.repeat([0, 1], 50), 2)
    factors = (1e-4, 0.5, 1.0, 2.0, 500.0)  # tiny eps: all noise; huge eps: one cluster
    db = dbscan_search(x, y, min_samples_grid=(5, 10), eps_factors=factors)
    degenerate = [c for c in db.candidates if c.degenerate]
    assert degenerate and max(c.ari for c in degenerate) > db.scores.ari  # the trap was there
    assert db.valid and db.clusters == 2 and db.noise_points < len(x)
    assert len(np.unique(db.labels[db.labels >= 0])) == 2
    assert db.scores.ari < 0


def test_dbscan_with_only_degenerate_grid_points_is_marked_invalid(blobs_2d):
    x, y = blobs_2d
    db = dbscan_search(x, y, min_samples_grid=(5,), eps_factors=(1e-6,))
    assert not db.valid
    assert db.scores.ari is None and db.eps is None and db.min_samples is None
    assert np.all(db.labels == -1)
    assert db.to_dict()["valid"] is False


def test_dbscan_eps_grid_is_built_around_the_knee(blobs_2d):
    x, y = blobs_2d
    nb = nearest_neighbors(x, 39)
    db = dbscan_search(x, y, neighbors=nb, min_samples_grid=(5, 10), eps_factors=(0.5, 1.0, 2.0))
    assert set(db.knee_eps) == {5, 10}
    assert db.knee_eps[5] == pytest.approx(knee_eps(nb, 5))
    tried = {(round(c.eps, 9), c.min_samples) for c in db.candidates}
    expected = {(round(db.knee_eps[m] * f, 9), m) for m in (5, 10) for f in (0.5, 1.0, 2.0)}
    assert tried == expected
    assert (round(db.eps, 9), db.min_samples) in expected
    d = db.to_dict()
    assert d["uses_labels"] is True and d["grid"]["evaluated"] == 6


def test_dbscan_skips_min_samples_no_class_can_reach():
    x, y = make_blobs(60, 2, centers=3, cluster_std=0.3, random_state=0)  # 20 points per class
    db = dbscan_search(x, y)
    assert sorted(db.knee_eps) == [5, 10]  # 20 and 40 ≥ 60 / 3 are skipped


def test_graph_cap_drops_the_largest_radii_and_says_so(blobs_2d):
    x, y = blobs_2d
    db = dbscan_search(x, y, min_samples_grid=(5,), eps_factors=(0.5, 1.0, 50.0), max_graph_entries=50_000)
    assert db.grid_truncated and db.to_dict()["grid"]["truncated"] is True
    assert max(c.eps for c in db.candidates) < 50 * db.knee_eps[5] * 0.99


def test_restricted_graph_equals_a_graph_built_at_the_smaller_radius(blobs_2d):
    x, _ = blobs_2d
    big = radius_graph(x, 2.0)
    small = restrict_graph(big, 1.0)
    direct = radius_graph(x, 1.0)
    assert small.nnz == direct.nnz
    assert abs(small - direct).max() < 1e-5
    est = pair_counts(x, np.array([1.0, 2.0]), sample=800)  # sample = all rows: exact counts
    assert est[0] == pytest.approx(direct.nnz, rel=1e-3) and est[1] == pytest.approx(big.nnz, rel=1e-3)


def test_noise_counts_as_its_own_group_in_the_scores():
    x = np.array([[0.0, 0], [0, 1], [10, 10], [10, 11], [50, 50]], dtype=np.float32)
    y = np.array([0, 0, 1, 1, 1])
    perfect = score_clustering(x, y, np.array([0, 0, 1, 1, 1]))
    with_noise = score_clustering(x, y, np.array([0, 0, 1, 1, -1]))
    assert perfect.ari == pytest.approx(1.0)
    assert with_noise.ari < 1.0


def test_bad_inputs_raise_config_errors(blobs):
    x, y = blobs
    with pytest.raises(ConfigError, match="labels have shape"):
        kmeans_scores(x, y[:-1])
    with pytest.raises(ConfigError, match="k-means k=1"):
        kmeans_scores(x, y, k=1)
    with pytest.raises(ConfigError, match="min_samples"):
        dbscan_search(x, y, min_samples_grid=(1,))
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        dbscan_search(bad, y)


@pytest.mark.parametrize("diagonal", [True, False])
def test_dbscan_labels_are_scikit_learns_on_the_same_graph(diagonal):
    from sklearn.cluster import DBSCAN

    from cnnbench.analysis.dbscan import dbscan_labels

    rng = np.random.default_rng(0)
    for trial in range(12):
        n, d = int(rng.integers(30, 400)), int(rng.choice([2, 3, 12]))
        x = (rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0)).astype(np.float32)
        x[: n // 10] = x[n // 10 : 2 * (n // 10)]  # exact duplicates: pairs at distance 0
        eps = float(np.quantile(np.linalg.norm(x[:40, None] - x[None], axis=2), rng.uniform(0.02, 0.3)))
        graph = radius_graph(x, eps)
        if not diagonal:  # the self pairs left out of the graph: each point still counts itself
            coo = graph.tocoo()
            off = coo.row != coo.col
            graph = sparse.csr_matrix((coo.data[off], (coo.row[off], coo.col[off])), shape=graph.shape)
        for m in (2, 4, 10, 25):
            expected = DBSCAN(eps=eps, min_samples=m, metric="precomputed").fit_predict(radius_graph(x, eps))
            np.testing.assert_array_equal(dbscan_labels(graph, m), expected, err_msg=f"trial {trial}, m={m}")


def test_fast_and_legacy_dbscan_search_agree(blobs_2d):
    x, y = blobs_2d
    fast, legacy = dbscan_search(x, y, seed=0), dbscan_search(x, y, seed=0, legacy=True)
    np.testing.assert_array_equal(fast.labels, legacy.labels)
    assert fast.to_dict() == legacy.to_dict()


def test_pair_counts_are_exact_with_every_row_for_radii_in_any_order(blobs):
    x, _ = blobs
    d = np.sqrt(((x[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1))
    radii = np.array([6.0, 2.5, 40.0, 6.0, 12.0])  # unsorted, one repeated
    est = pair_counts(x, radii, sample=len(x))
    np.testing.assert_allclose(est, [(d <= r).sum() for r in radii], rtol=1e-3)


def test_wide_features_take_elkans_kmeans_with_lloyds_result(monkeypatch):
    """From 1,024 dimensions k-means runs Elkan's algorithm (faster there); it converges to the same
    clustering as scikit-learn's default Lloyd from the same seeds."""
    from sklearn.cluster import KMeans

    from cnnbench.analysis.clustering import ELKAN_MIN_DIMS

    x, y = make_blobs(300, ELKAN_MIN_DIMS, centers=4, cluster_std=6.0, random_state=0)
    x = x.astype(np.float32)
    lloyd = KMeans(4, n_init=4, random_state=0, algorithm="lloyd")
    lloyd_labels = lloyd.fit_predict(x.astype(np.float64))
    used = []
    original = KMeans.fit

    def spy(self, points, y=None, sample_weight=None):
        used.append((points.shape[1], self.algorithm))
        return original(self, points, y, sample_weight)

    monkeypatch.setattr(KMeans, "fit", spy)
    kmeans_scores(x[:, : ELKAN_MIN_DIMS - 1], y, seed=0, n_init=1)
    res = kmeans_scores(x, y, seed=0, n_init=4)
    assert used == [(ELKAN_MIN_DIMS - 1, "lloyd"), (ELKAN_MIN_DIMS, "elkan")]
    np.testing.assert_array_equal(res.labels, lloyd_labels)
    assert res.inertia == pytest.approx(lloyd.inertia_, rel=1e-9)


def test_no_graph_size_estimate_when_even_the_complete_graph_fits(blobs, monkeypatch):
    """N² pairs within the memory bound: the search skips the sampled estimate (and still truncates
    nothing); beyond it, the estimate runs."""
    from cnnbench.analysis import dbscan

    x, y = blobs  # 600 points: 360,000 pairs at most
    calls: list[int] = []
    real = dbscan.pair_counts

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(dbscan, "pair_counts", counting)
    db = dbscan_search(x, y, max_graph_entries=len(x) ** 2)
    assert calls == [] and not db.grid_truncated and db.scores.ari >= 0.95
    again = dbscan_search(x, y, max_graph_entries=len(x) ** 2 - 1)
    assert calls == [1] and again.to_dict() == db.to_dict()
