"""utils.fetch: the one HTTP transfer behind dataset and weights downloads, against a server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading
import urllib.error
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cnnbench.utils.fetch import TransferError, describe_url_error, stream_to_file

BODY = bytes(range(256)) * 20  # 5,120 bytes
OPTIONS = {"hash_name": "sha256", "timeout": 5.0, "user_agent": "cnnbench-test"}


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path not in ("/body", "/short"):
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY) + (1000 if self.path == "/short" else 0)))
        self.end_headers()
        self.wfile.write(BODY)
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_whole_body_lands_with_its_digest_and_reports_progress(url, tmp_path):
    seen: list[tuple[int, int | None]] = []
    size, digest = stream_to_file(
        f"{url}/body", tmp_path / "f", **OPTIONS, on_progress=lambda n, t: seen.append((n, t))
    )
    assert (tmp_path / "f").read_bytes() == BODY
    assert (size, digest) == (len(BODY), hashlib.sha256(BODY).hexdigest())
    assert seen[0] == (0, len(BODY)) and seen[-1] == (len(BODY), len(BODY))  # headers first, then every chunk


def test_a_refused_digest_leaves_nothing(url, tmp_path):
    with pytest.raises(TransferError, match="^not this one$") as err:
        stream_to_file(f"{url}/body", tmp_path / "f", **OPTIONS, check=lambda digest: "not this one")
    assert err.value.kind == "refused" and err.value.received == len(BODY) and err.value.cause is None
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary


def test_a_short_body_is_truncated_and_leaves_nothing(url, tmp_path):
    with pytest.raises(TransferError, match=r"^transfer interrupted after 5,120 of 6,120 bytes$") as err:
        stream_to_file(f"{url}/short", tmp_path / "f", **OPTIONS)
    assert (err.value.kind, err.value.received, err.value.expected) == ("truncated", 5120, 6120)
    assert not isinstance(err.value, OSError)  # atomic_open would have reported an OSError as a failed write
    assert list(tmp_path.iterdir()) == []


def test_no_response_is_a_connect_error_with_its_cause(url, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket is closed
    seen: list[tuple[int, int | None]] = []
    with pytest.raises(TransferError, match=r"^no connection \(") as err:
        stream_to_file(f"http://127.0.0.1:{port}/x", tmp_path / "f", **OPTIONS, on_progress=lambda n, t: seen.append(n))
    assert err.value.kind == "connect" and isinstance(err.value.cause, urllib.error.URLError)
    assert seen == [] and list(tmp_path.iterdir()) == []
    with pytest.raises(TransferError, match="^HTTP 404 Not Found$"):
        stream_to_file(f"{url}/missing", tmp_path / "f", **OPTIONS)


def test_describe_url_error_is_one_line():
    assert describe_url_error(urllib.error.URLError(TimeoutError())) == "timed out"
    assert describe_url_error(TimeoutError("read")) == "timed out"
    assert describe_url_error(ConnectionResetError(104, "Connection reset by peer")) == (
        "no connection ([Errno 104] Connection reset by peer)"
    )
    assert describe_url_error(ValueError("bad\nsecond line")) == "ValueError: bad"
    assert describe_url_error(type("ReadTimeout", (Exception,), {})()) == "timed out"  # httpx's, by name


@pytest.mark.slow
def test_fetch_is_torch_free():
    code = "import sys, cnnbench.utils.fetch; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
