"""Report figures: one colour per model everywhere, titles and labelled axes, missing values drawn as such."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex

from cnnbench.report import fig_classes, fig_compare, fig_curves, fig_features, fig_pareto
from cnnbench.report.aggregate import aggregate
from cnnbench.report.records import FIGURES, RunRecord
from cnnbench.report.style import model_colors, png_bytes
from cnnbench.rundir.analysis import ClusterScores
from cnnbench.rundir.tables import EpochTable

MODELS = ["lenet5", "resnet18", "vgg11"]
COLORS = model_colors(MODELS)


def _run(model, seed, status="completed", **figures):
    values = dict.fromkeys(FIGURES)
    values.update(figures)
    return RunRecord(f"m__{model}__cosine__s{seed}", "m", model, "cosine", seed, status, None, values, None, Path("."))


@pytest.fixture(scope="module")
def rows():
    runs = []
    for i, model in enumerate(MODELS):
        for seed in (0, 1):
            runs.append(
                _run(
                    model,
                    seed,
                    test_accuracy=0.98 + 0.005 * i + 0.001 * seed,
                    test_loss=0.05 - 0.01 * i,
                    best_val_accuracy=0.985 + 0.004 * i,
                    train_accuracy=0.97 + 0.004 * i,
                    train_time_s=10.0 * (i + 1),
                    test_time_s=1.0 + i,
                    size_mb=[0.17, 42.7, 35.2][i],
                    params=[44_426, 11_000_000, 9_000_000][i],
                    flops=[5e5, 5e8, 3e8][i],
                    epochs_run=10 + i,
                    time_per_epoch_s=1.0 + i,
                    # lenet5 never reaches the target; resnet18 in one seed of two
                    epochs_to_target=None if i == 0 or (i == 1 and seed == 1) else 5 + i,
                    time_to_target_s=None if i == 0 or (i == 1 and seed == 1) else 50.0 + i,
                )
            )
    return aggregate(runs)


def _bar_colors(ax):
    return [to_hex(p.get_facecolor()) for p in ax.patches]


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_model_colors_are_fixed_by_the_sorted_model_list():
    assert model_colors(["vgg11", "lenet5", "resnet18"]) == COLORS
    assert model_colors(["resnet18", "vgg11", "lenet5", "resnet18"]) == COLORS
    many = [f"model{i:02d}" for i in range(25)]
    colors = model_colors(many)
    assert len(set(colors.values())) == 25


def test_bar_panels_use_the_model_colour_and_label_every_axis(rows):
    fig = fig_compare.fig_test_loss_accuracy(rows, COLORS)
    assert fig._suptitle.get_text() == "Test loss and accuracy"
    for ax in fig.axes:
        assert _bar_colors(ax) == [COLORS[m] for m in MODELS]
        assert ax.get_ylabel() and ax.get_title()
        assert [t.get_text() for t in ax.get_xticklabels()] == MODELS
        (bars,) = [c for c in ax.containers if hasattr(c, "errorbar")]
        assert bars.errorbar is not None  # two seeds each: error bars drawn
    acc_ax = fig.axes[1]
    assert acc_ax.get_ylabel() == "accuracy (%)"
    assert acc_ax.get_ylim()[0] > 90  # zoomed: differences near 100 % stay visible
    assert "98.05" in [t.get_text() for t in acc_ax.texts]  # the value on the bar, two decimals
    assert png_bytes(fig).startswith(b"\x89PNG")


def test_size_panels_are_log_scaled_so_small_models_show(rows):
    fig = fig_compare.fig_size_params(rows, COLORS)
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "log", "log"]
    assert "MB" in fig.axes[0].get_ylabel()
    assert "2 × MACs" in fig.axes[2].get_ylabel()


def test_time_to_target_says_not_reached_and_partial_seeds(rows):
    fig = fig_compare.fig_time_to_target(rows, COLORS, 0.99)
    texts = _texts(fig)
    assert texts.count("not\nreached") == 2  # lenet5, in both panels
    assert texts.count("1/2\nseeds") == 2  # resnet18 reached it in one seed of two
    assert "99 %" in fig._suptitle.get_text()


def test_train_val_test_accuracy_groups_three_bars_per_model(rows):
    fig = fig_compare.fig_train_val_test_accuracy(rows, COLORS)
    (ax,) = fig.axes
    assert len(ax.patches) == 3 * len(MODELS)
    assert {to_hex(p.get_facecolor()[:3]) for p in ax.patches} == set(COLORS.values())
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["train (augmented)", "validation (best)", "test"]


def test_schedule_comparison_hatches_schedules_and_keeps_model_colours(rows):
    by_model = {r.model: {"cosine": r, "plateau": r} for r in rows}
    fig = fig_curves.fig_schedule_comparison(by_model, COLORS, MODELS, ["cosine", "plateau"])
    ax = fig.axes[0]
    hatches = {p.get_hatch() for p in ax.patches}
    assert hatches == {"", "//"}
    assert {to_hex(p.get_facecolor()) for p in ax.patches} == set(COLORS.values())
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["cosine", "plateau"]


def _table(lr):
    e = np.arange(1, 7, dtype=float)
    cols = {
        "epoch": e,
        "train_loss": 1 / e,
        "train_acc": 0.9 + e / 100,
        "val_loss": 0.9 / e,
        "val_acc": 0.91 + e / 100,
        "lr": np.asarray(lr, dtype=float),
        "epoch_time_s": np.ones(6),
        "train_time_s": e,
        "batch_size": np.full(6, 128.0),
    }
    return EpochTable(cols)


def test_training_curves_show_loss_accuracy_and_the_learning_rate():
    plateau = _table([1e-6, 1e-3, 1e-3, 1e-4, 1e-5, 1e-5])  # warm-up from 1e-6, then cuts: log axis
    cosine = _table([5e-4, 1e-3, 7e-4, 3e-4, 1e-4, 0.0])  # reaches 0: a log axis would hide it
    curves = [
        fig_curves.Curve("cosine, seed 0", cosine, 5, "completed"),
        fig_curves.Curve("plateau, seed 0", plateau, 4, "completed"),
    ]
    fig = fig_curves.fig_training_curves("resnet18", COLORS["resnet18"], curves, target=0.95)
    lr_axes = [ax for ax in fig.axes if ax.get_ylabel() == "learning rate"]
    assert len(lr_axes) == 4
    assert [ax.get_yscale() for ax in lr_axes] == ["linear", "linear", "log", "log"]
    main = [ax for ax in fig.axes if ax.get_ylabel() in ("loss (cross-entropy)", "accuracy (%)")]
    assert len(main) == 4
    for ax in main:
        data_lines = [ln for ln in ax.lines if ln.get_label() in ("train (augmented)", "validation")]
        assert {to_hex(ln.get_color()) for ln in data_lines} == {COLORS["resnet18"]}
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"train (augmented)", "validation", "learning rate", "selected checkpoint", "target 95 %"} <= set(legend)
    assert "resnet18" in fig._suptitle.get_text()


def test_pareto_front():
    # throughput (maximise) vs accuracy
    xs, ys = [100, 200, 300, 150, 300], [99.0, 98.0, 97.0, 97.5, 96.0]
    assert fig_pareto.pareto_front(xs, ys, maximize_x=True) == [2, 1, 0]  # 3 and 4 dominated
    # size (minimise) vs accuracy
    xs, ys = [10.0, 1.0, 5.0, 20.0], [99.0, 97.0, 99.0, 99.5]
    assert fig_pareto.pareto_front(xs, ys, maximize_x=False) == [1, 2, 3]  # 0 dominated by 2
    assert fig_pareto.pareto_front([], [], maximize_x=True) == []


def test_pareto_figure_rings_the_frontier():
    points = [
        fig_pareto.ParetoPoint("lenet5", 300_000, 98.9),
        fig_pareto.ParetoPoint("resnet18", 16_000, 99.5, 500, 0.1),
        fig_pareto.ParetoPoint("vgg11", 15_000, 99.4),  # slower and less accurate than resnet18
    ]
    fig = fig_pareto.fig_pareto(points, COLORS, x_label="GPU throughput (images/s)", maximize_x=True, title="t")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert "better" in ax.get_xlabel() and "accuracy" in ax.get_ylabel()
    markers = [c.lines[0] for c in ax.containers]  # one errorbar container per model, in order
    ringed = [to_hex(m.get_markeredgecolor()) == "#000000" for m in markers]
    assert ringed == [True, True, False]
    assert {t.get_text() for t in ax.texts} == set(MODELS)


def test_confusion_and_per_class_figures():
    confusion = np.array([[90, 10], [5, 95]])
    fig = fig_classes.fig_confusion("vgg11", COLORS["vgg11"], confusion, ["cat", "dog"], "test split")
    ax = fig.axes[0]
    image = ax.images[0].get_array()
    assert np.allclose(image.sum(axis=1), 100)  # rows normalised to 100 %
    assert to_hex(ax.spines["left"].get_edgecolor()) == COLORS["vgg11"]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    assert "90.0" in [t.get_text() for t in ax.texts]
    acc = np.array([[0.9, 0.95], [np.nan, 0.99], [0.97, 0.98]])
    fig = fig_classes.fig_per_class_accuracy(MODELS, COLORS, ["cat", "dog"], acc, "test split")
    ax = fig.axes[0]
    assert [to_hex(t.get_color()) for t in ax.get_yticklabels()] == [COLORS[m] for m in MODELS]
    assert len(ax.texts) == 5  # the missing value is left blank
    assert png_bytes(fig).startswith(b"\x89PNG")


def test_cluster_scores_chart_with_a_model_without_analysis():
    scores = {
        "lenet5": ClusterScores(0.6, 0.7, 0.8, 0.85, 0.98, 0.5, 0.6, 40),
        "resnet18": ClusterScores(0.8, 0.9, None, None, 0.995, None, None, None),  # DBSCAN found nothing valid
    }
    fig = fig_features.fig_cluster_scores(MODELS, COLORS, scores)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("Adjusted Rand index") and titles[1].startswith("Normalised mutual")
    assert "k-NN" in titles[2]
    texts = _texts(fig)
    assert texts.count("n/a") >= 2 * 3  # vgg11 has nothing: three methods in two panels
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[2] == "K-means on the raw features"


def test_one_seed_draws_no_error_bars():
    rows = aggregate([_run(m, 0, test_accuracy=0.99, test_loss=0.03) for m in MODELS])
    fig = fig_compare.fig_test_loss_accuracy(rows, COLORS)
    for ax in fig.axes:
        (bars,) = [c for c in ax.containers if hasattr(c, "errorbar")]
        assert bars.errorbar is None
    assert fig._supxlabel is None  # no "error bars: ± 1 std" note


def test_the_feature_caption_names_the_map_dimensions_analysis_json_records(tmp_path):
    from cnnbench.report.sections.features import _map_dims_text
    from cnnbench.rundir.analysis import read_analysis

    for dims in (2, 3):
        run = tmp_path / f"d{dims}"
        run.mkdir()
        (run / "analysis.json").write_text(
            json.dumps({"tsne": {"n_components": dims, "kmeans": {"ari": 0.5, "nmi": 0.6}}, "raw": {}})
        )
    two, three = read_analysis(tmp_path / "d2"), read_analysis(tmp_path / "d3")
    assert (two.map_dims, three.map_dims, two.kmeans_ari) == (2, 3, 0.5)
    assert _map_dims_text({"a": three}) == "3-D"
    assert _map_dims_text({"a": two, "b": three}) == "2-D or 3-D"


@pytest.mark.parametrize(
    ("configs", "label"),
    [
        ([{"augment": "none"}], "train"),
        ([{"augment": "auto"}], "train"),  # auto on digits trains on plain batches
        ([{"augment": "digits"}], "train (augmented)"),
        ([{"augment": "none"}, {"augment": "digits"}], "train (augmented for some)"),
    ],
)
def test_train_bars_say_augmented_only_when_the_runs_were(configs, label):
    runs = []
    for i, config in enumerate(configs):
        run = _run(MODELS[i], 0, test_accuracy=0.9, best_val_accuracy=0.9, train_accuracy=0.9)
        run.dataset, run.config = "mnist-sample", config
        runs.append(run)
    fig = fig_compare.fig_train_val_test_accuracy(aggregate(runs), COLORS)
    assert [t.get_text() for t in fig.legends[0].get_texts()][0] == label
