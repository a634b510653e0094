"""Leave-one-out k-NN accuracy."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from cnnbench.analysis.knn import knn_accuracy, knn_predictions
from cnnbench.analysis.neighbors import nearest_neighbors
from cnnbench.errors import ConfigError


def test_separated_classes_score_one_and_shuffled_labels_score_near_chance():
    x, y = make_blobs(800, 8, centers=4, cluster_std=0.5, center_box=(-20, 20), random_state=0)
    assert knn_accuracy(x, y, k=10) == 1.0
    shuffled = np.random.default_rng(1).permutation(y)
    assert 0.15 < knn_accuracy(x, shuffled, k=10) < 0.35  # chance is 0.25


def test_a_point_never_votes_for_itself():
    # Pairs of identical points with different labels: with k=1 each point sees only its twin.
    base = np.arange(20, dtype=np.float32)[:, None] * 10.0
    x = np.repeat(base, 2, axis=0)
    y = np.tile([0, 1], 20)
    assert knn_accuracy(x, y, k=1) == 0.0


def test_ties_go_to_the_nearer_neighbours():
    # Point 0's nearest neighbour is class 2, the next one class 1: a 1-1 tie at k=2.
    # Plain argmax would pick the lower class index (1); the nearer vote (2) must win.
    x = np.array([[0.0], [1.0], [2.2], [100.0], [101.0], [102.5]], dtype=np.float32)
    y = np.array([2, 2, 1, 0, 0, 1])
    nb = nearest_neighbors(x, 2)
    assert list(y[nb.indices[0]]) == [2, 1]
    assert knn_predictions(y, nb, k=2)[0] == 2
    # a clear majority still beats rank: 2 votes for class 0 outweigh a nearer single vote
    x3 = np.array([[0.0], [1.0], [1.5], [1.6]], dtype=np.float32)
    y3 = np.array([0, 1, 0, 0])
    assert knn_predictions(y3, nearest_neighbors(x3, 3), k=3)[0] == 0


def test_bad_k_is_named():
    x = np.zeros((5, 2))
    with pytest.raises(ConfigError, match="k-NN k=5"):
        knn_accuracy(x, np.arange(5), k=5)


def test_default_threads_follow_omp_num_threads(monkeypatch):
    """--threads N sets OMP_NUM_THREADS: the analysis's neighbour searches and t-SNE then use at most N."""
    import os

    from cnnbench.analysis.neighbors import default_n_jobs

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = len(os.sched_getaffinity(0))
    assert default_n_jobs() == cores
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert default_n_jobs() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", str(cores + 8))
    assert default_n_jobs() == cores
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert default_n_jobs() == cores
