"""The augmentation preview (the MNIST study's Figure 32): training images next to augmented draws of each.

``cnnbench run`` writes ``augmented.npz`` into the study directory from its first run's augmentation
and seed; the report draws it (``cnnbench.report.sample_grid.draw_augmentation_grid``), and
``cnnbench data samples NAME --augmented`` draws the same figure directly. Reading the file needs
numpy only (the report never imports torch); making a preview needs torch.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnbench.errors import CnnbenchError

AUGMENTED_FILE = "augmented.npz"  # in a study directory, next to samples.npz
FORMAT = "cnnbench-augmented-v1"
PREVIEW_DRAWS = 4  # augmented draws per image


def preview_rows(side: int) -> int:
    """Images in a preview: one per class for the first 10 classes; 6 above 64 px, to keep the file small."""
    return 10 if side <= 64 else 6


@dataclass
class AugmentationPreview:
    """A few training images and ``D`` draws of each through one run's augmentation."""

    originals: np.ndarray  # (R, C, H, W) uint8: the training images as stored
    augmented: np.ndarray  # (R, D, C, h, w) uint8: h, w the run's input size
    labels: np.ndarray  # (R,) class index of each image
    classes: list[str]  # every class name of the dataset
    dataset: str
    augment: dict[str, Any]  # BatchAugment.describe(): the kind and every parameter
    seed: int  # the run seed the draws come from
    # False: no run of the study augments; the preview shows what the dataset's default augmentation
    # (--augment auto) would do, for reference (the seed's Figure 32 exists in every report)
    used: bool = True

    @property
    def rows(self) -> int:
        return int(self.augmented.shape[0])

    @property
    def draws(self) -> int:
        return int(self.augmented.shape[1])

    def describe(self) -> str:
        """One line: the augmentation and its parameters, e.g. ``DigitsAugment: rotation 10, translate 0.1, ...``."""
        params = ", ".join(
            f"{k} {_short(v)}" for k, v in self.augment.items() if k not in ("kind", "output_size") and v is not None
        )
        return f"{self.augment.get('kind', '?')}: {params}" if params else str(self.augment.get("kind", "?"))

    def save(self, path: str | Path) -> Path:
        from cnnbench.utils.io import atomic_write_bytes

        buf = io.BytesIO()
        np.savez_compressed(
            buf,
            format=np.array(FORMAT),
            originals=self.originals,
            augmented=self.augmented,
            labels=self.labels,
            classes=np.array(self.classes),
            dataset=np.array(self.dataset),
            augment=np.array(json.dumps(self.augment)),
            seed=np.array(self.seed),
            used=np.array(self.used),
        )
        atomic_write_bytes(Path(path), buf.getvalue())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> AugmentationPreview:
        """Raises CnnbenchError naming the file when it is not a preview of this format."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != FORMAT:
                    raise ValueError(f"format {str(data['format'])!r}, expected {FORMAT!r}")
                preview = cls(
                    originals=data["originals"],
                    augmented=data["augmented"],
                    labels=data["labels"],
                    classes=[str(c) for c in data["classes"]],
                    dataset=str(data["dataset"]),
                    augment=json.loads(str(data["augment"])),
                    seed=int(data["seed"]),
                    used=bool(data["used"]) if "used" in data.files else True,
                )
        except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            # a cut or hand-made file: np.load raises BadZipFile (not an OSError) for a damaged archive
            raise CnnbenchError(f"{path}: not a readable augmentation preview ({exc})") from exc
        r = preview.originals.shape[0]
        if preview.augmented.ndim != 5 or preview.augmented.shape[0] != r or preview.labels.shape != (r,):
            raise CnnbenchError(
                f"{path}: originals {preview.originals.shape}, augmented {preview.augmented.shape} and labels "
                f"{preview.labels.shape} do not describe the same images"
            )
        return preview


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list | tuple):
        return "–".join(_short(x) for x in v)
    return str(v)


def preview_augmentation(
    dataset: Any,
    kind: str,
    seed: int,
    *,
    output_size: int | None = None,
    rows: int | None = None,
    draws: int = PREVIEW_DRAWS,
) -> AugmentationPreview | None:
    """Draw a preview with the augmentation a run of ``--augment kind --seed seed`` trains with.

    The images are the first training image of each of the first ``rows`` classes. Draw ``d`` of
    every image uses the generator seed the run's loader gives the first batch of epoch ``d + 1``
    (``mix_seed(seed, d, 0, 0, _AUG)``), so the i-th image shows the transform the i-th sample of
    that batch received. ``kind`` and ``output_size`` resolve as in the trainer: ``auto`` follows
    ``dataset.kind``, ``output_size`` is the run's input size (None: the stored size).

    Args:
        dataset: a ``cnnbench.data.Dataset``.
        rows: images (default ``preview_rows`` of the stored side).

    Returns:
        The preview, or None for ``kind="none"`` (nothing to show).
    """
    import torch

    from cnnbench.data.augment import build_augmentation

    augment = build_augmentation(kind, output_size=output_size, dataset_kind=dataset.kind)
    if augment is None:
        return None
    if draws < 1:
        raise CnnbenchError(f"augmentation preview: draws {draws!r}, expected a whole number ≥ 1")
    images, labels = dataset.train.images, np.asarray(dataset.train.labels)
    rows = rows or preview_rows(int(images.shape[-1]))
    picks = [int(np.flatnonzero(labels == c)[0]) for c in range(len(dataset.classes)) if np.any(labels == c)][:rows]
    if not picks:
        raise CnnbenchError(f"augmentation preview: the train split of {dataset.name} has no images")
    x = torch.from_numpy(np.ascontiguousarray(images[picks]))  # (R, C, H, W) uint8 on the CPU
    return AugmentationPreview(
        originals=np.asarray(images[picks]),
        augmented=_draw(augment, x, int(seed), draws, output_size),  # (R, D, C, h, w)
        labels=labels[picks].astype(np.int64),
        classes=[str(c) for c in dataset.classes],
        dataset=str(dataset.name),
        augment=json.loads(json.dumps(augment.describe())),  # tuples -> lists, as the file stores them
        seed=int(seed),
    )


def _draw(augment: Any, x: Any, seed: int, draws: int, output_size: int | None) -> np.ndarray:
    """(R, D, C, h, w) uint8: ``draws`` augmentations of the images ``x`` (R, C, H, W), draw ``d`` with the
    generator seed of the first batch of epoch ``d + 1``."""
    import torch

    from cnnbench.data.augment import BatchAugment, to_unit_float
    from cnnbench.data.loader import _AUG, mix_seed

    gen = torch.Generator()
    out = []
    for d in range(draws):
        gen.manual_seed(mix_seed(seed, d, 0, 0, _AUG))
        if isinstance(augment, BatchAugment):
            y = augment(x.clone(), gen, output_size=output_size)
        else:  # pragma: no cover - the built-ins are BatchAugments
            y = to_unit_float(augment(x.clone(), gen))
        out.append(y.mul(255.0).round_().clamp_(0, 255).to(torch.uint8))
    return torch.stack(out, 1).numpy()
