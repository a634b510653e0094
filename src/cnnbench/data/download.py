"""Download a file from its mirrors, verifying length and md5 before it appears at its final path.

The body is streamed into a temporary file (``utils.fetch.stream_to_file``) while it is hashed; the file
is renamed into place only when the byte count matches ``Content-Length`` and the md5 matches the
published value, so an interrupted or corrupt download never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import http.client
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cnnbench.errors import ChecksumError, DataError, OutputError
from cnnbench.utils.fetch import CHUNK, TransferError, describe_url_error, stream_to_file

_USER_AGENT = "cnnbench (https://pypi.org/project/cnnbench)"


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    url: str
    size: int
    md5: str


class DownloadError(DataError):
    """Every mirror of a file failed; ``failures`` holds (url, reason) for each."""

    def __init__(self, message: str, failures: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.failures = failures


def md5_of(path: str | Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(urls: Sequence[str], dest: str | Path, md5: str | None, timeout: float = 10.0) -> DownloadResult:
    """Fetch ``dest`` from the first of ``urls`` that delivers it whole and with the right md5.

    Args:
        urls: full URLs of the same file, tried in order.
        dest: final path; written atomically.
        md5: published checksum (hex); None skips the check (only for files without one).
        timeout: seconds for the connection and for each read.

    Raises:
        DownloadError: listing every URL tried and why it failed (wrong checksum, truncated body,
            HTTP status, no connection).
    """
    dest = Path(dest)
    failures: list[tuple[str, str]] = []
    for url in urls:
        try:
            return _fetch(url, dest, md5, timeout)
        except OutputError:
            raise
        except (DataError, OSError, http.client.HTTPException, ValueError) as exc:
            failures.append((url, _reason(exc)))
    lines = "; ".join(f"{u}: {r}" for u, r in failures)
    error = DownloadError(f"could not download {dest.name} ({lines})", failures)
    if failures and all("checksum" in r for _, r in failures):
        raise ChecksumError(str(error)) from None
    raise error


def _fetch(url: str, dest: Path, md5: str | None, timeout: float) -> DownloadResult:
    def check(digest: str) -> str | None:
        if md5 is not None and digest != md5.lower():
            return f"checksum mismatch: md5 {digest}, expected {md5}"
        return None

    try:
        size, digest = stream_to_file(url, dest, hash_name="md5", timeout=timeout, user_agent=_USER_AGENT, check=check)
    except TransferError as exc:  # reworded as dataset downloads always have (download_file sorts on "checksum")
        if exc.kind == "refused":
            raise ChecksumError(str(exc)) from None
        if exc.kind == "truncated":
            expected = f"{exc.expected:,}" if exc.expected is not None else "?"
            raise DataError(f"truncated body: received {exc.received:,} of {expected} bytes") from None
        if exc.kind == "lost":
            raise DataError(f"connection lost after {exc.received:,} bytes ({_reason(exc.cause)})") from None
        raise DataError(_reason(exc.cause)) from None  # no response
    return DownloadResult(dest, url, size, digest)


def _reason(exc: BaseException | None) -> str:
    """urllib's errors as ``describe_url_error`` words them; any other (a DataError, ...) by its message."""
    if isinstance(exc, (urllib.error.URLError, TimeoutError)):
        return describe_url_error(exc)
    return str(exc) or type(exc).__name__


def reachable(urls: Sequence[str], timeout: float = 3.0) -> str | None:
    """The first of ``urls`` that answers an HTTP HEAD within ``timeout`` seconds in all, else None.

    The probes run in daemon threads and the wait is bounded by ``timeout`` as a whole, so an
    offline machine (or a DNS lookup that hangs, which socket timeouts do not cover) never waits longer.
    """
    results: dict[int, bool] = {}

    def probe(i: int, url: str) -> None:
        try:
            req = urllib.request.Request(url, method="HEAD", headers={"User-Agent": _USER_AGENT})
            with urllib.request.urlopen(req, timeout=timeout) as r:
                results[i] = 200 <= r.status < 400
        except Exception:  # any failure means "not reachable"; the caller falls back
            results[i] = False

    threads = [threading.Thread(target=probe, args=(i, u), daemon=True) for i, u in enumerate(urls)]
    for t in threads:
        t.start()
    deadline = _now() + timeout
    for t in threads:
        t.join(max(0.0, deadline - _now()))
    for i, url in enumerate(urls):
        if results.get(i):
            return url
    return None


def _now() -> float:
    import time

    return time.monotonic()
