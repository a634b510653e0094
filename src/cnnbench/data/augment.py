"""Batched per-sample augmentation on the device holding the batch (GPU or CPU).

Each sample gets its own random parameters, drawn from the ``torch.Generator`` the caller passes
in one ``torch.rand`` call, so a batch's augmentation is a pure function of the generator's seed.
All geometric changes of a sample (rotation, translation, scale; or crop, resize and flip) are
folded into one 2×3 affine matrix and applied with one ``affine_grid`` + ``grid_sample`` for the
whole batch. On this project's 2-core CPU this is 7-10× faster than the same set in kornia
(docs/data.md has the measurement), which also draws from torch's global RNG instead of a
generator that the loader can seed per batch.

Augments return float32 in [0, 1]; normalisation is the loader's last step.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from cnnbench.errors import ConfigError

AUGMENT_KINDS = ("none", "digits", "natural", "auto")


class Augment(Protocol):
    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


def to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) uint8 or float -> float32 in [0, 1] (uint8 is divided by 255)."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).mul_(1.0 / 255.0)
    return x.to(torch.float32)


def _uniform(u: torch.Tensor, low: float, high: float) -> torch.Tensor:
    return u * (high - low) + low


def _affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``F.affine_grid(theta, (B, C, h, w), align_corners=False)`` by broadcasting: (B, h, w, 2).

    Same values (to float rounding) without the batched matmul, which costs 3x more on a CPU for
    small images.
    """
    xs = torch.arange(w, dtype=theta.dtype, device=theta.device).mul_(2.0 / w).add_(1.0 / w - 1.0).view(1, 1, w)
    ys = torch.arange(h, dtype=theta.dtype, device=theta.device).mul_(2.0 / h).add_(1.0 / h - 1.0).view(1, h, 1)
    t = theta.reshape(-1, 6, 1, 1)
    grid = torch.empty((theta.shape[0], h, w, 2), dtype=theta.dtype, device=theta.device)
    torch.add(t[:, 0] * xs, t[:, 1] * ys, out=grid[..., 0]).add_(t[:, 2])  # x_in = a x + b y + tx
    torch.add(t[:, 3] * xs, t[:, 4] * ys, out=grid[..., 1]).add_(t[:, 5])  # y_in = c x + d y + ty
    return grid


def _blend_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Per-sample contrast: blend with the sample's mean gray level. factor: (B, 1, 1, 1)."""
    if x.shape[1] == 3:
        gray = (x[:, 0] * 0.299 + x[:, 1] * 0.587 + x[:, 2] * 0.114).mean(dim=(1, 2))
    else:
        gray = x.mean(dim=(1, 2, 3))
    m = gray.view(-1, 1, 1, 1)
    return (x - m).mul_(factor).add_(m)


@dataclass
class BatchAugment:
    """Base of the built-in augments: ``aug(x, generator, output_size=None) -> float32 [0, 1]``."""

    output_size: int | None = None  # output side in pixels; None = the input's

    def __call__(
        self, x: torch.Tensor, generator: torch.Generator, output_size: int | None = None
    ) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"kind": type(self).__name__, **dataclasses.asdict(self)}


@dataclass
class DigitsAugment(BatchAugment):
    """The MNIST study's set: rotation, translation, scale, brightness, contrast, random erasing."""

    rotation: float = 10.0  # degrees, uniform in ±rotation
    translate: float = 0.1  # fraction of the side, uniform in ±translate per axis
    scale: tuple[float, float] = (0.9, 1.1)  # zoom factor range
    brightness: float = 0.2  # multiply by a factor in [1 - b, 1 + b]
    contrast: float = 0.2  # blend with the mean by a factor in [1 - c, 1 + c]
    erase_p: float = 0.25  # probability of erasing one rectangle
    erase_scale: tuple[float, float] = (0.02, 0.12)  # rectangle area, fraction of the image
    erase_ratio: tuple[float, float] = (0.3, 3.3)  # rectangle aspect ratio range
    erase_value: float = 0.0  # fill value in [0, 1] (0 = the digits' background)

    def __call__(self, x: torch.Tensor, generator: torch.Generator, output_size: int | None = None) -> torch.Tensor:
        x = to_unit_float(x)  # (B, C, H, W)
        b, c, h, w = x.shape
        side = output_size or self.output_size
        oh, ow = (side, side) if side else (h, w)
        u = torch.rand(b, 11, generator=generator, device=x.device)  # every random number of the batch
        angle = _uniform(u[:, 0], -1, 1) * math.radians(self.rotation)
        inv_s = 1.0 / _uniform(u[:, 1], *self.scale)
        cos, sin = torch.cos(angle) * inv_s, torch.sin(angle) * inv_s
        tx = _uniform(u[:, 2], -2, 2) * self.translate  # normalised coords span 2 per side
        ty = _uniform(u[:, 3], -2, 2) * self.translate
        # theta maps output to input coordinates: (B, 2, 3)
        theta = torch.stack((torch.stack((cos, -sin, tx), 1), torch.stack((sin, cos, ty), 1)), 1)
        grid = _affine_grid(theta, oh, ow)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.brightness:
            x.mul_(_uniform(u[:, 4], 1 - self.brightness, 1 + self.brightness).view(b, 1, 1, 1))
        if self.contrast:
            x = _blend_contrast(x, _uniform(u[:, 5], 1 - self.contrast, 1 + self.contrast).view(b, 1, 1, 1))
        if self.erase_p > 0:
            x = _erase(x, u[:, 6:11], self.erase_p, self.erase_scale, self.erase_ratio, self.erase_value)
        return x.clamp_(0.0, 1.0)


