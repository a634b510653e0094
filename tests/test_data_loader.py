"""DeviceLoader on the CPU: one visit per epoch, DDP shards, reproducibility, resume, eval views."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from cnnbench.data import ArraySplit, DeviceLoader, build_augmentation
from cnnbench.errors import ConfigError, DataError


def _split(n=103, c=1, size=8, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, c, size, size), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256  # pixel (0, 0) and the label identify the sample
    return ArraySplit(images, np.arange(n, dtype=np.int64))


def _loader(split, **kw):
    args = {
        "batch_size": 10,
        "device": "cpu",
        "train": True,
        "normalize": ([0.5] * split.images.shape[1], [0.25] * split.images.shape[1]),
    }
    args.update(kw)
    return DeviceLoader(split, **args)


def _epoch_labels(loader):
    return [y.tolist() for _, y in loader]


@pytest.mark.parametrize("n", [1, 9, 10, 11, 103])
@pytest.mark.parametrize("train", [True, False])
def test_every_sample_once_per_epoch(n, train):
    loader = _loader(_split(n), train=train)
    for epoch in range(2):
        loader.set_epoch(epoch)
        seen = [v for batch in _epoch_labels(loader) for v in batch]
        assert sorted(seen) == list(range(n))
        assert len(loader) == -(-n // 10) and loader.num_samples == n
    if not train:
        assert seen == list(range(n))  # eval keeps the order


def test_epochs_shuffle_differently_and_reproducibly():
    split = _split()
    a, b = _loader(split, seed=3), _loader(split, seed=3)
    a.set_epoch(1)
    b.set_epoch(1)
    xa = [x for x, _ in a]
    xb = [x for x, _ in b]
    assert all(torch.equal(p, q) for p, q in zip(xa, xb, strict=True))
    b.set_epoch(2)
    assert _epoch_labels(a) != _epoch_labels(b)
    assert _epoch_labels(_loader(split, seed=4)) != _epoch_labels(_loader(split, seed=3))


def test_resume_mid_epoch_is_bit_identical():
    split = _split(57)
    aug = build_augmentation("digits")
    full = _loader(split, augment=aug, seed=7)
    full.set_epoch(4)
    batches = list(full)
    resumed = _loader(split, augment=aug, seed=7)  # a fresh process after a crash
    resumed.set_epoch(4)
    tail = list(resumed.batches(start=3))
    assert len(tail) == len(batches) - 3
    for (x1, y1), (x2, y2) in zip(batches[3:], tail, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


@pytest.mark.parametrize(
    ("n", "batch", "world"),
    [(103, 10, 4), (100, 10, 4), (41, 10, 4), (42, 10, 4), (43, 10, 4), (7, 2, 3), (4, 10, 4)],
)
def test_ddp_shards_disjoint_lockstep_and_complete(n, batch, world):
    split = _split(n)
    loaders = [_loader(split, batch_size=batch, shard=(r, world), seed=1) for r in range(world)]
    for ld in loaders:
        ld.set_epoch(2)
    per_rank = [_epoch_labels(ld) for ld in loaders]
    assert len({len(p) for p in per_rank}) == 1  # every rank runs the same number of steps
    assert all(len(b) > 0 for p in per_rank for b in p)  # no empty batch on any rank
    flat = [v for p in per_rank for b in p for v in b]
    assert sorted(flat) == list(range(n))  # disjoint and complete: each sample once
    assert sum(ld.num_samples for ld in loaders) == n
    for k in range(len(per_rank[0])):  # batch sizes within a step differ by at most one
        sizes = [len(p[k]) for p in per_rank]
        assert max(sizes) - min(sizes) <= 1


def test_drop_last_keeps_only_full_steps():
    loaders = [_loader(_split(43), batch_size=5, shard=(r, 2), drop_last=True) for r in range(2)]
    per_rank = [_epoch_labels(ld) for ld in loaders]
    assert [len(p) for p in per_rank] == [4, 4] and all(len(b) == 5 for p in per_rank for b in p)
    flat = [v for p in per_rank for b in p for v in b]
    assert len(set(flat)) == 40


def test_normalisation_is_last_and_exact():
    split = _split(20)
    loader = _loader(split, train=False, batch_size=20, normalize=([0.25], [0.5]))
    x, y = next(iter(loader))
    expected = (torch.from_numpy(split.images).float() / 255 - 0.25) / 0.5
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.allclose(x, expected, atol=1e-6)


def test_train_batches_are_augmented_and_normalised():
    split = _split(64, size=28)
    aug = build_augmentation("digits")
    x, _ = next(iter(_loader(split, augment=aug, batch_size=64, normalize=([0.0], [1.0]))))
    assert x.shape == (64, 1, 28, 28)
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    plain, _ = next(iter(_loader(split, batch_size=64, normalize=([0.0], [1.0]))))
    assert not torch.allclose(x, plain)


def test_output_size_and_natural_eval_centre_crop():
    split = _split(6, c=3, size=256)
    x, _ = next(iter(_loader(split, train=False, output_size=224, normalize=([0, 0, 0], [1, 1, 1]))))
    # 256 -> 224 at the 0.875 ratio is an exact centre crop, no resampling
    assert torch.allclose(x, torch.from_numpy(split.images[:, :, 16:240, 16:240]).float() / 255)
    up, _ = next(iter(_loader(_split(6, c=3, size=32), train=False, output_size=64, normalize=([0] * 3, [1] * 3))))
    assert up.shape == (6, 3, 64, 64)
    digits, _ = next(iter(_loader(_split(6, size=28), train=False, output_size=32, normalize=([0], [1]))))
    assert digits.shape == (6, 1, 32, 32)
    aug = build_augmentation("natural")
    xa, _ = next(iter(_loader(split, augment=aug, output_size=224, normalize=([0] * 3, [1] * 3))))
    assert xa.shape == (6, 3, 224, 224)


def test_empty_split_has_no_batches():
    empty = ArraySplit(np.zeros((0, 1, 8, 8), np.uint8), np.zeros(0, np.int64))
    loader = _loader(empty, train=False, shard=(1, 2))
    assert len(loader) == 0 and loader.num_samples == 0 and list(loader) == []


def test_batch_size_can_change_between_epochs():
    loader = _loader(_split(50))
    loader.batch_size = 5
    assert len(loader) == 10 and all(len(y) == 5 for _, y in loader)
    with pytest.raises(ConfigError, match=r"--batch-size 0: expected a whole number ≥ 1"):
        loader.batch_size = 0


def test_errors_name_the_problem():
    with pytest.raises(ConfigError, match=r"rank 2 / world_size 2"):
        _loader(_split(), shard=(2, 2))
    with pytest.raises(DataError, match=r"3 samples cannot be sharded over 4 ranks"):
        _loader(_split(3), shard=(0, 4))
    with pytest.raises(ConfigError, match=r"mean/std have 3/3 values; the images have 1 channels"):
        _loader(_split(), normalize=([0.5] * 3, [0.2] * 3))
    with pytest.raises(ConfigError, match=r"batches\(start=99\)"):
        next(_loader(_split()).batches(start=99))


def test_memmap_split_is_read_without_copy_warnings(tmp_path):
    arr = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=(12, 1, 8, 8))
    arr[:] = 7
    arr.flush()
    ro = np.load(tmp_path / "x.npy", mmap_mode="r")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "array is not writable" warning would fail the test
        loader = _loader(ArraySplit(ro, np.zeros(12, np.int64)), train=False)
        x, _ = next(iter(loader))
    assert torch.allclose(x, torch.full_like(x, (7 / 255 - 0.5) / 0.25))
