"""An image-folder dataset (Caltech-256, ``imagefolder:PATH``): found, decoded once into the cache,
split per class (or by its own train/ and test/ sub-trees), the split lists saved beside the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnbench.data.cache import DecodedImages, decode_folder
from cnnbench.data.catalog import DatasetSpec
from cnnbench.data.config import DataConfig
from cnnbench.data.imagefolder import FolderScan, has_predefined_split, scan_folder
from cnnbench.data.load import (
    DEFAULT_FOLDER_RATIO,
    DEFAULT_NATURAL_SIZE,
    _limit,
    _save,
    _split_note,
    _stats,
)
from cnnbench.data.locate import cache_root, locate
from cnnbench.data.splits import (
    load_split,
    per_class_split,
    ratio_split,
    split_path,
    stratified_fraction,
)
from cnnbench.data.types import ArraySplit, Dataset
from cnnbench.errors import DataError, DataNotFoundError


def _folder_root(cfg: DataConfig, spec: DatasetSpec) -> tuple[Path, list[str]]:
    if cfg.folder_path is not None:
        root = Path(cfg.folder_path).expanduser()
        if not root.is_dir():
            raise DataNotFoundError(
                f"--data {cfg.name}: {root} {'does not exist' if not root.exists() else 'is not a directory'}; "
                "expected a directory with one sub-folder of images per class (or train/ and test/ sub-trees)"
            )
        return root, [f"images from {root}"]
    found = locate(spec, cfg.data_dir, cfg.download, cfg.download_timeout)
    return found.files["root"], [*found.notes, f"{spec.name} found in {found.files['root']} ({found.place})"]


def _is_clutter(cfg: DataConfig, class_name: str) -> bool:
    return cfg.base_name == "caltech256" and class_name.split(".", 1)[-1] == "clutter"


def _decode(cfg: DataConfig, scan: FolderScan, label: str) -> DecodedImages:
    size = cfg.image_size or DEFAULT_NATURAL_SIZE
    mode = "RGB" if cfg.color_mode == "rgb" else "L"
    decoded = decode_folder(scan, size, mode, cache_root(cfg.cache_dir), label, cfg.decode_workers)
    total = len(scan.files)
    bad = len(decoded.skipped)
    if bad and (cfg.strict or bad / total > cfg.max_skip_fraction):
        listing = "; ".join(f"{s['path']}: {s['reason']}" for s in decoded.skipped[:5])
        more = f" and {bad - 5} more" if bad > 5 else ""
        why = (
            "--strict-data is set"
            if cfg.strict
            else f"that is more than --max-skip-fraction {cfg.max_skip_fraction:g} of {total:,} images"
        )
        raise DataError(f"{bad:,} unreadable image(s) under {scan.root} and {why}: {listing}{more}")
    return decoded


def folder_dataset(cfg: DataConfig, spec: DatasetSpec) -> Dataset:
    root, notes = _folder_root(cfg, spec)
    label = cfg.name if cfg.folder_path is None else f"imagefolder-{root.resolve().name}"
    predefined = cfg.folder_path is not None and has_predefined_split(root)
    if predefined:
        test_dir = root / "test" if (root / "test").is_dir() else root / "val"
        parts = [(root / "train", "train"), (test_dir, test_dir.name)]
    else:
        parts = [(root, "all")]
    scans, decoded = _decode_parts(cfg, parts, label, predefined, notes)
    skipped = [s for d in decoded for s in d.skipped]
    skipped += [
        {"path": str(s.root / c), "reason": "class folder holds no images; class left out"}
        for s in scans
        for c in s.empty_classes
    ]
    classes = _kept_classes(cfg, decoded, parts, notes)
    identity = _folder_identity(cfg, root, predefined)
    path = split_path(cache_root(cfg.cache_dir), label, identity)
    pool = _FolderPool.of(decoded, {c: i for i, c in enumerate(classes)}, parts[1][1] if predefined else None)
    saved = load_split(path, notes)
    split = _read_folder_split(saved, pool, path, notes) if saved is not None else None
    if split is None:
        saved = None
        split = (*_draw_folder_split(cfg, pool, identity["protocol"], parts, notes), {})
    train_idx, val_idx, test_idx, extra = split
    train, val, test = pool.take(train_idx, decoded), pool.take(val_idx, decoded), pool.take(test_idx, decoded)
    if len(train) == 0 or len(test) == 0:
        raise DataError(f"{root}: the split left {len(train)} train and {len(test)} test images; need at least one")
    mean, std = _stats(extra, train)
    names = [[pool.files[i] for i in np.sort(idx)] for idx in (train_idx, val_idx, test_idx)]
    split_file = _save(path, identity, *names, mean, std, saved is None, notes)
    notes.append(_split_note(cfg, len(train), len(val), len(test)))
    return Dataset(cfg.name, train, val, test, classes, "natural", mean, std, str(root), skipped, notes, split_file)


def _decode_parts(
    cfg: DataConfig, parts: list[tuple[Path, str]], label: str, predefined: bool, notes: list[str]
) -> tuple[list[FolderScan], list[DecodedImages]]:
    """Scan and decode (once, cached) every part: the folder, or its train/ and test/ trees; notes what was found."""
    decoded: list[DecodedImages] = []
    scans: list[FolderScan] = []
    for directory, part in parts:
        scan = scan_folder(directory, f"--data {cfg.name}" if cfg.folder_path else "--data-dir")
        scans.append(scan)
        decoded.append(_decode(cfg, scan, f"{label}-{part}" if predefined else label))
        d = decoded[-1]
        notes.append(
            f"{'decoded once into' if d.built else 'decode-once cache reused:'} {d.directory} "
            f"({len(d.files):,} images, {d.images.shape[-1]}px {'RGB' if d.images.shape[1] == 3 else 'gray'}, "
            f"{d.seconds:.1f} s)"
        )
        if scan.ignored_files or scan.ignored_dirs:
            notes.append(
                f"{directory}: ignored {scan.ignored_files} non-image file(s) and {scan.ignored_dirs} nested folder(s)"
            )
        if scan.empty_classes:
            notes.append(f"{directory}: class folders without images left out: {', '.join(scan.empty_classes)}")
    return scans, decoded


def _kept_classes(
    cfg: DataConfig, decoded: list[DecodedImages], parts: list[tuple[Path, str]], notes: list[str]
) -> list[str]:
    """The classes of the (train) folder, without Caltech-256's clutter unless asked; a test tree adds none."""
    classes = [c for c in decoded[0].classes if cfg.include_clutter or not _is_clutter(cfg, c)]
    if len(classes) < len(decoded[0].classes):
        notes.append("257.clutter excluded (the Caltech-256 protocol; --include-clutter keeps it)")
    if len(decoded) > 1:
        missing = sorted(set(decoded[1].classes) - set(decoded[0].classes))
        if missing:
            raise DataError(f"{parts[1][0]}: classes {missing[:5]} have no folder in {parts[0][0]}")
    return classes


