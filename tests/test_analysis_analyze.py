"""analyze(): the analysis.json object, and the figures drawn from it."""

import json

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from cnnbench.analysis.analyze import AnalysisConfig, analyze
from cnnbench.analysis.figures import (
    class_colors,
    figure_png_bytes,
    match_clusters,
    plot_knn_distance,
    plot_tsne_panels,
)
from cnnbench.errors import ConfigError
from cnnbench.rundir.analysis import ANALYSIS_FORMAT, ANALYSIS_KEYS, SECONDS_KEYS, analysis_value
from cnnbench.utils.io import dumps_json

CLASSES = ["zero", "one", "two", "three"]


@pytest.fixture(scope="module")
def result():
    x, y = make_blobs(400, 24, centers=4, cluster_std=1.0, center_box=(-15, 15), random_state=2)
    return analyze(x, y, AnalysisConfig(seed=0), classes=CLASSES)


def test_scores_on_map_and_raw_features(result):
    d = result.to_dict()
    for space in ("tsne", "raw"):
        assert d[space]["kmeans"]["ari"] >= 0.95
        assert d[space]["dbscan"]["ari"] >= 0.95
        assert d[space]["knn_accuracy"] == 1.0
    assert d["points"] == 400 and d["num_classes"] == 4 and d["feature_dim"] == 24
    assert d["classes"] == CLASSES


def test_top_level_keys_follow_the_issue_and_copy_the_right_sections(result):
    d = json.loads(dumps_json(result.to_dict()))  # survives strict JSON (no NaN)
    assert d["format"] == ANALYSIS_FORMAT
    assert d["kmeans"] == d["tsne"]["kmeans"] and d["dbscan"] == d["tsne"]["dbscan"]
    assert d["knn_accuracy"] == d["raw"]["knn_accuracy"]
    assert {"ari", "nmi", "silhouette"} <= set(d["kmeans"])
    assert {"ari", "nmi", "eps", "min_samples", "noise_points"} <= set(d["dbscan"])
    assert d["dbscan_uses_labels"] is True and d["dbscan"]["uses_labels"] is True
    assert any("true labels" in n for n in d["notes"])
    assert all(k == k.lower() for k in d)
    # every top-level key is documented, and every documented top-level key is written
    documented = {k for k in ANALYSIS_KEYS if "." not in k}
    assert set(d) == documented
    assert set(d["seconds"]) <= set(SECONDS_KEYS)
    assert {"tsne", "tsne_dbscan", "raw_kmeans", "total"} <= set(d["seconds"])
    assert analysis_value(d, "raw.kmeans.ari") == d["raw"]["kmeans"]["ari"]
    assert analysis_value(d, "model", "?") == "?"  # null -> default


def test_raw_scores_can_be_skipped():
    x, y = make_blobs(120, 6, centers=3, random_state=0)
    d = analyze(x, y, AnalysisConfig(raw=False)).to_dict()
    assert d["raw"] is None and d["knn_accuracy"] is None
    assert d["tsne"]["kmeans"]["ari"] is not None
    assert not any(k.startswith("raw_") for k in d["seconds"])


def test_bad_inputs_raise_config_errors():
    x, y = make_blobs(50, 4, centers=2, random_state=0)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        analyze(x, np.zeros(50, dtype=int))
    with pytest.raises(ConfigError, match="at least 10"):
        analyze(x[:5], y[:5])
    bad = x.copy()
    bad[7] = np.nan
    with pytest.raises(ConfigError, match="1 of 50 feature vectors"):
        analyze(bad, y)
    with pytest.raises(ConfigError, match="--perplexity"):
        AnalysisConfig(perplexity=0)
    with pytest.raises(ConfigError, match="--tsne-backend"):
        AnalysisConfig(tsne_backend="umap")


def test_match_clusters_undoes_a_permutation():
    y = np.repeat([0, 1, 2], 10)
    clusters = np.array([2, 0, 1])[y]
    clusters[0] = -1  # noise is ignored
    assert match_clusters(clusters, y) == {2: 0, 0: 1, 1: 2}


