"""The augmentation preview (cnnbench.data.preview): what a run's loader does, in a file, a figure and a CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cnnbench.data import ArraySplit, DataConfig, DeviceLoader, build_augmentation, load_dataset
from cnnbench.data.preview import AUGMENTED_FILE, AugmentationPreview, preview_augmentation
from cnnbench.errors import CnnbenchError
from cnnbench.report.sample_grid import draw_augmentation_grid
from conftest import run_cli


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield load_dataset(DataConfig(name="synthetic"))


def test_draw_k_is_what_the_loader_gives_the_first_batch_of_epoch_k(synthetic):
    seed, draws = 3, 3
    preview = preview_augmentation(synthetic, "auto", seed, draws=draws)
    assert preview is not None and preview.augment["kind"] == "DigitsAugment"  # auto: digits for this dataset
    rows = preview.rows
    assert preview.originals.shape == (rows, 1, 28, 28) and preview.augmented.shape == (rows, draws, 1, 28, 28)
    assert preview.labels.tolist() == list(range(rows))  # the first training image of each class
    # a loader over exactly these images, one batch per epoch: position i of the batch is image order[i]
    loader = DeviceLoader(
        ArraySplit(preview.originals, preview.labels),
        batch_size=rows,
        device="cpu",
        train=True,
        augment=build_augmentation("digits"),
        seed=seed,
        normalize=([0.0], [1.0]),
    )
    for epoch in range(draws):
        loader.set_epoch(epoch)
        x, y = next(iter(loader))
        # the loader permutes the images; the preview draws by position, so compare position by position
        seen = (x * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        order = y.numpy()
        expected = preview_augmentation(_reordered(synthetic, order), "digits", seed, draws=draws, rows=rows).augmented[
            :, epoch
        ]
        assert np.array_equal(seen, expected)


def _reordered(dataset, order):
    """The dataset with the first image of each class placed in ``order`` at the front of train."""
    from dataclasses import replace

    labels = np.asarray(dataset.train.labels)
    firsts = [int(np.flatnonzero(labels == c)[0]) for c in order]
    images = np.asarray(dataset.train.images)[firsts]
    # relabel so that "the first image of class k" is the k-th of ``order``
    return replace(dataset, train=ArraySplit(images, np.arange(len(order))), classes=[str(c) for c in order])


def test_none_has_nothing_to_show_and_a_preview_round_trips_through_its_file(synthetic, tmp_path):
    assert preview_augmentation(synthetic, "none", 0) is None
    preview = preview_augmentation(synthetic, "digits", 0, rows=4, draws=2)
    again = AugmentationPreview.load(preview.save(tmp_path / AUGMENTED_FILE))
    assert np.array_equal(again.augmented, preview.augmented) and again.augment == preview.augment
    assert (again.rows, again.draws, again.seed, again.dataset) == (4, 2, 0, "synthetic")
    np.savez(tmp_path / "bad.npz", images=np.zeros((1, 1, 4, 4), np.uint8))
    with pytest.raises(CnnbenchError, match="bad.npz: not a readable augmentation preview"):
        AugmentationPreview.load(tmp_path / "bad.npz")


def test_grid_has_a_row_per_image_and_a_column_per_draw(synthetic, tmp_path):
    small = draw_augmentation_grid(preview_augmentation(synthetic, "digits", 0, rows=2, draws=2), tmp_path / "a.png")
    tall = draw_augmentation_grid(preview_augmentation(synthetic, "digits", 0, rows=8, draws=2), tmp_path / "b.png")
    wide = draw_augmentation_grid(preview_augmentation(synthetic, "digits", 0, rows=2, draws=6), tmp_path / "c.png")
    (w0, h0), (w1, h1), (w2, h2) = (Image.open(p).size for p in (small, tall, wide))
    assert w1 == w0 and h1 > h0 + 200  # 6 more rows: taller, same width
    assert h2 == h0 and w2 > w0 + 200  # 4 more columns: wider, same height


@pytest.mark.slow
def test_cli_augmented_writes_the_figure_and_refuses_what_it_cannot_show(tmp_path):
    env = {"CNNBENCH_CACHE": str(tmp_path / "cache"), "CNNBENCH_DATA": str(tmp_path / "data")}
    out = tmp_path / "aug.png"
    proc = run_cli("data", "samples", "synthetic", "--augmented", "--draws", "3", "-o", str(out), "--json", env=env)
    info = json.loads(proc.stdout)
    assert (info["rows"], info["draws"], info["seed"], info["split"]) == (10, 3, 0, "train")
    assert info["augment"]["kind"] == "DigitsAugment" and info["augment"]["rotation"] == 10.0
    assert Image.open(out).size[1] > Image.open(out).size[0]  # 10 rows of 1 + 3 columns: portrait
    bad = run_cli("data", "samples", "synthetic", "--augmented", "--augment", "none", "-o", str(out), check=False)
    assert bad.returncode == 2 and "--augment none: there is no augmentation to show" in bad.stderr


def test_cli_augment_choices_are_the_engines():
    from cnnbench.cli.data import AUGMENT_CHOICES
    from cnnbench.engine.config import AUGMENT_CHOICES as ENGINE_CHOICES

    assert AUGMENT_CHOICES == ENGINE_CHOICES


@pytest.mark.slow
def test_study_with_augmentation_writes_the_preview_and_the_report_shows_it(tmp_path, isolated_cache):
    out = tmp_path / "study"
    common = [
        "--preset",
        "none",
        "--data",
        "synthetic",
        "--models",
        "lenet5",
        "--schedules",
        "cosine",
        "--max-steps",
        "8",
    ]
    run_cli("run", *common, "--augment", "digits", "--batch-size", "32", "--no-embed", "--no-speed", "--out", str(out))
    preview = AugmentationPreview.load(out / AUGMENTED_FILE)
    assert preview.augmented.shape == (10, 4, 1, 28, 28) and preview.seed == 0
    figure = out / "figures" / "augmentation.png"
    width, height = Image.open(figure).size
    # 10 rows × (original + 4 draws) of 0.55 in per image at 110 dpi, plus the fixed margins
    assert abs(width - 110 * (1.6 + 5 * 0.55)) <= 1 and abs(height - 110 * (1.0 + 10 * 0.55)) <= 1
    html = (out / "report.html").read_text()
    assert 'id="figure-augmentation" data-rows="10" data-draws="4" data-seed="0"' in html
    # `cnnbench data samples --augmented` with the run's seed draws the very same figure
    cli = tmp_path / "cli.png"
    run_cli("data", "samples", "synthetic", "--augmented", "-o", str(cli))
    assert cli.read_bytes() == figure.read_bytes()
    assert preview.used
    # a study without augmentation says so, and shows what the dataset's default augmentation would do
    plain = tmp_path / "plain"
    run_cli("run", *common, "--augment", "none", "--batch-size", "32", "--no-embed", "--no-speed", "--out", str(plain))
    md = (plain / "report.md").read_text()
    reference = AugmentationPreview.load(plain / AUGMENTED_FILE)
    assert not reference.used and reference.augmented.shape == (10, 4, 1, 28, 28)
    assert "No augmentation: every run of this study trains on the images as stored (augment: none)." in md
    assert "figures/augmentation.png" in md and "for reference only: no run of this study used it" in md
