"""Image folders and Caltech-256: odd files, colour modes, skips, the decode-once cache, split protocols."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnbench.data import DataConfig, catalog, load_dataset
from cnnbench.data import cache as cache_mod
from cnnbench.data.catalog import RemoteFile
from cnnbench.data.decode import decode_image
from cnnbench.errors import DataError, DataNotFoundError

SIZE = 16  # decode-once side used in these tests


def _jpeg(path: Path, color=(200, 30, 30), size=(40, 30), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, "JPEG", quality=90)


def _class(root: Path, name: str, n: int, color=(0, 120, 240)) -> None:
    for i in range(n):
        _jpeg(root / name / f"{i:03d}.jpg", color=color, size=(30 + i, 24))


def _odd_tree(root: Path) -> Path:
    """Every kind of file a real tree holds: the issue's list."""
    c = root / "001.ak47"
    _jpeg(c / "rgb.jpg")
    _jpeg(c / "gray.jpg", color=128, mode="L")
    _jpeg(c / "cmyk.jpg", color=(0, 255, 255, 0), mode="CMYK")  # pure red in CMYK
    pal = Image.new("P", (20, 20), 0)
    pal.putpalette([0, 200, 0] + [255, 255, 255] * 255)  # index 0 = green
    pal.save(c / "palette.png", transparency=1)
    data = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(data, "JPEG")
    (c / "truncated.jpg").write_bytes(data.getvalue()[: len(data.getvalue()) // 3])
    (c / "zero.jpg").write_bytes(b"")
    (c / ".DS_Store").write_bytes(b"\x00\x01junk")
    (c / "RENAME2").write_text("rename these files")
    _jpeg(c / "nested" / "deep.jpg")
    _class(root, "002.bear", 6)
    (root / "003.empty").mkdir()
    (root / "003.empty" / "RENAME2").write_text("")
    _class(root, "257.clutter", 3, color=(90, 90, 90))
    return root


def test_decode_converts_every_mode_to_rgb(tmp_path):
    _odd_tree(tmp_path)
    c = tmp_path / "001.ak47"
    rgb, gray, cmyk, pal = (decode_image(str(c / n), SIZE) for n in ("rgb.jpg", "gray.jpg", "cmyk.jpg", "palette.png"))
    for arr in (rgb, gray, cmyk, pal):
        assert isinstance(arr, np.ndarray) and arr.shape == (3, SIZE, SIZE) and arr.dtype == np.uint8
    assert np.allclose(gray.mean(axis=(1, 2)), 128, atol=3)  # gray replicated to 3 equal channels
    assert cmyk[0].mean() > 200 and cmyk[1].mean() < 60  # CMYK (0,255,255,0) is red
    assert pal[1].mean() > 150 and pal[0].mean() < 50  # palette index 0 is green
    gray1 = decode_image(str(c / "gray.jpg"), SIZE, "L")
    assert gray1.shape == (1, SIZE, SIZE)


def test_decode_reports_unreadable_files(tmp_path):
    _odd_tree(tmp_path)
    c = tmp_path / "001.ak47"
    assert "truncated" in decode_image(str(c / "truncated.jpg"), SIZE)
    assert "cannot identify image file" in decode_image(str(c / "zero.jpg"), SIZE)


def test_odd_tree_loads_with_listed_skips(tmp_path, isolated_cache):
    root = _odd_tree(tmp_path / "tree")
    cfg = DataConfig(f"imagefolder:{root}", image_size=SIZE, max_skip_fraction=0.5, val_fraction=0.0)
    ds = load_dataset(cfg)
    # imagefolder keeps 257.clutter (only caltech256 drops it); the empty class is left out and listed
    assert ds.classes == ["001.ak47", "002.bear", "257.clutter"]
    assert ds.image_shape == (3, SIZE, SIZE) and ds.kind == "natural"
    reasons = {Path(s["path"]).name: s["reason"] for s in ds.skipped}
    assert set(reasons) == {"truncated.jpg", "zero.jpg", "003.empty"}
    assert "truncated" in reasons["truncated.jpg"]
    # 4 readable in class 0, 6 in class 1, 3 clutter: every readable image is in exactly one split
    assert len(ds.train) + len(ds.val) + len(ds.test) == 13
    assert any("ignored 3 non-image file(s) and 1 nested folder(s)" in n for n in ds.notes)
    assert any("003.empty" in n for n in ds.notes)


def test_skip_fraction_and_strict_are_errors(tmp_path, isolated_cache):
    root = _odd_tree(tmp_path / "tree")
    with pytest.raises(DataError, match=r"2 unreadable image\(s\) under .* more than --max-skip-fraction 0\.05 of 15"):
        load_dataset(DataConfig(f"imagefolder:{root}", image_size=SIZE))
    with pytest.raises(DataError, match=r"--strict-data is set: .*truncated\.jpg"):
        load_dataset(DataConfig(f"imagefolder:{root}", image_size=SIZE, strict=True, max_skip_fraction=1.0))


def test_no_images_and_missing_path(tmp_path, isolated_cache):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "a" / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"no images found \(empty class folders: a\)"):
        load_dataset(DataConfig(f"imagefolder:{tmp_path / 'empty'}", image_size=SIZE))
    with pytest.raises(DataNotFoundError, match=r"nope does not exist; expected a directory"):
        load_dataset(DataConfig(f"imagefolder:{tmp_path / 'nope'}"))


def test_all_unreadable_is_an_error(tmp_path, isolated_cache):
    (tmp_path / "t" / "a").mkdir(parents=True)
    (tmp_path / "t" / "a" / "x.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"none of the 1 image files could be decoded"):
        load_dataset(DataConfig(f"imagefolder:{tmp_path / 't'}", image_size=SIZE, max_skip_fraction=1.0))


def test_decode_once_cache_is_reused_and_rebuilt_on_change(tmp_path, isolated_cache, monkeypatch):
    root = tmp_path / "tree"
    _class(root, "a", 5)
    _class(root, "b", 5, color=(250, 250, 0))
    cfg = DataConfig(f"imagefolder:{root}", image_size=SIZE)
    first = load_dataset(cfg)
    assert any(n.startswith("decoded once into") for n in first.notes)
    cache_dirs = sorted((isolated_cache / "cache").glob("imagefolder-tree-16px-rgb-*"))
    assert len(cache_dirs) == 1
    images = np.load(cache_dirs[0] / "images.npy", mmap_mode="r")
    assert images.shape == (10, 3, SIZE, SIZE) and images.dtype == np.uint8
    index = json.loads((cache_dirs[0] / "index.json").read_text())
    assert index["files"][0] == "a/000.jpg" and index["labels"][-1] == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(cache_mod, "_build", no_decoding)
    second = load_dataset(cfg)
    assert any(n.startswith("decode-once cache reused") for n in second.notes)
    np.testing.assert_array_equal(first.train.images, second.train.images)
    monkeypatch.undo()
    monkeypatch.setenv("CNNBENCH_CACHE", str(isolated_cache / "cache"))
    _jpeg(root / "b" / "new.jpg")  # a changed tree gets a new cache
    load_dataset(cfg)
    assert len(list((isolated_cache / "cache").glob("imagefolder-tree-16px-rgb-*"))) == 2


def test_gray_mode(tmp_path, isolated_cache):
    root = tmp_path / "tree"
    _class(root, "a", 4)
    _class(root, "b", 4)
    ds = load_dataset(DataConfig(f"imagefolder:{root}", image_size=SIZE, color_mode="gray"))
    assert ds.image_shape == (1, SIZE, SIZE) and len(ds.mean) == 1


def _caltech(root: Path, counts: list[int]) -> Path:
    cats = root / "256_ObjectCategories"
    for i, n in enumerate(counts):
        _class(cats, f"{i + 1:03d}.c{i}", n, color=(i * 20, 100, 200 - i * 20))
    _class(cats, "257.clutter", 7)
    return root


def test_caltech_per_class_protocol(tmp_path, isolated_cache):
    _caltech(tmp_path / "c", [8, 10, 12])
    cfg = DataConfig(
        "caltech256", data_dir=str(tmp_path / "c"), image_size=SIZE, per_class=5, val_fraction=0.2, download=False
    )
    ds = load_dataset(cfg)
    assert ds.classes == ["001.c0", "002.c1", "003.c2"]  # clutter excluded by default
    train_val = np.bincount(np.concatenate([ds.train.labels, ds.val.labels]))
    assert train_val.tolist() == [5, 5, 5]
    assert np.bincount(ds.test.labels).tolist() == [3, 5, 7]  # the rest
    assert len(ds.val) == 3  # 0.2 of 15, stratified
    with_clutter = load_dataset(dataclasses.replace(cfg, include_clutter=True))
    assert with_clutter.classes[-1] == "257.clutter" and with_clutter.num_classes == 4


def test_caltech_split_is_seeded_and_saved(tmp_path, isolated_cache):
    _caltech(tmp_path / "c", [8, 10])
    cfg = DataConfig("caltech256", data_dir=str(tmp_path / "c"), image_size=SIZE, per_class=4, download=False)
    a, b = load_dataset(cfg), load_dataset(cfg)
    np.testing.assert_array_equal(a.test.images, b.test.images)
    assert a.split_file and Path(a.split_file).is_file()
    assert any(n.startswith("split lists read from") for n in b.notes)
    saved = json.loads(Path(a.split_file).read_text())
    assert len(saved["train"]) + len(saved["val"]) == 8 and all(n.endswith(".jpg") for n in saved["test"])
    other = load_dataset(dataclasses.replace(cfg, split_seed=1))
    assert other.split_file != a.split_file
    # another seed draws other test images (1 chance in 70 × 210 of the same draw)
    assert sorted(json.loads(Path(other.split_file).read_text())["test"]) != sorted(saved["test"])


def test_saved_split_survives_an_added_image(tmp_path, isolated_cache):
    _caltech(tmp_path / "c", [8, 10])
    cfg = DataConfig("caltech256", data_dir=str(tmp_path / "c"), image_size=SIZE, per_class=4, download=False)
    before = json.loads(Path(load_dataset(cfg).split_file).read_text())
    _jpeg(tmp_path / "c" / "256_ObjectCategories" / "001.c0" / "zzz.jpg")
    after_ds = load_dataset(cfg)
    after = json.loads(Path(after_ds.split_file).read_text())
    assert after["test"] == before["test"] and after["train"] == before["train"]
    assert any("1 image(s) added since are not used" in n for n in after_ds.notes)


def test_ratio_split(tmp_path, isolated_cache):
    _caltech(tmp_path / "c", [10, 20])
    ds = load_dataset(
        DataConfig(
            "caltech256",
            data_dir=str(tmp_path / "c"),
            image_size=SIZE,
            split_ratio=0.8,
            val_fraction=0.0,
            download=False,
        )
    )
    assert np.bincount(ds.train.labels).tolist() == [8, 16]
    assert np.bincount(ds.test.labels).tolist() == [2, 4]


def test_predefined_train_test_folders(tmp_path, isolated_cache):
    _class(tmp_path / "t" / "train", "cat", 6)
    _class(tmp_path / "t" / "train", "dog", 6)
    _class(tmp_path / "t" / "test", "cat", 2)
    _class(tmp_path / "t" / "test", "dog", 3)
    ds = load_dataset(DataConfig(f"imagefolder:{tmp_path / 't'}", image_size=SIZE, val_fraction=0.25))
    assert ds.classes == ["cat", "dog"]
    assert np.bincount(ds.test.labels).tolist() == [2, 3]
    assert len(ds.train) == 9 and len(ds.val) == 3


def test_caltech_download_and_extract(tmp_path, isolated_cache, monkeypatch):
    """The real archive path, served from 127.0.0.1: download, verify, extract, load."""
    import threading

    monkeypatch.delenv("CNNBENCH_OFFLINE", raising=False)  # conftest's switch also stops dataset downloads
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    src = _caltech(tmp_path / "src", [3, 3])
    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / "256_ObjectCategories.tar", "w") as tar:
        tar.add(src / "256_ObjectCategories", arcname="256_ObjectCategories")
    md5 = hashlib.md5((served / "256_ObjectCategories.tar").read_bytes()).hexdigest()

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(served), **k)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        spec = catalog.SPECS["caltech256"]
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        monkeypatch.setitem(
            catalog.SPECS,
            "caltech256",
            dataclasses.replace(
                spec, mirrors=(url,), archive=RemoteFile("256_ObjectCategories.tar", md5), system_paths=()
            ),
        )
        ds = load_dataset(DataConfig("caltech256", image_size=SIZE, per_class=2, val_fraction=0.0))
    finally:
        httpd.shutdown()
        httpd.server_close()
    dest = isolated_cache / "data-home" / "caltech256"
    assert (dest / "256_ObjectCategories" / "001.c0" / "000.jpg").is_file()
    assert not (dest / "256_ObjectCategories.tar").exists()
    assert ds.num_classes == 2 and len(ds.train) == 4 and len(ds.test) == 2


def test_parallel_decode_matches_serial(tmp_path, isolated_cache):
    root = tmp_path / "tree"
    rng = np.random.default_rng(0)
    for i in range(cache_mod._SERIAL_BELOW + 20):
        arr = rng.integers(0, 256, (20 + i % 7, 25, 3), dtype=np.uint8)
        (root / f"c{i % 3}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / f"c{i % 3}" / f"{i:04d}.png")
    serial = load_dataset(
        DataConfig(f"imagefolder:{root}", image_size=SIZE, decode_workers=1, cache_dir=str(tmp_path / "a"))
    )
    parallel = load_dataset(
        DataConfig(f"imagefolder:{root}", image_size=SIZE, decode_workers=2, cache_dir=str(tmp_path / "b"))
    )
    np.testing.assert_array_equal(serial.train.images, parallel.train.images)
    np.testing.assert_array_equal(serial.test.labels, parallel.test.labels)
