"""What to load and how to split it: ``DataConfig``, validated before any file is read."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cnnbench.errors import ConfigError
from cnnbench.utils.config import check_choice, check_range, from_mapping

DATASET_NAMES = ("mnist", "fashion-mnist", "cifar10", "mnist-sample", "caltech256", "imagefolder:PATH", "synthetic")
COLOR_MODES = ("rgb", "gray")
_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
    "caltech-256": "caltech256",
    "caltech_256": "caltech256",
    "mnist_sample": "mnist-sample",
}


def canonical_name(name: str) -> str:
    """``Fashion_MNIST`` -> ``fashion-mnist``; ``imagefolder:PATH`` keeps its path as written.

    Raises:
        ConfigError: naming ``--data`` and the known names.
    """
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"--data {name!r}: expected a dataset name, one of {', '.join(DATASET_NAMES)}")
    name = name.strip()
    head, sep, path = name.partition(":")
    if sep and head.lower() in ("imagefolder", "folder"):
        if not path.strip():
            raise ConfigError("--data imagefolder: expected imagefolder:PATH, e.g. imagefolder:~/data/flowers")
        return f"imagefolder:{path.strip()}"
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key not in DATASET_NAMES or key == "imagefolder:PATH":
        raise ConfigError(
            f"--data {name!r}: unknown dataset{did_you_mean(name)}; expected one of {', '.join(DATASET_NAMES)}"
        )
    return key


def did_you_mean(name: str) -> str:
    """``" (did you mean fashion-mnist?)"`` for a near miss of a dataset name or alias, else ``""``."""
    import difflib

    candidates = [n for n in DATASET_NAMES if n != "imagefolder:PATH"] + list(_ALIASES)
    close = difflib.get_close_matches(name.strip().lower(), candidates, n=1, cutoff=0.75)
    return f" (did you mean {_ALIASES.get(close[0], close[0])}?)" if close else ""


@dataclass
class DataConfig:
    """Which dataset, where it lives and how it is split. Saved as ``data_config`` in every run's config.yaml."""

    name: str = "mnist-sample"
    data_dir: str | None = None  # searched first; for imagefolder:PATH the PATH is the root
    val_fraction: float = 0.1  # stratified, seeded slice of train used for early stopping
    split_seed: int = 0  # seeds the val slice and the caltech/imagefolder train/test split
    image_size: int | None = None  # natural images: decode-once cache side (square, pixels); None = 256
    per_class: int = 60  # caltech256: training images per class (the protocol uses 15/30/45/60)
    split_ratio: float | None = None  # caltech256/imagefolder: fraction of each class for train instead of per_class
    include_clutter: bool = False  # caltech256: keep the 257.clutter background class
    strict: bool = False  # --strict-data: any unreadable image is an error instead of a listed skip
    max_skip_fraction: float = 0.05  # more unreadable images than this fraction of a folder: hard error
    download: bool = True  # fetch from the published mirrors when not found locally
    download_timeout: float = 10.0  # seconds per connection attempt; offline must fail fast
    max_train_samples: int | None = None  # keep a stratified subset of train (quick studies)
    max_val_samples: int | None = None  # evaluate on a stratified subset of val (quick studies)
    max_test_samples: int | None = None  # test on a stratified subset of test (stated in the notes)
    color_mode: str = "rgb"  # caltech256/imagefolder: "rgb" (3 channels) or "gray" (1 channel)
    decode_workers: int | None = None  # processes for the decode-once pass; None = all cores (at most 16)
    cache_dir: str | None = None  # decode-once cache and split lists; None = $CNNBENCH_CACHE or ~/.cache/cnnbench/cache
    synthetic_train: int = 2000  # synthetic: training images (before the val slice)
    synthetic_test: int = 500  # synthetic: test images
    synthetic_size: int = 28  # synthetic: image side in pixels
    synthetic_channels: int = 1  # synthetic: 1 (digits-like) or 3 (coloured, augmented as natural images)

    def __post_init__(self) -> None:
        self.name = canonical_name(self.name)
        check_range("--val-fraction", self.val_fraction, 0, 1, high_inclusive=False)
        _check_int("--split-seed", self.split_seed, 0)
        if self.image_size is not None:
            _check_int("--data-image-size", self.image_size, 8)
        _check_int("--per-class", self.per_class, 1)
        if self.split_ratio is not None:
            check_range("--split-ratio", self.split_ratio, 0, 1, low_inclusive=False, high_inclusive=False)
        check_range("--max-skip-fraction", self.max_skip_fraction, 0, 1)
        check_range("--download-timeout", self.download_timeout, 0, low_inclusive=False)
        for flag, value in (
            ("--max-train-samples", self.max_train_samples),
            ("--max-val-samples", self.max_val_samples),
            ("--max-test-samples", self.max_test_samples),
        ):
            if value is not None:
                _check_int(flag, value, 1)
        check_choice("--color-mode", self.color_mode, COLOR_MODES)
        if self.decode_workers is not None:
            _check_int("--decode-workers", self.decode_workers, 1)
        _check_int("--synthetic-train", self.synthetic_train, 20)
        _check_int("--synthetic-test", self.synthetic_test, 10)
        _check_int("--synthetic-size", self.synthetic_size, 16)
        check_choice("--synthetic-channels", self.synthetic_channels, (1, 3))

    @property
    def folder_path(self) -> str | None:
        """The PATH of ``imagefolder:PATH``, else None."""
        return self.name.partition(":")[2] if self.name.startswith("imagefolder:") else None

    @property
    def base_name(self) -> str:
        """``imagefolder`` for ``imagefolder:PATH``, else the name itself."""
        return "imagefolder" if self.folder_path is not None else self.name

    @classmethod
    def from_flags(cls, flags: Mapping[str, Any], **fields: Any) -> DataConfig:
        """A DataConfig from flag values keyed as in ``RUN_DATA_FLAGS`` (a ``TrainConfig`` dict or parsed
        ``cnnbench data`` flags; missing ones keep their defaults); ``fields`` set the other fields."""
        values = {field: flags[flag] for flag, field in RUN_DATA_FLAGS.items() if flag in flags}
        return cls(**values, **fields)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "data_config") -> DataConfig:
        return from_mapping(cls, values, where)

    def replace(self, **changes: Any) -> DataConfig:
        return dataclasses.replace(self, **changes)


