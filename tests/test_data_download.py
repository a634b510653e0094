"""Downloads against a real HTTP server on 127.0.0.1: right checksum, wrong checksum, truncated body, offline."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from cnnbench.data import DataConfig, catalog, load_dataset, resolve_default_digits
from cnnbench.data.catalog import RemoteFile
from cnnbench.data.download import DownloadError, download_file, reachable
from cnnbench.data.idx import encode_idx
from cnnbench.errors import ChecksumError, DataNotFoundError


@pytest.fixture(autouse=True)
def _downloads_allowed(monkeypatch):
    """These tests download from a server on 127.0.0.1; conftest turns downloads off everywhere else."""
    monkeypatch.delenv("CNNBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


class _Handler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    truncate: set[str] = set()

    def do_HEAD(self):  # noqa: N802
        self._serve(body=False)

    def do_GET(self):  # noqa: N802
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            # A truncated body: promise all bytes, send half, close the connection.
            self.wfile.write(data[: len(data) // 2] if self.path in self.truncate else data)
            self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("H", (_Handler,), {"files": {}, "truncate": set()})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_right_checksum(server, tmp_path):
    handler, url = server
    payload = bytes(range(256)) * 1000
    handler.files["/a.bin"] = payload
    result = download_file([f"{url}/a.bin"], tmp_path / "a.bin", _md5(payload), timeout=5)
    assert (tmp_path / "a.bin").read_bytes() == payload
    assert result.size == len(payload) and result.md5 == _md5(payload)


def test_wrong_checksum_leaves_no_file(server, tmp_path):
    handler, url = server
    handler.files["/a.bin"] = b"not what was published"
    with pytest.raises(ChecksumError, match=r"a\.bin.*checksum mismatch: md5 [0-9a-f]{32}, expected 0{32}"):
        download_file([f"{url}/a.bin"], tmp_path / "a.bin", "0" * 32, timeout=5)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary


def test_truncated_body_leaves_no_file(server, tmp_path):
    handler, url = server
    payload = b"x" * 100_000
    handler.files["/a.bin"] = payload
    handler.truncate.add("/a.bin")
    with pytest.raises(DownloadError, match=r"truncated body: received 50,000 of 100,000 bytes"):
        download_file([f"{url}/a.bin"], tmp_path / "a.bin", _md5(payload), timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_falls_through_mirrors_and_reports_each(server, tmp_path):
    handler, url = server
    payload = b"payload"
    handler.files["/m2/a.bin"] = payload
    dead = f"http://127.0.0.1:{_closed_port()}/a.bin"
    result = download_file([dead, f"{url}/m1/a.bin", f"{url}/m2/a.bin"], tmp_path / "a.bin", _md5(payload), 5)
    assert result.url.endswith("/m2/a.bin")
    with pytest.raises(DownloadError) as info:
        download_file([dead, f"{url}/m1/a.bin"], tmp_path / "b.bin", _md5(payload), 5)
    assert [u for u, _ in info.value.failures] == [dead, f"{url}/m1/a.bin"]
    assert "no connection" in info.value.failures[0][1] and "HTTP 404" in info.value.failures[1][1]


@pytest.mark.timeout(60)  # without the timeout the read would wait forever: a hang fails here, not a clock
def test_unresponsive_server_times_out_fast(tmp_path):
    # A listening socket that never answers: the timeout, not the OS default, bounds the wait.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        with pytest.raises(DownloadError, match="timed out"):
            download_file([f"http://127.0.0.1:{s.getsockname()[1]}/a"], tmp_path / "a", None, timeout=0.5)


def _mnist_files(n_train=30, n_test=10):
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        (np.arange(n_train) % 10).astype(np.uint8),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        (np.arange(n_test) % 10).astype(np.uint8),
    ]
    specs = catalog.SPECS["mnist"].files
    return {f.name: gzip.compress(encode_idx(a), mtime=0) for f, a in zip(specs, arrays, strict=True)}


def _point_mnist_at(monkeypatch, mirrors, files):
    spec = catalog.SPECS["mnist"]
    monkeypatch.setitem(
        catalog.SPECS,
        "mnist",
        dataclasses.replace(
            spec,
            mirrors=tuple(mirrors),
            files=tuple(RemoteFile(n, _md5(d)) for n, d in files.items()),
            system_paths=(),
        ),
    )


def test_load_dataset_downloads_verifies_and_reuses(server, isolated_cache, monkeypatch):
    handler, url = server
    files = _mnist_files()
    for name, data in files.items():
        handler.files[f"/mnist/{name}"] = data
    _point_mnist_at(monkeypatch, [f"{url}/mnist/"], files)
    ds = load_dataset(DataConfig("mnist", download_timeout=5))
    dest = isolated_cache / "data-home" / "mnist"  # $CNNBENCH_DATA/<name>
    assert sorted(p.name for p in dest.iterdir()) == sorted(files)
    assert len(ds.test) == 10 and len(ds.train) + len(ds.val) == 30
    assert any("md5 verified" in n for n in ds.notes)
    handler.files.clear()  # second load: from disk, no network
    assert len(load_dataset(DataConfig("mnist", download_timeout=5)).test) == 10


def test_load_dataset_wrong_checksum_is_an_error(server, isolated_cache, monkeypatch):
    handler, url = server
    files = _mnist_files()
    _point_mnist_at(monkeypatch, [f"{url}/mnist/"], files)
    for name, data in files.items():
        handler.files[f"/mnist/{name}"] = data[:20] + bytes([data[20] ^ 0xFF]) + data[21:]  # one byte changed
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        load_dataset(DataConfig("mnist", download_timeout=5))


@pytest.mark.timeout(60)
def test_offline_load_fails_fast_with_places(isolated_cache, monkeypatch):
    files = _mnist_files()
    _point_mnist_at(monkeypatch, [f"http://127.0.0.1:{_closed_port()}/"], files)
    with pytest.raises(DataNotFoundError, match=r"(?s)Looked in.*download to .*no connection"):
        load_dataset(DataConfig("mnist", download_timeout=3))


def test_resolve_default_digits(server, isolated_cache, monkeypatch, tmp_path):
    handler, url = server
    files = _mnist_files()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # Unreachable mirrors: the bundled sample, quickly, saying how to get the full set.
    _point_mnist_at(monkeypatch, [f"http://127.0.0.1:{_closed_port()}/"], files)
    name, note = resolve_default_digits(timeout=2.0)
    assert name == "mnist-sample" and "train-images-idx3-ubyte.gz" in note and "--data-dir" in note
    # A mirror that answers: MNIST (downloaded on load).
    for n, d in files.items():
        handler.files[f"/mnist/{n}"] = d
    _point_mnist_at(monkeypatch, [f"{url}/mnist/"], files)
    name, note = resolve_default_digits(timeout=2.0)
    assert name == "mnist" and "downloading" in note
    # Local files: MNIST from there, no network needed.
    local = tmp_path / "local"
    local.mkdir()
    for n, d in files.items():
        (local / n).write_bytes(d)
    _point_mnist_at(monkeypatch, [f"http://127.0.0.1:{_closed_port()}/"], files)
    assert resolve_default_digits(data_dir=str(local)) == ("mnist", f"using MNIST from {local}")


@pytest.mark.timeout(60)
def test_reachable_bounds_the_wait():
    assert reachable([f"http://127.0.0.1:{_closed_port()}/x"], timeout=1.0) is None
