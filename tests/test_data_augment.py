"""Batched per-sample augmentation: shapes, dtype, range, per-sample randomness, reproducibility."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cnnbench.data import build_augmentation
from cnnbench.data.augment import DigitsAugment, NaturalAugment, _affine_grid
from cnnbench.errors import ConfigError


def _digits(b=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 1, 28, 28), dtype=torch.uint8, generator=g)


def _photos(b=8, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize(
    ("kind", "make", "out"),
    [("digits", _digits, None), ("digits", _digits, 32), ("natural", _photos, None), ("natural", _photos, 48)],
)
def test_shape_dtype_range(kind, make, out):
    x = make()
    aug = build_augmentation(kind, output_size=out)
    y = aug(x, torch.Generator().manual_seed(1))
    side = out or x.shape[-1]
    assert y.shape == (x.shape[0], x.shape[1], side, side) and y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("kind", ["digits", "natural"])
def test_same_seed_same_batch_other_seed_other_batch(kind):
    x = _digits() if kind == "digits" else _photos()
    aug = build_augmentation(kind)
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    c = aug(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("kind", ["digits", "natural"])
def test_parameters_are_per_sample(kind):
    # The same image repeated across the batch must come out differently (torchvision.v2 on a batch would not).
    one = _digits(1) if kind == "digits" else _photos(1)
    x = one.repeat(8, 1, 1, 1)
    y = build_augmentation(kind)(x, torch.Generator().manual_seed(0))
    distinct = {tuple(y[i].flatten()[::7].tolist()) for i in range(8)}
    assert len(distinct) == 8


def test_identity_parameters_give_the_input_back():
    x = _digits(4)
    aug = DigitsAugment(rotation=0, translate=0, scale=(1, 1), brightness=0, contrast=0, erase_p=0)
    y = aug(x, torch.Generator().manual_seed(0))
    assert torch.allclose(y, x.float() / 255, atol=1e-5)
    nat = NaturalAugment(scale=(1, 1), ratio=(1, 1), flip=0, brightness=0, contrast=0, saturation=0)
    p = _photos(2)
    assert torch.allclose(nat(p, torch.Generator()), p.float() / 255, atol=1e-5)


def test_flip_only_mirrors():
    p = _photos(4)
    nat = NaturalAugment(scale=(1, 1), ratio=(1, 1), flip=1.0, brightness=0, contrast=0, saturation=0)
    assert torch.allclose(nat(p, torch.Generator()), p.float().flip(-1) / 255, atol=1e-5)


def test_erasing_fills_a_rectangle():
    x = torch.full((32, 1, 28, 28), 255, dtype=torch.uint8)
    aug = DigitsAugment(
        rotation=0,
        translate=0,
        scale=(1, 1),
        brightness=0,
        contrast=0,
        erase_p=1.0,
        erase_scale=(0.1, 0.1),
        erase_ratio=(1, 1),
    )
    y = aug(x, torch.Generator().manual_seed(0))
    erased = (y == 0).sum(dim=(1, 2, 3)).float()  # pixels per sample
    assert torch.all((erased > 0.05 * 784) & (erased < 0.16 * 784))
    for i in range(4):  # the zeros form one filled rectangle
        rows, cols = torch.nonzero(y[i, 0] == 0, as_tuple=True)
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert int(box) == len(rows)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_rotation_matches_its_drawn_angle(seed):
    # A thin horizontal bar comes out along the drawn angle: check its principal axis.
    x = torch.zeros((1, 1, 28, 28), dtype=torch.uint8)
    x[0, 0, 13:15, 4:24] = 255
    aug = DigitsAugment(rotation=60, translate=0, scale=(1, 1), brightness=0, contrast=0, erase_p=0)
    angle = (torch.rand(1, 11, generator=torch.Generator().manual_seed(seed))[0, 0] * 2 - 1) * math.radians(60)
    y = aug(x, torch.Generator().manual_seed(seed))[0, 0]
    rows, cols = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    w = y / y.sum()
    mx, my = (w * cols).sum(), (w * rows).sum()
    cov = torch.tensor(
        [
            [(w * (cols - mx) ** 2).sum(), (w * (cols - mx) * (rows - my)).sum()],
            [(w * (cols - mx) * (rows - my)).sum(), (w * (rows - my) ** 2).sum()],
        ]
    )
    vx, vy = torch.linalg.eigh(cov).eigenvectors[:, -1]
    phi = math.atan2(float(vy), float(vx))  # image coords, y down
    # theta maps output to input by R(angle), so the bar's direction in the output is (cos a, -sin a).
    diff = (phi + float(angle)) % math.pi
    assert min(diff, math.pi - diff) < math.radians(3)


def test_own_affine_grid_equals_torch():
    theta = torch.randn(5, 2, 3)
    ref = F.affine_grid(theta, [5, 1, 13, 17], align_corners=False)
    assert torch.allclose(_affine_grid(theta, 13, 17), ref, atol=1e-5)


def test_build_augmentation_choices_and_errors():
    assert build_augmentation("none") is None
    assert isinstance(build_augmentation("auto", dataset_kind="digits"), DigitsAugment)
    assert build_augmentation("digits", rotation=15).rotation == 15
    with pytest.raises(ConfigError, match=r"--augment auto: needs the dataset's kind"):
        build_augmentation("auto")
    with pytest.raises(ConfigError, match=r"--augment 'mixup': expected one of none, digits, natural, auto"):
        build_augmentation("mixup")
    with pytest.raises(
        ConfigError, match=r"augmentation digits: unknown option 'rotate'; allowed: output_size, rotation"
    ):
        build_augmentation("digits", rotate=10)
    with pytest.raises(ConfigError, match=r"augmentation flip 2: expected a number in \[0, 1\]"):
        build_augmentation("natural", flip=2)
    with pytest.raises(ConfigError, match=r"augmentation scale \(1\.2, 0\.9\): expected \(low, high\)"):
        build_augmentation("digits", scale=(1.2, 0.9))