# The data options of a training run, by flag name (the ``TrainConfig`` field and config.yaml key) →
# DataConfig field. This table is the one place a data flag is defined: ``TrainConfig`` takes these
# fields' defaults from DataConfig (``data_default``) and leaves their checks to it, the engine and
# ``cnnbench data`` build their DataConfig through ``DataConfig.from_flags``, and both command lines
# take the flags' help from ``DATA_FLAG_HELP``. Runs keep flat flags in config.yaml (the file format
# and ``cnnbench.fit``'s keywords are the flags) plus the resolved DataConfig as ``data_config``.
RUN_DATA_FLAGS: dict[str, str] = {
    "data": "name",
    "data_dir": "data_dir",
    "val_fraction": "val_fraction",
    "data_image_size": "image_size",
    "per_class": "per_class",
    "split_ratio": "split_ratio",
    "include_clutter": "include_clutter",
    "strict_data": "strict",
    "max_skip_fraction": "max_skip_fraction",
    "max_train_samples": "max_train_samples",
    "max_val_samples": "max_val_samples",
    "max_test_samples": "max_test_samples",
}
DATA_FLAG_HELP: dict[str, str] = {
    "data": "dataset: " + ", ".join(DATASET_NAMES),
    "data_dir": "directory holding the dataset files (searched first)",
    "val_fraction": "fraction of train held out (stratified, seeded) for validation",
    "data_image_size": "natural images: side of the decode-once cache in pixels (default 256)",
    "per_class": "caltech256: training images per class (15, 30, 45, 60)",
    "split_ratio": "caltech256/imagefolder: train fraction of each class instead of --per-class (e.g. 0.8)",
    "include_clutter": "caltech256: keep the 257.clutter background class",
    "strict_data": "treat any unreadable image as an error instead of a listed skip",
    "max_skip_fraction": "stop with an error when more than this fraction of images is unreadable",
    "max_train_samples": "train on a stratified subset of this many images",
    "max_val_samples": "validate on a stratified subset of this many images",
    "max_test_samples": "test on a stratified subset of this many images (stated in the run's notes)",
}


def data_default(flag: str) -> Any:
    """The default of a run's data flag (``val_fraction``), as its DataConfig field defines it."""
    return DataConfig.__dataclass_fields__[RUN_DATA_FLAGS[flag]].default


def _check_int(flag: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{flag} {value!r}: expected a whole number ≥ {low}")
