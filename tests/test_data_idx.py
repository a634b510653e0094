"""IDX parsing and the MNIST-family search path, with generated files only."""

from __future__ import annotations

import dataclasses
import gzip

import numpy as np
import pytest

from cnnbench.data import DataConfig, catalog, load_dataset
from cnnbench.data.idx import encode_idx, parse_idx, read_idx, read_idx_pair, write_idx
from cnnbench.errors import DataError, DataNotFoundError

NAMES = [f.name for f in catalog.SPECS["mnist"].files]


def _write_mnist(directory, n_train=60, n_test=20, size=28, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    tr = rng.integers(0, 256, (n_train, size, size), dtype=np.uint8)
    te = rng.integers(0, 256, (n_test, size, size), dtype=np.uint8)
    trl = (np.arange(n_train) % 10).astype(np.uint8)
    tel = (np.arange(n_test) % 10).astype(np.uint8)
    for name, arr in zip(NAMES, (tr, trl, te, tel), strict=True):
        write_idx(directory / (name if gz else name[:-3]), arr)
    return tr, trl, te, tel


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    arr = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    path = write_idx(tmp_path / f"a.idx{suffix}", arr)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 5)
    np.testing.assert_array_equal(back, arr)


def test_idx_pair_shapes(tmp_path):
    tr, trl, *_ = _write_mnist(tmp_path)
    images, labels = read_idx_pair(tmp_path / NAMES[0], tmp_path / NAMES[1])
    assert images.shape == (60, 1, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(images[:, 0], tr)
    np.testing.assert_array_equal(labels, trl)


def test_truncated_gzip_names_the_file(tmp_path):
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((50, 28, 28), np.uint8) + 7)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz.*truncated or corrupt"):
        read_idx(path)


def test_bad_magic(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(b"\x12\x34\x08\x03" + b"\x00" * 20)
    with pytest.raises(DataError, match=r"x\.idx: not an IDX file — magic number 0x12340803"):
        read_idx(path)


def test_wrong_rank_for_labels(tmp_path):
    write_idx(tmp_path / "imgs.idx", np.zeros((4, 2, 2), np.uint8))
    write_idx(tmp_path / "labs.idx", np.zeros((4, 1), np.uint8))
    with pytest.raises(DataError, match=r"labs\.idx: IDX rank 2, expected 1"):
        read_idx_pair(tmp_path / "imgs.idx", tmp_path / "labs.idx")


def test_header_promises_more_than_the_file_holds():
    data = encode_idx(np.zeros((10, 28, 28), np.uint8))[:-100]
    with pytest.raises(
        DataError,
        match=r"f\.idx: header says 10×28×28 items = 7,840 bytes of data, the file holds "
        r"7,740 \(truncated\)",
    ):
        parse_idx(data, "f.idx")


def test_extra_bytes_are_an_error():
    with pytest.raises(DataError, match="has extra bytes"):
        parse_idx(encode_idx(np.zeros(5, np.uint8)) + b"\x00", "f")


def test_count_mismatch(tmp_path):
    write_idx(tmp_path / "i.idx", np.zeros((5, 2, 2), np.uint8))
    write_idx(tmp_path / "l.idx", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match=r"i\.idx holds 5 images but .*l\.idx holds 4 labels"):
        read_idx_pair(tmp_path / "i.idx", tmp_path / "l.idx")


def test_too_short():
    with pytest.raises(DataError, match="too short"):
        parse_idx(b"\x00\x00", "f")


def test_load_from_data_dir_with_val_split(tmp_path, isolated_cache):
    tr, trl, te, tel = _write_mnist(tmp_path / "d")
    ds = load_dataset(DataConfig("mnist", data_dir=str(tmp_path / "d"), val_fraction=0.1, download=False))
    assert (len(ds.train), len(ds.val), len(ds.test)) == (54, 6, 20)
    assert np.bincount(ds.val.labels, minlength=10).max() == 1  # stratified: 6 of 10 classes give one each
    np.testing.assert_array_equal(ds.test.images[:, 0], te)
    # train and val partition the official train set
    joined = np.concatenate([ds.train.images, ds.val.images])
    assert sorted(map(bytes, joined)) == sorted(map(bytes, tr[:, None]))
    assert ds.image_shape == (1, 28, 28) and ds.num_classes == 10 and ds.kind == "digits"
    assert 0.45 < ds.mean[0] < 0.55  # uniform random bytes
    assert ds.source == str(tmp_path / "d")
    assert "4 of 4 files differ from the published md5" in " ".join(ds.notes)  # generated, not published files


def test_unpacked_and_torchvision_layouts(tmp_path, isolated_cache):
    _write_mnist(tmp_path / "d" / "MNIST" / "raw", gz=False)
    ds = load_dataset(DataConfig("mnist", data_dir=str(tmp_path / "d"), download=False))
    assert len(ds.test) == 20


def test_labels_out_of_range(tmp_path, isolated_cache):
    d = tmp_path / "d"
    _write_mnist(d)
    write_idx(d / NAMES[3], np.full(20, 12, np.uint8))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: label 12 is out of range; expected 0\.\.9"):
        load_dataset(DataConfig("mnist", data_dir=str(d), download=False))


def test_search_order_env_then_system(tmp_path, isolated_cache, monkeypatch):
    system = tmp_path / "usr-share" / "fashion-mnist"
    _write_mnist(system, n_test=30)
    spec = catalog.SPECS["fashion-mnist"]
    monkeypatch.setitem(catalog.SPECS, "fashion-mnist", dataclasses.replace(spec, system_paths=(str(system),)))
    ds = load_dataset(DataConfig("fashion-mnist", download=False))
    assert len(ds.test) == 30 and ds.source == str(system)
    # $CNNBENCH_DATA/<name> comes before the system path
    env_dir = isolated_cache / "data-home" / "fashion-mnist"
    _write_mnist(env_dir, n_test=40)
    assert len(load_dataset(DataConfig("fashion-mnist", download=False)).test) == 40
    # and --data-dir before both
    _write_mnist(tmp_path / "mine", n_test=10)
    assert len(load_dataset(DataConfig("fashion-mnist", data_dir=str(tmp_path / "mine"), download=False)).test) == 10


def test_missing_dataset_lists_every_place(tmp_path, isolated_cache, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(DataNotFoundError) as info:
        load_dataset(DataConfig("mnist", data_dir=str(tmp_path / "nowhere"), download=False))
    msg = str(info.value)
    assert f"--data-dir {tmp_path / 'nowhere'}: does not exist" in msg
    assert f"$CNNBENCH_DATA {isolated_cache / 'data-home' / 'mnist'}: does not exist" in msg
    assert f"cache {tmp_path / 'home' / '.cache' / 'cnnbench' / 'mnist'}" in msg
    assert "system /usr/share/datasets/mnist" in msg
    assert "download: disabled" in msg
    for name in NAMES:
        assert name in msg


def test_partial_directory_says_what_is_missing(tmp_path, isolated_cache):
    d = tmp_path / "d"
    _write_mnist(d)
    (d / NAMES[2]).unlink()
    with pytest.raises(DataNotFoundError, match=r"lacks t10k-images-idx3-ubyte\.gz"):
        load_dataset(DataConfig("mnist", data_dir=str(d), download=False))


def test_gz_of_real_shared_layout_is_plain_gzip(tmp_path):
    # A file gzipped by another tool (different header, same payload) reads the same.
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    with gzip.open(tmp_path / "a.gz", "wb", compresslevel=1) as f:
        f.write(encode_idx(arr))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), arr)