def _folder_identity(cfg: DataConfig, root: Path, predefined: bool) -> dict[str, Any]:
    """What the saved split depends on: a split file is reused only for the same values."""
    return {
        "dataset": cfg.name if cfg.folder_path is None else f"imagefolder:{root.resolve()}",
        "protocol": "predefined"
        if predefined
        else ("ratio" if cfg.split_ratio is not None or cfg.folder_path is not None else "per_class"),
        "per_class": cfg.per_class,
        "split_ratio": cfg.split_ratio,
        "val_fraction": cfg.val_fraction,
        "split_seed": cfg.split_seed,
        "include_clutter": cfg.include_clutter,
        "max_train_samples": cfg.max_train_samples,
    }


@dataclass
class _FolderPool:
    """Every usable image of a folder dataset, numbered: a split is three lists of these positions."""

    files: list[str]  # per position: the file's name relative to its part ("test:<relpath>" in a test tree)
    rows: list[tuple[int, int]]  # per position: (part number, row in that part's decoded images)
    labels: np.ndarray  # (N,) int64 class index in the kept class order
    first_part: int  # positions [0, first_part) are the first part's (train/ of a predefined split)

    @classmethod
    def of(cls, decoded: list[DecodedImages], class_index: dict[str, int], test_part: str | None) -> _FolderPool:
        pools = [_usable_rows(d, class_index) for d in decoded]
        rows0, labels0, files0 = pools[0]
        if test_part is None:
            return cls(files0, [(0, r) for r in rows0], labels0, len(files0))
        rows1, labels1, files1 = pools[1]
        # Test images are keyed "test:<relpath>" so names from the two trees never collide.
        return cls(
            files0 + [f"{test_part}:{f}" for f in files1],
            [(0, r) for r in rows0] + [(1, r) for r in rows1],
            np.concatenate([labels0, labels1]),
            len(files0),
        )

    def take(self, index: np.ndarray, decoded: list[DecodedImages]) -> ArraySplit:
        """The images at ``index`` (sorted), gathered from the parts' decoded arrays."""
        index = np.sort(index)
        parts_of = np.array([self.rows[i][0] for i in index], dtype=np.int64)
        rows = np.array([self.rows[i][1] for i in index], dtype=np.int64)
        shape = decoded[0].images.shape[1:]
        out = np.empty((len(index), *shape), dtype=np.uint8)
        for p, d in enumerate(decoded):
            sel = np.flatnonzero(parts_of == p)
            if len(sel):
                out[sel] = d.images[rows[sel]]  # rows ascending: the memmap is read front to back
        return ArraySplit(out, self.labels[index])


