"""The baseline every speed goal is measured against: training the way both reference studies did.

A torchvision-style ``Dataset`` that builds a PIL image per sample, per-sample ``transforms`` with
the MNIST study's augmentation (RandomAffine rotation/translation/scale, ColorJitter brightness/
contrast, ToTensor, RandomErasing, Normalize), a ``DataLoader`` with worker processes, batch 64,
Adam, fp32, one ``.item()`` per step for the running loss. Shared by the benchmark scripts.
"""

from __future__ import annotations

import time

import numpy as np
import torch

AUG = {
    "rotation": 10.0,
    "translate": 0.1,
    "scale": (0.9, 1.1),
    "brightness": 0.2,
    "contrast": 0.2,
    "erase_p": 0.25,
    "erase_scale": (0.02, 0.12),
    "erase_ratio": (0.3, 3.3),
}


class PilDataset(torch.utils.data.Dataset):
    """What torchvision.datasets.FashionMNIST does per sample: array -> PIL image -> transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i, 0], mode="L")), int(self.labels[i])


def pil_transform(mean: float, std: float):
    from torchvision import transforms as T

    return T.Compose(
        [
            T.RandomAffine(degrees=AUG["rotation"], translate=(AUG["translate"],) * 2, scale=AUG["scale"]),
            T.ColorJitter(brightness=AUG["brightness"], contrast=AUG["contrast"]),
            T.ToTensor(),
            T.RandomErasing(p=AUG["erase_p"], scale=AUG["erase_scale"], ratio=AUG["erase_ratio"], value=0),
            T.Normalize((mean,), (std,)),
        ]
    )


def naive_loader(ds, batch_size: int = 64, workers: int = 4, device: torch.device | None = None):
    data = PilDataset(ds.train.images, ds.train.labels, pil_transform(ds.mean[0], ds.std[0]))
    return torch.utils.data.DataLoader(
        data,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=device is not None and device.type == "cuda",
        persistent_workers=workers > 0,
    )


def naive_epoch_seconds(
    model: torch.nn.Module,
    ds,
    device: torch.device,
    *,
    batch_size: int = 64,
    workers: int = 4,
    max_batches: int | None = None,
    lr: float = 1e-3,
) -> dict:
    """Seconds for one training epoch of the naive pipeline (extrapolated from ``max_batches``).

    The first 5 batches (worker start-up, cuDNN autotuning) are run but not timed; the rate of the
    timed batches is scaled to the full epoch, and the result says so.
    """
    model = model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loader = naive_loader(ds, batch_size, workers, device)
    total = len(loader)
    warmup = min(5, total - 1)
    timed = 0
    start = None
    running = 0.0
    for i, (x, y) in enumerate(loader):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        running += loss.item()  # the studies' per-step host sync for the progress display
        if i >= warmup:
            timed += 1
        if max_batches and timed >= max_batches:
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    return {
        "epoch_s": seconds / timed * total,
        "timed_batches": timed,
        "batches_per_epoch": total,
        "extrapolated": timed < total,
        "batch_size": batch_size,
        "workers": workers,
    }
