"""Stream an HTTP body into a file that appears only when it is whole and its digest is accepted.

Shared by dataset downloads (``data.download``: md5) and pretrained weights (``models.hub``: sha256
prefix); each keeps its own errors, wording and progress display. The body goes through
``utils.io.atomic_open`` while it is hashed, so an interrupted, short or refused transfer never
leaves a file under the final name. Torch-free: only the standard library.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import IO, Any, BinaryIO, Literal

from cnnbench.utils.io import atomic_open

CHUNK = 1 << 20  # bytes per read

# One switch for every download cnnbench makes (datasets and pretrained weights), as HF_HUB_OFFLINE is
# for the Hugging Face libraries; HF_HUB_OFFLINE=1 is honoured the same way, since whoever set it is offline.
OFFLINE_ENV = "CNNBENCH_OFFLINE"
OFFLINE_VARS = (OFFLINE_ENV, "HF_HUB_OFFLINE")
_TRUE = {"1", "true", "yes", "on"}


def downloads_blocked() -> str | None:
    """Why nothing may be downloaded (``"CNNBENCH_OFFLINE=1 is set"``), or None when downloads are allowed."""
    for var in OFFLINE_VARS:
        value = os.environ.get(var, "")
        if value.strip().lower() in _TRUE:
            return f"{var}={value} is set"
    return None


#: Why a transfer failed: "connect" (no response), "lost" (a network error mid-body), "truncated"
#: (fewer bytes than Content-Length), "refused" (the digest check said no).
TransferKind = Literal["connect", "lost", "truncated", "refused"]


class TransferError(Exception):
    """A download that failed; nothing was saved. ``str()`` is a one-line reason.

    Deliberately not an OSError: raised inside ``atomic_open``, one would be reported as a failed write.

    Attributes:
        kind: what failed (:data:`TransferKind`).
        received: bytes that arrived before it failed.
        expected: the announced Content-Length, or None when the server sent none.
        cause: the network error behind "connect" and "lost"; None otherwise.
    """

    def __init__(
        self,
        reason: str,
        kind: TransferKind,
        received: int = 0,
        expected: int | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(reason)
        self.kind, self.received, self.expected, self.cause = kind, received, expected, cause


def stream_to_file(
    url: str,
    dest: str | os.PathLike[str],
    *,
    hash_name: str,
    timeout: float,
    user_agent: str,
    on_progress: Callable[[int, int | None], None] | None = None,
    check: Callable[[str], str | None] | None = None,
) -> tuple[int, str]:
    """Fetch ``url`` into ``dest``, which appears only once the whole body has arrived and ``check`` accepts it.

    Args:
        url: the full URL.
        dest: the final path.
        hash_name: a ``hashlib`` algorithm ("md5", "sha256") computed over the body as it streams.
        timeout: seconds for the connection and for each read.
        user_agent: the User-Agent header.
        on_progress: called as ``(bytes received, Content-Length or None)`` once the response headers
            have arrived (with 0) and after every chunk.
        check: given the hex digest of the whole body, returns why the file is refused, or None to keep it.

    Returns:
        The byte count and the hex digest of the body.

    Raises:
        TransferError: the connection, the transfer, the length or the check failed; nothing is left at ``dest``.
        OutputError: ``dest`` cannot be written (read-only directory, full disk).
        ValueError: ``url`` is not a URL at all (no scheme).
    """
    response = _connect(url, timeout, user_agent)
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        if on_progress is not None:
            on_progress(0, total)
        digest = hashlib.new(hash_name, usedforsecurity=False)  # an integrity check, not a signature
        with atomic_open(dest, "wb") as f:
            size = _copy_body(response, f, digest.update, total, on_progress)
            if total is not None and size != total:
                raise TransferError(_truncated(size, total), "truncated", size, total)
            hexdigest = digest.hexdigest()
            refused = check(hexdigest) if check is not None else None
            if refused is not None:
                raise TransferError(refused, "refused", size, total)
    return size, hexdigest


def _connect(url: str, timeout: float, user_agent: str) -> http.client.HTTPResponse:
    """The open response to a GET of ``url``, its headers read.

    Raises:
        TransferError: "connect", when no response came.
        ValueError: ``url`` is not a URL at all (no scheme).
    """
    request = urllib.request.Request(url, headers={"User-Agent": user_agent})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise TransferError(describe_url_error(exc), "connect", cause=exc) from None


def _copy_body(
    response: BinaryIO,
    out: IO[Any],
    hash_update: Callable[[bytes], None],
    total: int | None,
    on_progress: Callable[[int, int | None], None] | None,
) -> int:
    """Read the rest of ``response`` in chunks, each hashed, then written to ``out``; the bytes read.

    Raises:
        TransferError: "truncated" for a chunked body cut short, "lost" for a network error mid-body.
    """
    size = 0
    while True:
        try:
            chunk = response.read(CHUNK)
        except http.client.IncompleteRead as exc:  # a chunked body cut short
            size += len(exc.partial)
            raise TransferError(_truncated(size, total), "truncated", size, total) from None
        except (OSError, http.client.HTTPException) as exc:
            # not OSError past this point: atomic_open would report it as a failed write
            reason = f"connection lost after {size:,} bytes ({describe_url_error(exc)})"
            raise TransferError(reason, "lost", size, total, exc) from None
        if not chunk:
            return size
        hash_update(chunk)
        out.write(chunk)
        size += len(chunk)
        if on_progress is not None:
            on_progress(size, total)


def describe_url_error(exc: BaseException) -> str:
    """One line saying why a request failed: "HTTP 404 Not Found", "timed out", "no connection (...)".

    Besides urllib's errors it knows those of httpx and huggingface_hub by their names and attributes
    (neither is imported); anything else is "<type>: <first line of the message>".
    """
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return "timed out" if isinstance(reason, TimeoutError) else f"no connection ({reason})"
    name = type(exc).__name__
    if isinstance(exc, TimeoutError) or "Timeout" in name:  # httpx's ConnectTimeout, ReadTimeout, ...
        return "timed out"
    if isinstance(exc, ConnectionError) or name in ("ConnectError", "ProxyError"):
        return f"no connection ({first_line(exc)})"
    response = getattr(exc, "response", None)  # huggingface_hub's HTTP errors
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return f"HTTP {status}"
    return f"{name}: {first_line(exc)}"


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _truncated(size: int, total: int | None) -> str:
    return f"transfer interrupted after {size:,} of {f'{total:,}' if total is not None else '?'} bytes"