def test_tsne_figure_has_three_labelled_panels_with_legends(result):
    fig = plot_tsne_panels(result, "blobs")
    axes = fig.axes
    assert len(axes) == 3
    assert axes[0].get_title().startswith("Truth") and "K-means" in axes[1].get_title()
    assert "DBSCAN" in axes[2].get_title() and "ARI" in axes[2].get_title()
    for ax in axes:
        assert ax.get_xlabel() == "t-SNE 1" and ax.get_legend() is not None
    truth_names = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert truth_names == CLASSES
    # a K-means cluster matched to class "two" is drawn in class two's colour
    km_texts = [t.get_text() for t in axes[1].get_legend().get_texts()]
    assert sorted(t.split(" ≈ ")[1] for t in km_texts) == sorted(CLASSES)
    # every point has its class's colour (truth) and its legend entry's colour (K-means)
    palette = class_colors(len(CLASSES))
    order = np.argsort(result.labels, kind="stable")
    np.testing.assert_allclose(axes[0].collections[0].get_facecolors(), palette[result.labels[order]])
    km = result.map.kmeans.labels
    drawn = axes[1].collections[0].get_facecolors()  # clusters in ascending id order
    legend = axes[1].get_legend()
    for text, handle in zip(legend.get_texts(), legend.legend_handles, strict=True):
        cid, name = text.get_text().split(" ≈ ")
        points = drawn[np.flatnonzero(np.sort(km, kind="stable") == int(cid))]
        np.testing.assert_allclose(points, np.broadcast_to(handle.get_facecolor()[0], points.shape))
        np.testing.assert_allclose(handle.get_facecolor()[0], palette[CLASSES.index(name)])
    png = figure_png_bytes(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_noise_is_grey_and_labelled(result):
    import dataclasses

    db = result.map.dbscan
    labels = db.labels.copy()
    labels[:25] = -1
    noisy = dataclasses.replace(
        result, map=dataclasses.replace(result.map, dbscan=dataclasses.replace(db, labels=labels))
    )
    ax = plot_tsne_panels(noisy).axes[2]
    names = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "noise (25)" in names
    noise_handle = ax.get_legend().legend_handles[names.index("noise (25)")]
    assert tuple(np.round(noise_handle.get_facecolor()[0][:3], 2)) == (0.62, 0.62, 0.62)
    # the noise points themselves are grey and drawn first, under the clusters
    colors = ax.collections[0].get_facecolors()
    np.testing.assert_allclose(colors[:25, :3], 0.62, atol=0.01)
    assert not np.allclose(colors[25:, :3], 0.62, atol=0.01)


def test_knn_distance_figure_marks_knee_and_chosen_eps(result):
    fig = plot_knn_distance(result)
    assert len(fig.axes) == 2  # t-SNE map and raw features
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("knee: eps") for t in texts)
    assert any(t.startswith("chosen by ARI: eps") for t in texts)
    chosen = result.map.dbscan.eps
    ys = [line.get_ydata()[0] for line in fig.axes[0].get_lines() if len(line.get_ydata()) == 2]
    assert any(abs(v - chosen) < 1e-9 for v in ys)


