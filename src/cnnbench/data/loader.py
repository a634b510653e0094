"""``DeviceLoader``: batches cut from uint8 images that already sit on the device.

The whole split is moved to the device once as uint8 (4× smaller than float32) when it fits in
half the free GPU memory; otherwise it is held in pinned host memory and each batch is gathered
there and copied asynchronously one batch ahead. On the CPU the split simply stays in memory.
Per batch, only an index gather, the batched augmentation and the normalisation run: no worker
processes, no per-sample Python.

Randomness is a pure function of ``(seed, epoch, batch index, rank)``: the epoch's permutation
comes from a generator seeded with ``(seed, epoch)`` (the same on every rank, so shards are
disjoint), and each batch's augmentation from a generator re-seeded with ``(seed, epoch, k, rank)``.
``batches(start=k)`` therefore yields exactly the batches k, k+1, ... of an uninterrupted epoch.

Sharding (``world_size`` W > 1): the epoch's order is cut into global steps of W × B samples and
rank r takes every W-th sample of a step, so ranks are disjoint and all ranks run the same number
of steps. Without ``drop_last`` every sample is used exactly once per epoch: the last step is split
as evenly as possible (sizes differ by at most one), and when fewer than W samples would be left
for it they are folded into the step before (some ranks then see B + 1 samples in it). With
``drop_last`` only full steps are used; the remainder (< W × B) changes every epoch.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from cnnbench.data.augment import BatchAugment, to_unit_float
from cnnbench.data.types import ArraySplit
from cnnbench.errors import ConfigError, DataError

_MASK64 = (1 << 64) - 1
# Output elements per batch (B*C*H*W) up to which CPU transforms run on one thread: a batch of 32
# RGB images at 224 (4.8M) is still faster on one thread of a busy 2-core machine (27 ms vs. 60-430 ms).
_SINGLE_THREAD_BELOW = 1 << 23
EVAL_CROP = 0.875  # natural images at eval: resize to output/0.875, centre-crop output (256 -> 224)


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(*values: int) -> int:
    """A 63-bit seed that depends on every value (order matters); cheap enough to call per batch."""
    h = 0x6A09E667F3BCC909
    for v in values:
        h = _splitmix64(h ^ (int(v) & _MASK64))
    return h & ((1 << 63) - 1)


_PERM, _AUG = 1, 2


class Normalize(NamedTuple):
    """Per-channel mean and std in [0, 1] units (a Dataset's ``mean``, ``std``): x_norm = (x - mean) / std."""

    mean: Sequence[float]
    std: Sequence[float]


class Shard(NamedTuple):
    """This process's part of every step under DDP: rank ``rank`` of ``world_size``."""

    rank: int = 0
    world_size: int = 1


class DeviceLoader:
    """Iterate (x, y) batches of ``split`` on ``device``: x float32 (B, C, H', W') normalised, y int64 (B,).

    Args:
        split: images (N, C, H, W) uint8 and labels (N,).
        batch_size: samples per batch on this rank (settable between epochs).
        device: where batches are produced.
        train: shuffle and augment (True), or keep order with no augmentation (False).
        normalize: per-channel mean and std; normalisation is the last step.
        augment: a callable ``(x, generator) -> float [0, 1]``; the built-ins also take ``output_size``.
        seed: run seed; with the epoch, batch index and rank it fixes order and augmentation.
        output_size: side of the produced images; None keeps the stored size.
        drop_last: skip the last, partial step.
        shard: this process's shard under DDP.

    Attributes:
        kind: "natural" (eval resize + centre crop) or "digits" (eval plain resize): natural for 3 channels.
        placement: where the split's images sit: "device", "pinned" (host) or "host".
    """

    DEVICE_FRACTION = 0.5  # keep the split on a GPU when it needs at most this fraction of its free memory

    def __init__(
        self,
        split: ArraySplit,
        *,
        batch_size: int,
        device: torch.device | str,
        train: bool,
        normalize: Normalize | tuple[Sequence[float], Sequence[float]],
        augment=None,
        seed: int = 0,
        output_size: int | None = None,
        drop_last: bool = False,
        shard: Shard | tuple[int, int] = Shard(),
    ) -> None:
        (mean, std), (rank, world_size) = normalize, shard
        if not isinstance(world_size, int) or world_size < 1 or not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ConfigError(f"DeviceLoader rank {rank!r} / world_size {world_size!r}: expected 0 ≤ rank < world_size")
        n, c = len(split), split.images.shape[1]
        if 0 < n < world_size:
            raise DataError(f"a split of {n} samples cannot be sharded over {world_size} ranks (need ≥ 1 per rank)")
        if len(mean) != c or len(std) != c:
            raise ConfigError(f"mean/std have {len(mean)}/{len(std)} values; the images have {c} channels")
        if output_size is not None and (not isinstance(output_size, int) or output_size < 1):
            raise ConfigError(f"--image-size {output_size!r}: expected a whole number ≥ 1")
        self.device = torch.device(device)
        self.train = bool(train)
        self.augment = augment
        self.seed = int(seed)
        self.output_size = output_size
        self.drop_last = bool(drop_last)
        self.rank, self.world_size = rank, world_size
        self.kind = "natural" if c == 3 else "digits"
        self.epoch = 0
        self.num_total = n
        self.batch_size = batch_size  # validated by the setter
        self._shape = tuple(split.images.shape[1:])
        # (1, C, 1, 1): x_norm = x * scale + shift, with x in [0, 1]
        std_t = torch.tensor([float(s) for s in std], dtype=torch.float32)
        mean_t = torch.tensor([float(m) for m in mean], dtype=torch.float32)
        self._scale = (1.0 / std_t).view(1, c, 1, 1).to(self.device)
        self._shift = (-mean_t / std_t).view(1, c, 1, 1).to(self.device)
        self._labels = torch.from_numpy(np.ascontiguousarray(split.labels, dtype=np.int64)).to(self.device)
        self._images, self.placement = self._place(split.images, self.DEVICE_FRACTION)
        self._gen = torch.Generator(device=self.device)
        self._perm_cache: tuple[int, torch.Tensor] | None = None

    def _place(self, images: np.ndarray, fraction: float) -> tuple[torch.Tensor, str]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a read-only memmap: torch warns, but we never write to it
            host = torch.from_numpy(np.ascontiguousarray(images))
        if self.device.type != "cuda":
            return host.to(self.device), "host"
        free, _ = torch.cuda.mem_get_info(self.device)
        if host.numel() <= fraction * free:
            return host.to(self.device), "device"
        return host.pin_memory(), "pinned"

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"--batch-size {value!r}: expected a whole number ≥ 1")
        self._batch_size = value

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order and augmentation the next iteration produces."""
        self.epoch = int(epoch)

    def _steps(self) -> tuple[int, list[int]]:
        """(number of steps, global start offset of each step plus the end) for the current batch size."""
        n, g = self.num_total, self._batch_size * self.world_size
        if n == 0:  # an empty split (e.g. --val-fraction 0): no batches
            return 0, [0]
        if self.drop_last:
            steps = n // g
            return steps, [k * g for k in range(steps)] + [steps * g]
        steps = max(1, math.ceil(n / g))
        last = n - (steps - 1) * g
        if steps > 1 and last < self.world_size:
            steps -= 1  # too few for every rank: fold the remainder into the step before
        return steps, [k * g for k in range(steps)] + [n]

    def __len__(self) -> int:
        """Batches per epoch on this rank (the same on every rank)."""
        return self._steps()[0]

    @property
    def num_samples(self) -> int:
        """Samples this rank sees per epoch."""
        steps, bounds = self._steps()
        return sum(len(range(bounds[k] + self.rank, bounds[k + 1], self.world_size)) for k in range(steps))

    def sample_order(self) -> np.ndarray:
        """(num_samples,) int64: the split index of each sample this rank's batches hold, in the order a
        full pass of the current epoch yields them (for an eval loader: its shard of 0..N-1, ascending)."""
        steps, bounds = self._steps()
        order = self._order().cpu().numpy()
        shards = [order[bounds[k] + self.rank : bounds[k + 1] : self.world_size] for k in range(steps)]
        return np.concatenate(shards).astype(np.int64) if shards else np.zeros(0, dtype=np.int64)

    def _order(self) -> torch.Tensor:
        """This epoch's order of all N samples (identical on every rank), on the images' device."""
        if self._perm_cache is not None and self._perm_cache[0] == self.epoch:
            return self._perm_cache[1]
        if self.train:
            g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, _PERM))
            order = torch.randperm(self.num_total, generator=g)
        else:
            order = torch.arange(self.num_total)
        order = order.to(self._images.device)
        self._perm_cache = (self.epoch, order)
        return order

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches(0)

    def batches(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield batches ``start``, ``start + 1``, ... of the current epoch (identical to a full pass's)."""
        steps, bounds = self._steps()
        if not 0 <= start <= steps:
            raise ConfigError(f"batches(start={start}): expected 0 ≤ start ≤ {steps} (batches per epoch)")
        order = self._order()
        if self.placement == "pinned":
            yield from self._pinned_batches(order, bounds, start, steps)
            return
        for k in range(start, steps):
            idx = order[bounds[k] + self.rank : bounds[k + 1] : self.world_size]
            with self._threads(len(idx)):
                x = self._images.index_select(0, idx)  # (B, C, H, W) uint8 on device
                y = self._labels.index_select(0, idx.to(self.device))
                x = self._transform(x, k)
            yield x, y

    def _pinned_batches(
        self, order: torch.Tensor, bounds: list[int], start: int, steps: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Gather in pinned memory and copy one batch ahead, so the copy overlaps the previous step."""
        b_max = self._batch_size + 1
        buffers = [torch.empty((b_max, *self._shape), dtype=torch.uint8).pin_memory() for _ in range(2)]
        events: list[torch.cuda.Event | None] = [None, None]

        def fetch(k: int) -> tuple[torch.Tensor, torch.Tensor]:
            slot = k % 2
            if events[slot] is not None:
                events[slot].synchronize()  # the copy that last read this buffer is done
            idx = order[bounds[k] + self.rank : bounds[k + 1] : self.world_size]
            buf = buffers[slot][: len(idx)]
            torch.index_select(self._images, 0, idx, out=buf)
            x = buf.to(self.device, non_blocking=True)
            events[slot] = torch.cuda.Event()
            events[slot].record()
            return x, self._labels.index_select(0, idx.to(self.device, non_blocking=True))

        nxt = fetch(start) if start < steps else None
        for k in range(start, steps):
            x, y = nxt
            nxt = fetch(k + 1) if k + 1 < steps else None
            yield self._transform(x, k), y

    def _threads(self, batch: int) -> contextlib.AbstractContextManager:
        """One thread for a small CPU batch (see ``_single_thread``), else no change."""
        side = self.output_size or max(self._shape[-2:])
        if self.device.type == "cpu" and batch * self._shape[0] * side * side <= _SINGLE_THREAD_BELOW:
            return _single_thread()
        return contextlib.nullcontext()

    def _transform(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """uint8 (B, C, H, W) -> augmented (train) or resized (eval) float, normalised last."""
        if self.train and self.augment is not None:
            self._gen.manual_seed(mix_seed(self.seed, self.epoch, k, self.rank, _AUG))
            if isinstance(self.augment, BatchAugment):
                x = self.augment(x, self._gen, output_size=self.output_size)
            else:
                x = to_unit_float(self.augment(x, self._gen))
                if self.output_size and x.shape[-1] != self.output_size:
                    x = _resize(x, self.output_size)
        else:
            x = self._eval_view(x)
        return x.mul_(self._scale).add_(self._shift)

    def _eval_view(self, x: torch.Tensor) -> torch.Tensor:
        out = self.output_size
        h, w = x.shape[-2:]
        if out is None or (out == h and out == w):
            return to_unit_float(x)
        if self.kind == "natural":
            # Resize to out/0.875 then centre-crop out: here as a centre crop of the stored image
            # (exact slicing when the stored side is already out/0.875, e.g. 256 -> 224).
            side = min(h, w, round(min(h, w) * out / round(out / EVAL_CROP)))
            top, left = (h - side) // 2, (w - side) // 2
            x = x[:, :, top : top + side, left : left + side]
            if side == out:
                return to_unit_float(x)
        return _resize(to_unit_float(x), out)


@contextlib.contextmanager
def _single_thread() -> Iterator[None]:
    """Run small CPU ops on one thread: OpenMP fork/join costs more than a 28×28 batch's work, and far
    more when another process holds a core (measured 1.7 ms vs 4-80 ms per MNIST batch on 2 shared cores)."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _resize(x: torch.Tensor, out: int) -> torch.Tensor:
    antialias = out < x.shape[-1]
    return F.interpolate(x, size=(out, out), mode="bilinear", align_corners=False, antialias=antialias)