def _usable_rows(d: DecodedImages, class_index: dict[str, int]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(rows, class index, file) of one part's images whose class is kept, in row order."""
    names = [d.classes[lab] for lab in d.labels]
    keep = np.array([n in class_index for n in names], dtype=bool)
    rows = np.flatnonzero(keep)
    return rows, np.array([class_index[names[r]] for r in rows], dtype=np.int64), [d.files[r] for r in rows]


def _read_folder_split(
    saved, pool: _FolderPool, path: Path, notes: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]] | None:
    """A saved split's (train, val, test, extra) positions, or None when it names images that are gone."""
    position = {f: i for i, f in enumerate(pool.files)}
    names = saved.train + saved.val + saved.test
    missing = [f for f in names if f not in position]
    if missing:
        notes.append(
            f"saved split {path} names {len(missing)} image(s) no longer readable here (e.g. {missing[0]}); "
            "a new split was drawn"
        )
        return None
    train_idx, val_idx, test_idx = (
        np.array([position[f] for f in s], np.int64) for s in (saved.train, saved.val, saved.test)
    )
    unused = len(pool.files) - len(names)
    notes.append(
        f"split lists read from {path}"
        + (f"; {unused} image(s) added since are not used (delete that file to re-split)" if unused else "")
    )
    return train_idx, val_idx, test_idx, saved.extra


def _draw_folder_split(
    cfg: DataConfig, pool: _FolderPool, protocol: str, parts: list[tuple[Path, str]], notes: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A new (train, val, test) split of the pool by the dataset's protocol, seeded; notes which."""
    labels = pool.labels
    if protocol == "predefined":
        pool_train, test_idx = np.arange(pool.first_part), np.arange(pool.first_part, len(pool.files))
        said = f"train/ and {parts[1][1]}/ sub-trees as given"
    elif protocol == "per_class":
        pool_train, test_idx, more = per_class_split(labels, cfg.per_class, cfg.split_seed)
        notes.extend(more)
        said = f"{cfg.per_class} training images per class (seed {cfg.split_seed}), the rest for test"
    else:
        ratio = cfg.split_ratio if cfg.split_ratio is not None else DEFAULT_FOLDER_RATIO
        pool_train, test_idx = ratio_split(labels, ratio, cfg.split_seed)
        said = f"{ratio:g} of each class for training (seed {cfg.split_seed}), the rest for test"
    keep, val_pos = stratified_fraction(labels[pool_train], cfg.val_fraction, cfg.split_seed, "val")
    train_idx, val_idx = pool_train[keep], pool_train[val_pos]
    train_idx = _limit(train_idx, labels, cfg)
    notes.append(f"train/test protocol: {said}")
    return train_idx, val_idx, test_idx