@pytest.mark.slow
def test_package_exports_resolve_to_the_functions_not_their_modules():
    import subprocess
    import sys

    code = (
        "from cnnbench.analysis import AnalysisConfig, analyze, embed_run, tsne_2d\n"
        "import cnnbench.analysis as a\n"
        "assert callable(analyze) and callable(a.analyze) and callable(tsne_2d), (analyze, a.analyze)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def result_3d():
    x, y = make_blobs(400, 24, centers=4, cluster_std=1.0, center_box=(-15, 15), random_state=2)
    return analyze(x, y, AnalysisConfig(seed=0, n_components=3, raw=False), classes=CLASSES)


def test_a_3d_map_is_scored_and_recorded(result, result_3d):
    assert result_3d.coords.shape == (400, 3) and np.all(np.isfinite(result_3d.coords))
    d = json.loads(dumps_json(result_3d.to_dict()))
    assert d["tsne"]["n_components"] == 3 and result.to_dict()["tsne"]["n_components"] == 2
    assert "tsne.n_components" in ANALYSIS_KEYS
    assert d["tsne"]["kmeans"]["ari"] >= 0.95 and d["tsne"]["knn_accuracy"] == 1.0
    with pytest.raises(ConfigError, match="--n-components 4: expected one of 2, 3"):
        AnalysisConfig(n_components=4)


def test_3d_figure_is_three_projections_side_by_side_per_panel(result_3d):
    fig = plot_tsne_panels(result_3d, "blobs")
    axes = np.array(fig.axes).reshape(3, 3)  # rows: truth, K-means, DBSCAN; columns: projections
    for row in axes:
        labels = [(ax.get_xlabel(), ax.get_ylabel()) for ax in row]
        assert labels == [("t-SNE 1", "t-SNE 2"), ("t-SNE 1", "t-SNE 3"), ("t-SNE 2", "t-SNE 3")]
        assert row[0].get_legend() is None and row[1].get_legend() is None and row[2].get_legend() is not None
    assert axes[0, 1].get_title().startswith("Truth") and "K-means" in axes[1, 1].get_title()
    assert "DBSCAN" in axes[2, 1].get_title() and "3-D t-SNE" in fig.get_suptitle()
    assert [t.get_text() for t in axes[0, 2].get_legend().get_texts()] == CLASSES
    # each projection draws the map's own columns
    # all points in one scatter, class by class
    offsets = axes[0, 1].collections[0].get_offsets()
    by_class = result_3d.coords[np.argsort(result_3d.labels, kind="stable")]
    np.testing.assert_allclose(offsets, by_class[:, [0, 2]], rtol=1e-6)
    assert not axes[0, 1].get_xticks().size  # t-SNE axes carry no ticks
    png = figure_png_bytes(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_analysis_is_repeatable_and_below_1000_points_equals_the_legacy_one():
    """Same seed, same numbers; and below 1,000 points (where openTSNE's own neighbour search is exact
    too) the new code gives the issue-6 results exactly."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = x[:500], y[:500]

    def without_times(legacy: bool) -> dict:
        d = analyze(x, y, AnalysisConfig(seed=0, legacy=legacy)).to_dict()
        assert {"imports", "tsne", "tsne_affinities", "tsne_main", "raw_dbscan", "total"} <= set(d.pop("seconds"))
        return d

    first, again, legacy = without_times(False), without_times(False), without_times(True)
    # the same neighbours under two names: openTSNE's "auto" search is exact below 1,000 points
    assert (first["tsne"].pop("neighbors"), again["tsne"].pop("neighbors")) == ("exact", "exact")
    assert legacy["tsne"].pop("neighbors") == "auto"
    assert first == again == legacy
    assert first["raw"]["kmeans"]["ari"] > 0.6 and first["tsne"]["knn_accuracy"] > 0.9


def test_raw_kmeans_runs_beside_the_other_stages_on_two_threads_and_changes_nothing(monkeypatch):
    """With two threads to use, K-means on the raw features runs on a side thread; the numbers, and the
    stages listed in ``seconds`` (in their order), are those of the one-thread analysis."""
    import threading

    from sklearn.datasets import load_digits

    from cnnbench.analysis import analyze as analyze_module

    x, y = load_digits(return_X_y=True)
    x, y = x[:400], y[:400]
    seen: dict[int, str] = {}  # feature width -> the thread that ran its K-means
    real = analyze_module.kmeans_scores

    def spy(points, *args, **kwargs):
        seen[points.shape[1]] = threading.current_thread().name
        return real(points, *args, **kwargs)

    monkeypatch.setattr(analyze_module, "kmeans_scores", spy)
    one = analyze(x, y, AnalysisConfig(seed=0, n_jobs=1)).to_dict()
    assert seen == {2: "MainThread", 64: "MainThread"}
    two = analyze(x, y, AnalysisConfig(seed=0, n_jobs=2)).to_dict()
    assert seen[2] == "MainThread" and seen[64].startswith("cnnbench-kmeans")
    assert list(one["seconds"]) == list(two["seconds"])
    assert two["seconds"]["raw_kmeans"] > 0
    one.pop("seconds"), two.pop("seconds")
    assert one == two


def test_one_thread_asked_for_means_no_side_thread(monkeypatch):
    from cnnbench.analysis import analyze as analyze_module

    monkeypatch.setattr(analyze_module, "default_n_jobs", lambda: 1)  # e.g. --threads 1 (OMP_NUM_THREADS=1)
    assert not analyze_module.uses_side_thread(None)
    assert analyze_module.uses_side_thread(2)
    monkeypatch.setattr(analyze_module, "default_n_jobs", lambda: 2)
    assert analyze_module.uses_side_thread(None)
    assert not analyze_module.uses_side_thread(1)


@pytest.mark.parametrize(("n_jobs", "thread"), [(1, "MainThread"), (2, "cnnbench-npz")])
def test_embedding_npz_is_written_beside_the_figures_on_two_threads(result, tmp_path, monkeypatch, n_jobs, thread):
    import dataclasses
    import threading

    from cnnbench.analysis import embed

    seen: list[str] = []
    real = embed.embedding_npz_bytes

    def spy(*args):
        seen.append(threading.current_thread().name)
        return real(*args)

    monkeypatch.setattr(embed, "embedding_npz_bytes", spy)
    config = dataclasses.replace(result.config, n_jobs=n_jobs)
    embed.write_outputs(dataclasses.replace(result, config=config, seconds=dict(result.seconds)), tmp_path)
    assert len(seen) == 1 and seen[0].startswith(thread)
    with np.load(tmp_path / "embedding.npz") as npz:
        assert np.array_equal(npz["features"], result.features) and np.array_equal(npz["coords"], result.coords)
    written = json.loads((tmp_path / "analysis.json").read_text())
    assert {"figures", "files"} <= set(written["seconds"])
    assert (tmp_path / "tsne.png").stat().st_size > 0 and (tmp_path / "knn_distance.png").stat().st_size > 0


def test_a_failure_on_the_side_thread_surfaces_and_leaves_no_analysis_json(result, tmp_path, monkeypatch):
    import dataclasses

    from cnnbench.analysis import embed

    def broken(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(embed, "embedding_npz_bytes", broken)
    config = dataclasses.replace(result.config, n_jobs=2)
    with pytest.raises(OSError, match="No space left"):
        embed.write_outputs(dataclasses.replace(result, config=config, seconds=dict(result.seconds)), tmp_path)
    assert not (tmp_path / "analysis.json").exists() and not (tmp_path / "embedding.npz").exists()


def test_a_failed_figure_leaves_the_previous_embedding_and_analysis_together(result, tmp_path, monkeypatch):
    """embedding.npz is compressed beside the figures but written after them: a figure that fails leaves
    the previous embedding.npz and analysis.json as they were, a matching pair."""
    import dataclasses

    from cnnbench.analysis import embed, figures

    two = dataclasses.replace(result.config, n_jobs=2)
    embed.write_outputs(dataclasses.replace(result, config=two, seconds=dict(result.seconds)), tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in ("embedding.npz", "analysis.json")}

    def broken(*args, **kwargs):
        raise RuntimeError("a figure failed")

    monkeypatch.setattr(figures, "plot_knn_distance", broken)
    fewer = dataclasses.replace(result, config=two, seconds=dict(result.seconds), features=result.features[:, :3])
    with pytest.raises(RuntimeError, match="a figure failed"):
        embed.write_outputs(fewer, tmp_path)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
