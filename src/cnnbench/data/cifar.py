"""CIFAR-10 "python version": pickled batches, each verified against its published md5 before unpickling.

Unpickling runs code chosen by whoever wrote the file, so a batch whose md5 differs from the
published one is refused (``ChecksumError``) and never unpickled. The batches are read from the
``cifar-10-batches-py`` directory or straight from ``cifar-10-python.tar.gz`` without extracting it.
"""

from __future__ import annotations

import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np

from cnnbench.data.catalog import DatasetSpec
from cnnbench.errors import ChecksumError, DataError

MEMBER_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
TEST_BATCHES = ("test_batch",)


def _verified(name: str, data: bytes, where: str, spec: DatasetSpec) -> bytes:
    expected = {f.name: f.md5 for f in spec.files}[name]
    actual = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if actual != expected:
        raise ChecksumError(
            f"{where}: md5 {actual}, expected the published {expected}; the file is corrupt or not CIFAR-10 "
            "(refusing to unpickle it)"
        )
    return data


def _read_members(source: Path, spec: DatasetSpec) -> dict[str, bytes]:
    names = [f.name for f in spec.files]
    out: dict[str, bytes] = {}
    if source.is_dir():
        for name in names:
            path = source / name
            try:
                out[name] = _verified(name, path.read_bytes(), str(path), spec)
            except FileNotFoundError:
                raise DataError(f"{path} is missing; expected the CIFAR-10 files {', '.join(names)}") from None
        return out
    try:
        with tarfile.open(source, "r:gz") as tar:
            for name in names:
                member = f"{MEMBER_DIR}/{name}"
                try:
                    f = tar.extractfile(member)
                except KeyError:
                    raise DataError(f"{source}: has no member {member}; expected the CIFAR-10 archive") from None
                if f is None:
                    raise DataError(f"{source}: {member} is not a regular file")
                out[name] = _verified(name, f.read(), f"{source}:{member}", spec)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{source}: cannot read the archive ({exc}); delete it and fetch it again") from None
    return out


def _unpickle(data: bytes, where: str) -> dict:
    try:
        obj = pickle.loads(data, encoding="bytes")  # noqa: S301 - md5 verified against the published value first
    except Exception as exc:  # a verified file cannot fail here unless the published file changes
        raise DataError(f"{where}: cannot unpickle ({exc})") from None
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(data, where)
    images = np.asarray(d.get("data"), dtype=np.uint8)
    labels = np.asarray(d.get("labels"), dtype=np.int64)
    if images.ndim != 2 or images.shape[1] != 3 * 32 * 32 or len(images) != len(labels):
        raise DataError(f"{where}: expected data (N, 3072) and N labels, got {images.shape} and {labels.shape}")
    # Rows are 1024 red, 1024 green, 1024 blue values: (N, 3, 32, 32) without a copy of the order.
    return images.reshape(-1, 3, 32, 32), labels


def read_cifar10(
    source: str | Path, spec: DatasetSpec
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], list[str]]:
    """((train images, labels), (test images, labels), class names) from a batches dir or the .tar.gz.

    Raises:
        ChecksumError: a batch differs from its published md5 (it is not unpickled).
        DataError: a missing batch, an unreadable archive or unexpected array shapes.
    """
    source = Path(source)
    members = _read_members(source, spec)
    train = [_batch(members[n], f"{source}/{n}") for n in TRAIN_BATCHES]
    test = [_batch(members[n], f"{source}/{n}") for n in TEST_BATCHES]
    meta = _unpickle(members["batches.meta"], f"{source}/batches.meta")
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta.get("label_names", [])]
    join = lambda parts: (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))  # noqa: E731
    return join(train), join(test), classes
