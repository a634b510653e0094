"""Download published weights into the caches torchvision and timm use, exactly where they would.

- torchvision weights: the URL of the weights enum, saved as ``$TORCH_HOME/hub/checkpoints/<basename>``
  (``torch.hub.get_dir()``), accepted only when the sha256 of the body starts with the hex digits in the
  file name (``resnet18-f37072fd.pth``), as ``torch.hub.load_state_dict_from_url(..., check_hash=True)``
  does. The body is streamed into a temporary file next to the target and renamed into place only when
  it is whole (``Content-Length``) and its hash fits, so an interrupted or refused download never
  leaves a file under the final name.
- timm weights: ``huggingface_hub.hf_hub_download`` (timm's own path) into the Hugging Face cache
  (``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or ``~/.cache/huggingface/hub``), ``model.safetensors`` first
  and ``pytorch_model.bin`` when the repo has no safetensors file.

``CNNBENCH_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``) forbids every download. ``CNNBENCH_WEIGHTS_BASE_URL``
replaces the scheme and host of every weights URL (``https://download.pytorch.org`` and the Hugging
Face endpoint), for a mirror or a test server; ``HF_ENDPOINT`` still moves the Hugging Face endpoint alone.
Progress goes to stderr: a bar on a terminal, otherwise one line per download.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import time
import urllib.parse
from pathlib import Path
from typing import IO

from cnnbench.errors import WeightsDownloadError
from cnnbench.utils.fetch import (  # noqa: F401 - downloads_blocked is part of this module's API
    OFFLINE_ENV,
    TransferError,
    describe_url_error,
    downloads_blocked,
    first_line,
    stream_to_file,
)

BASE_URL_ENV = "CNNBENCH_WEIGHTS_BASE_URL"
HF_FILES = ("model.safetensors", "pytorch_model.bin")  # timm's order: the safe file, else the pickle
_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")  # torch.hub's HASH_REGEX
_TIMEOUT = 30.0  # seconds for the connection and for each read
_USER_AGENT = "cnnbench (torch.hub compatible)"


def mirror_url(url: str) -> str:
    """``url`` with its scheme and host replaced by ``$CNNBENCH_WEIGHTS_BASE_URL`` when that is set."""
    base = os.environ.get(BASE_URL_ENV, "").strip().rstrip("/")
    if not base:
        return url
    parts = urllib.parse.urlsplit(url)
    return base + parts.path + (f"?{parts.query}" if parts.query else "")


def hf_endpoint() -> str:
    """The Hugging Face endpoint downloads go to: the base-URL override, ``$HF_ENDPOINT``, or huggingface.co."""
    base = os.environ.get(BASE_URL_ENV, "").strip() or os.environ.get("HF_ENDPOINT", "").strip()
    return base.rstrip("/") or "https://huggingface.co"


def hash_prefix(filename: str) -> str | None:
    """The sha256 prefix torchvision puts in a weights file name (``f37072fd`` in ``resnet18-f37072fd.pth``)."""
    m = _HASH_IN_NAME.search(filename)
    return m.group(1) if m and m.group(1) else None


def download_to_file(url: str, dest: str | os.PathLike[str], expected_prefix: str | None = None) -> Path:
    """Fetch ``url`` into ``dest``, checking its length and the sha256 prefix, as torch.hub does.

    Args:
        url: the full URL (already mirrored).
        dest: the final path; it appears only once the whole body has arrived and its hash fits.
        expected_prefix: leading hex digits of the body's sha256; None skips the check.

    Raises:
        WeightsDownloadError: one line naming the URL and what went wrong (no connection, HTTP status,
            interrupted transfer, wrong hash); nothing is left at ``dest``.
        OutputError: the cache directory cannot be written (read-only, full disk).
    """
    dest = Path(dest)

    def check(digest: str) -> str | None:
        if expected_prefix and not digest.startswith(expected_prefix):
            return (
                f"wrong checksum: sha256 {digest[: len(expected_prefix)]}…, but the file name says "
                f"{expected_prefix}…; refused"
            )
        return None

    progress = _Progress(url, dest)
    try:
        stream_to_file(
            url,
            dest,
            hash_name="sha256",
            timeout=_TIMEOUT,
            user_agent=_USER_AGENT,
            on_progress=progress.update,
            check=check,
        )
    except TransferError as exc:
        progress.close(ok=False)
        saved = "" if exc.kind == "connect" else f", nothing saved in {dest.parent}"  # no response: no file begun
        raise WeightsDownloadError(f"downloading {url} failed: {exc}{saved}") from None
    progress.close(ok=True)
    return dest


def download_from_hf(repo_id: str, cache_dir: str | os.PathLike[str], filenames: tuple[str, ...] = HF_FILES) -> Path:
    """The first of ``filenames`` that ``repo_id`` holds, via ``hf_hub_download`` into ``cache_dir``.

    Raises:
        WeightsDownloadError: one line naming the URL and why (no connection, not in the repo, ...).
    """
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:  # timm depends on it; only a broken install lacks it
        raise WeightsDownloadError(
            f"downloading {repo_id} needs the huggingface_hub package (pip install huggingface_hub)"
        ) from None
    try:
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError
    except ImportError:  # huggingface_hub < 0.23
        from huggingface_hub.utils import EntryNotFoundError, LocalEntryNotFoundError  # type: ignore[no-redef]

    endpoint = hf_endpoint()
    kwargs: dict[str, object] = {"cache_dir": str(cache_dir), "endpoint": endpoint}
    tty = _is_tty(sys.stderr)
    if not tty and "tqdm_class" in inspect.signature(hf_hub_download).parameters:
        kwargs["tqdm_class"] = _silent_tqdm()
    tried = []
    for filename in filenames:
        url = f"{endpoint}/{repo_id}/resolve/main/{filename}"
        if not tty:
            print(f"downloading {url} into {cache_dir}", file=sys.stderr, flush=True)
        try:
            return Path(hf_hub_download(repo_id, filename, **kwargs))  # type: ignore[arg-type]
        except LocalEntryNotFoundError as exc:  # the Hub could not be reached
            cause = exc.__cause__ or exc.__context__
            why = describe_url_error(cause) if cause is not None else first_line(exc)
            raise WeightsDownloadError(f"downloading {url} failed: {why}") from None
        except EntryNotFoundError:
            tried.append(filename)  # no such file in the repo: try the next, as timm does
        except Exception as exc:  # httpx / OSError / HfHubHTTPError: one line, not a traceback
            raise WeightsDownloadError(f"downloading {url} failed: {describe_url_error(exc)}") from None
    raise WeightsDownloadError(f"{endpoint}/{repo_id} holds none of {', '.join(tried)}")


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def _silent_tqdm() -> type:
    from tqdm.auto import tqdm

    class _Silent(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return _Silent


def _size(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


class _Progress:
    """A bar on stderr when it is a terminal, else one line when the download starts (its first update)."""

    def __init__(self, url: str, dest: Path) -> None:
        self.stream = sys.stderr
        self.tty = _is_tty(self.stream)
        self.url, self.dest, self.name = url, dest, dest.name
        self.total: int | None = None
        self.started: float | None = None
        self.last = 0.0
        self.size = 0

    def update(self, size: int, total: int | None) -> None:
        now = time.monotonic()
        if self.started is None:  # the response has arrived
            self.started = self.last = now
            self.total = total
            if not self.tty:
                length = f" ({_size(total)})" if total else ""
                print(f"downloading {self.url}{length} to {self.dest}", file=self.stream, flush=True)
        self.size = size
        if self.tty and now - self.last >= 0.1:
            self.last = now
            self._draw()

    def close(self, ok: bool) -> None:
        if self.tty and self.started is not None:
            self._draw()
            self.stream.write(" done\n" if ok else " failed\n")
            self.stream.flush()

    def _draw(self) -> None:
        rate = self.size / max(time.monotonic() - (self.started or 0.0), 1e-6)
        if self.total:
            frac = min(self.size / self.total, 1.0)
            bar = "█" * int(frac * 30)
            text = f"{self.name} {frac:4.0%} |{bar:<30}| {_size(self.size)}/{_size(self.total)} {_size(rate)}/s"
        else:
            text = f"{self.name} {_size(self.size)} {_size(rate)}/s"
        self.stream.write("\r" + text)
        self.stream.flush()