def _erase(
    x: torch.Tensor,
    u: torch.Tensor,
    p: float,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    value: float,
) -> torch.Tensor:
    """Random erasing, one rectangle per chosen sample, as a broadcast mask (no per-sample loop). u: (B, 5)."""
    b, _, h, w = x.shape
    area = _uniform(u[:, 0], *scale) * (h * w)
    log_r = _uniform(u[:, 1], math.log(ratio[0]), math.log(ratio[1]))
    eh = torch.sqrt(area * torch.exp(log_r)).clamp_(max=h)
    ew = torch.sqrt(area / torch.exp(log_r)).clamp_(max=w)
    top = u[:, 2] * (h - eh)
    left = u[:, 3] * (w - ew)
    on = u[:, 4] < p
    rows = torch.arange(h, device=x.device, dtype=x.dtype).add_(0.5)
    cols = torch.arange(w, device=x.device, dtype=x.dtype).add_(0.5)
    # (B, H) and (B, W) masks first; only their product is image-sized.
    inside_r = (rows >= top[:, None]) & (rows < (top + eh)[:, None]) & on[:, None]
    inside_c = (cols >= left[:, None]) & (cols < (left + ew)[:, None])
    mask = inside_r[:, None, :, None] & inside_c[:, None, None, :]  # (B, 1, H, W)
    return x.masked_fill_(mask, value)


@dataclass
class NaturalAugment(BatchAugment):
    """Photos: random-resized-crop, horizontal flip, colour jitter (brightness, contrast, saturation)."""

    scale: tuple[float, float] | None = None  # crop area range; None = (0.08, 1) above 64 px, (0.35, 1) at ≤ 64 px
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # crop aspect ratio range
    flip: float = 0.5  # probability of a horizontal flip
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4

    def __call__(self, x: torch.Tensor, generator: torch.Generator, output_size: int | None = None) -> torch.Tensor:
        b, c, h, w = x.shape  # (B, C, H, W)
        side = output_size or self.output_size
        oh, ow = (side, side) if side else (h, w)
        scale = self.scale or ((0.35, 1.0) if max(oh, ow) <= 64 else (0.08, 1.0))
        u = torch.rand(b, 8, generator=generator, device=x.device)
        area = _uniform(u[:, 0], *scale)
        aspect = torch.exp(_uniform(u[:, 1], math.log(self.ratio[0]), math.log(self.ratio[1])))
        cw = torch.sqrt(area * aspect).clamp_(max=1.0)  # crop width / image width
        ch = torch.sqrt(area / aspect).clamp_(max=1.0)
        flips = u[:, 4] < self.flip
        if x.device.type == "cpu" and x.dtype == torch.uint8:
            x = _crops_on_cpu(x, cw, ch, u[:, 2], u[:, 3], flips, (oh, ow))
        else:
            x = to_unit_float(x)
            cx = (u[:, 2] * (1 - cw) + cw / 2) * 2 - 1  # crop centre in normalised coords
            cy = (u[:, 3] * (1 - ch) + ch / 2) * 2 - 1
            sx = torch.where(flips, -cw, cw)  # a flip is a negative x scale
            zero = torch.zeros_like(cw)
            theta = torch.stack((torch.stack((sx, zero, cx), 1), torch.stack((zero, ch, cy), 1)), 1)  # (B, 2, 3)
            grid = _affine_grid(theta, oh, ow)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if self.brightness:
            x.mul_(_uniform(u[:, 5], 1 - self.brightness, 1 + self.brightness).view(b, 1, 1, 1))
        if self.contrast:
            x = _blend_contrast(x, _uniform(u[:, 6], 1 - self.contrast, 1 + self.contrast).view(b, 1, 1, 1))
        if self.saturation and c == 3:
            gray = x[:, 0:1] * 0.299 + x[:, 1:2] * 0.587 + x[:, 2:3] * 0.114  # (B, 1, H, W)
            s = _uniform(u[:, 7], 1 - self.saturation, 1 + self.saturation).view(b, 1, 1, 1)
            x = (x - gray).mul_(s).add_(gray)
        return x.clamp_(0.0, 1.0)


