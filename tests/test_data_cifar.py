"""CIFAR-10 pickles: checksums are verified before anything is unpickled."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import tarfile

import numpy as np
import pytest

from cnnbench.data import DataConfig, catalog, load_dataset
from cnnbench.data.catalog import RemoteFile
from cnnbench.errors import ChecksumError

NAMES = [f.name for f in catalog.SPECS["cifar10"].files]


class _Trap:
    """Unpickling this creates a marker file: proof that a file was (wrongly) unpickled."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _batches(n_per_batch: int = 20) -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    out = {}
    for name in NAMES:
        if name == "batches.meta":
            obj = {b"label_names": [c.encode() for c in catalog.SPECS["cifar10"].classes]}
        else:
            obj = {
                b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                b"labels": list(rng.integers(0, 10, n_per_batch)),
            }
        out[name] = pickle.dumps(obj, protocol=2)
    return out


def _use_checksums(monkeypatch, files: dict[str, bytes]) -> None:
    spec = catalog.SPECS["cifar10"]
    checked = tuple(RemoteFile(n, hashlib.md5(d).hexdigest()) for n, d in files.items())
    monkeypatch.setitem(catalog.SPECS, "cifar10", dataclasses.replace(spec, files=checked, system_paths=()))


def test_batches_directory(tmp_path, isolated_cache, monkeypatch):
    files = _batches()
    d = tmp_path / "cifar" / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for n, b in files.items():
        (d / n).write_bytes(b)
    _use_checksums(monkeypatch, files)
    ds = load_dataset(DataConfig("cifar10", data_dir=str(tmp_path / "cifar"), download=False, val_fraction=0.2))
    assert ds.image_shape == (3, 32, 32) and ds.kind == "natural"
    assert (len(ds.train), len(ds.val), len(ds.test)) == (80, 20, 20)
    assert ds.classes[0] == "airplane" and len(ds.mean) == 3
    # Channel planes: the first 1024 values of a row are red.
    first = pickle.loads(files["test_batch"], encoding="bytes")[b"data"][0]
    np.testing.assert_array_equal(ds.test.images[0, 0].ravel(), first[:1024])


def test_reads_straight_from_the_archive(tmp_path, isolated_cache, monkeypatch):
    files = _batches()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for n, b in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{n}")
            info.size = len(b)
            tar.addfile(info, io.BytesIO(b))
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(buf.getvalue())
    _use_checksums(monkeypatch, files)
    ds = load_dataset(DataConfig("cifar10", data_dir=str(tmp_path), download=False))
    assert len(ds.test) == 20 and ds.source.endswith("cifar-10-python.tar.gz")


def test_wrong_checksum_is_refused_before_unpickling(tmp_path, isolated_cache, monkeypatch):
    files = _batches()
    _use_checksums(monkeypatch, files)
    marker = tmp_path / "unpickled"
    files["data_batch_1"] = pickle.dumps(_Trap(str(marker)))
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for n, b in files.items():
        (d / n).write_bytes(b)
    with pytest.raises(ChecksumError, match=r"data_batch_1: md5 [0-9a-f]{32}, expected the published .*refusing"):
        load_dataset(DataConfig("cifar10", data_dir=str(tmp_path), download=False))
    assert not marker.exists()


def test_published_mirrors_and_checksums_match_torchvision():
    from torchvision.datasets import CIFAR10, MNIST, FashionMNIST

    ours = {f.name: f.md5 for f in catalog.SPECS["cifar10"].files}
    theirs = {n: m for n, m in CIFAR10.train_list + CIFAR10.test_list}
    theirs[CIFAR10.meta["filename"]] = CIFAR10.meta["md5"]
    assert ours == theirs
    assert catalog.SPECS["cifar10"].archive.md5 == CIFAR10.tgz_md5
    for name, cls in (("mnist", MNIST), ("fashion-mnist", FashionMNIST)):
        spec = catalog.SPECS[name]
        assert [(f.name, f.md5) for f in spec.files] == list(cls.resources)
        assert list(spec.mirrors) == list(cls.mirrors)