def _crops_on_cpu(
    x: torch.Tensor,
    cw: torch.Tensor,
    ch: torch.Tensor,
    ux: torch.Tensor,
    uy: torch.Tensor,
    flips: torch.Tensor,
    size: tuple[int, int],
) -> torch.Tensor:
    """The same random-resized-crops and flips as the batched path, one uint8 image at a time.

    On a CPU, torchvision's uint8 antialiased resize (vectorised) beats one batched float
    ``grid_sample``: 0.35 vs 3.6 ms per 256→224 image on one core of this project's machine. The
    crop boxes come from the same random numbers, so the distribution of crops is the same.
    Returns float32 in [0, 1], (B, C, oh, ow).
    """
    import torchvision.transforms.v2.functional as TF

    b, c, h, w = x.shape
    out = torch.empty((b, c, *size), dtype=torch.uint8)
    boxes = torch.stack((cw * w, ch * h, ux * (1 - cw) * w, uy * (1 - ch) * h), 1).tolist()
    for i, (bw, bh, left, top) in enumerate(boxes):
        bw, bh = max(1, round(bw)), max(1, round(bh))
        top, left = min(round(top), h - bh), min(round(left), w - bw)
        crop = TF.resized_crop(x[i], top, left, bh, bw, list(size), antialias=True)
        out[i] = TF.horizontal_flip(crop) if flips[i] else crop
    return to_unit_float(out)


def training_augment_kind(augment: str, dataset_kind: str) -> str:
    """What a training run's ``--augment`` means: ``auto`` is ``natural`` for photos and ``none`` for digits.

    Digits train without augmentation unless asked (``--augment digits``, the MNIST study's): at 2-15
    epochs on the 3,600 bundled digits the seed's augmentation under-fits LeNet-5 by 2-4 points
    (docs/training.md); photos keep crop, flip and colour jitter, which they need at any length.
    """
    if augment != "auto":
        return augment
    return "natural" if dataset_kind == "natural" else "none"


def build_augmentation(kind: str, output_size: int | None = None, **overrides: Any) -> BatchAugment | None:
    """The augmentation for ``--augment KIND``.

    Args:
        kind: "none", "digits", "natural", or "auto" (needs ``dataset_kind="digits"|"natural"`` among
            the overrides, usually ``Dataset.kind``).
        output_size: output side in pixels; None keeps the input size.
        **overrides: fields of ``DigitsAugment`` / ``NaturalAugment`` (e.g. ``rotation=15``).

    Raises:
        ConfigError: naming ``--augment`` or the unknown/invalid override.
    """
    dataset_kind = overrides.pop("dataset_kind", None)
    if kind == "auto":
        if dataset_kind not in ("digits", "natural"):
            raise ConfigError(
                "--augment auto: needs the dataset's kind (dataset_kind='digits' or 'natural'); "
                "pass Dataset.kind, or choose --augment digits|natural|none"
            )
        kind = dataset_kind
    if kind not in AUGMENT_KINDS:
        raise ConfigError(f"--augment {kind!r}: expected one of {', '.join(AUGMENT_KINDS)}")
    if kind == "none":
        return None
    cls = DigitsAugment if kind == "digits" else NaturalAugment
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(overrides) - set(names))
    if unknown:
        raise ConfigError(f"augmentation {kind}: unknown option {unknown[0]!r}; allowed: {', '.join(names)}")
    aug = cls(output_size=output_size, **overrides)
    _validate(aug)
    return aug


def _validate(aug: BatchAugment) -> None:
    for f in dataclasses.fields(aug):
        v = getattr(aug, f.name)
        if v is None:
            continue
        if f.name == "output_size":
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"augmentation output_size {v!r}: expected a whole number ≥ 1")
        elif isinstance(v, tuple):
            if len(v) != 2 or not (0 <= v[0] <= v[1]):
                raise ConfigError(f"augmentation {f.name} {v!r}: expected (low, high) with 0 ≤ low ≤ high")
        elif isinstance(v, int | float) and v < 0:
            raise ConfigError(f"augmentation {f.name} {v!r}: expected a number ≥ 0")
    for name in ("erase_p", "flip", "brightness", "contrast", "saturation", "erase_value"):
        v = getattr(aug, name, None)
        if v is not None and v > 1:
            raise ConfigError(f"augmentation {name} {v!r}: expected a number in [0, 1]")
