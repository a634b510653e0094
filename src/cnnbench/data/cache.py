"""Decode once: an image tree becomes one memory-mapped ``.npy`` of (N, C, S, S) uint8, reused by every later run.

The cache directory is keyed by the tree's root, the size S, the colour mode and the file list
(names, sizes, modification times), so a changed tree gets a new cache and an unchanged one is
never decoded again. ``images.npy`` is written through ``utils.io.atomic_open`` and ``index.json``
(files, labels, classes, skipped files) after it, atomically too: a cache without its index is
incomplete and is rebuilt. Concurrent runs wait on a lock instead of decoding the same tree twice.

The lock (``.lock`` in the cache directory, shared by the users of one machine or one network file
system) carries a heartbeat: a waiter takes over a lock whose holder died (same host: its pid is gone;
any host: its heartbeat stopped) and waits at most ``$CNNBENCH_LOCK_WAIT`` seconds (30 minutes by
default) for a live one, then says which file to delete. The holder removes the temporary files of
writers that died in the directory, and its decode workers die with it (``utils.orphans``).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnbench.data.decode import decode_many
from cnnbench.data.imagefolder import FolderScan
from cnnbench.errors import DataError
from cnnbench.utils.io import atomic_open, atomic_write_json, read_json, remove_dead_temp_files
from cnnbench.utils.lock import DirectoryLock, LockOwner, lock_wait_seconds
from cnnbench.utils.orphans import die_with_parent, start_orphan_watchdog

log = logging.getLogger("cnnbench.data")

CACHE_FORMAT = "cnnbench-decoded-v1"
_HEADER_BYTES = 128  # fixed-size .npy header, so the row count can be rewritten in place
_CHUNK_FILES = 32  # files per process-pool task
_SERIAL_BELOW = 200  # fewer files than this: decode in-process (pool start-up costs more)


@dataclass
class DecodedImages:
    """A decoded tree. ``images`` rows follow ``files``; ``labels`` index ``classes``."""

    images: np.ndarray  # (N, C, S, S) uint8, read-only memmap
    files: list[str]
    labels: np.ndarray  # (N,) int64
    classes: list[str]
    skipped: list[dict[str, str]]
    directory: Path
    built: bool  # True when this call decoded the images (False: read from the cache)
    seconds: float  # decode time when built, else load time


LOCK_HEARTBEAT_S = 10.0  # the holder refreshes the lock's mtime this often
LOCK_STALE_S = 60.0  # a heartbeat this old means the holder stopped or died (on any host)
LOCK_WAIT_S = 1800.0  # the longest a run waits for another process's decode ($CNNBENCH_LOCK_WAIT)


def cache_key(scan: FolderScan, size: int, mode: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_FORMAT, str(scan.root.resolve()), size, mode]).encode())
    for name, s, m in zip(scan.files, scan.sizes, scan.mtimes, strict=True):
        # a file name that is not valid UTF-8 (from a Windows or Latin-1 archive) reaches Python with
        # surrogate escapes: hashed as the bytes on disk (the same key as before for every UTF-8 name)
        h.update(f"{name}\0{s}\0{m}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:16]


def cache_dir_for(scan: FolderScan, size: int, mode: str, cache_root: Path, label: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label)[:60]
    return cache_root / f"{safe}-{size}px-{mode.lower()}-{cache_key(scan, size, mode)}"


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """A version-1.0 .npy header for uint8 C-order ``shape``, padded to exactly ``_HEADER_BYTES``."""
    text = repr({"descr": "|u1", "fortran_order": False, "shape": tuple(int(s) for s in shape)})
    body_len = _HEADER_BYTES - 10
    body = text.ljust(body_len - 1) + "\n"
    if len(body) != body_len:
        raise ValueError(f"npy header for shape {shape} does not fit in {_HEADER_BYTES} bytes")
    return b"\x93NUMPY\x01\x00" + body_len.to_bytes(2, "little") + body.encode("latin1")


def _results(paths: list[str], size: int, mode: str, workers: int) -> Iterator[np.ndarray | str]:
    """Decoded arrays (or skip reasons) in file order, from a process pool with a bounded window."""
    if workers <= 1 or len(paths) < _SERIAL_BELOW:
        for p in paths:
            yield from decode_many([p], size, mode)
        return
    from concurrent.futures import ProcessPoolExecutor

    chunks = [paths[i : i + _CHUNK_FILES] for i in range(0, len(paths), _CHUNK_FILES)]
    # never more processes than chunks, nor than a few per core (--decode-workers 500 on 2 cores)
    workers = max(1, min(workers, len(chunks), 4 * default_workers()))
    # The platform's default start method (fork on Linux up to Python 3.13, like torch's DataLoader):
    # workers start in milliseconds and run only decode.py (NumPy + Pillow, no OpenMP). "spawn"
    # re-imported the caller's main module (torch) in every worker: 3-8 s of start-up on 2 busy cores.
    pool = ProcessPoolExecutor(workers, initializer=_decode_worker_init, initargs=(os.getpid(),))
    try:
        window: deque = deque()
        it = iter(chunks)
        for chunk in it:
            window.append(pool.submit(decode_many, chunk, size, mode))
            if len(window) >= 4 * workers:
                break
        while window:
            done = window.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                window.append(pool.submit(decode_many, nxt, size, mode))
            yield from done
    except BaseException:
        # an error or Ctrl-C in the caller: queued chunks are dropped and the workers stopped now,
        # not after they decoded the whole window
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def _decode_worker_init(parent_pid: int) -> None:
    """Decode workers hold nothing worth saving: SIGKILL with their parent, whatever it had installed.

    Forked workers inherit the parent's Python signal handlers (a run's SIGTERM handler only sets a
    flag), so the parent-death signal is SIGKILL; Ctrl-C goes to the whole terminal group, and only
    the parent acts on it.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(parent_pid, signal.SIGKILL)
    start_orphan_watchdog(parent_pid, exit_code=137)


def _stop_pool(pool) -> None:
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        with contextlib.suppress(OSError, AttributeError):
            proc.kill()


def default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(cores, 16))


def _build(scan: FolderScan, size: int, mode: str, directory: Path, workers: int) -> None:
    channels = 3 if mode == "RGB" else 1
    n = len(scan.files)
    per_image = channels * size * size
    paths = [str(scan.root / f) for f in scan.files]
    kept: list[int] = []
    skipped: list[dict[str, str]] = []
    start = time.perf_counter()
    with atomic_open(directory / "images.npy", "w+b") as f:
        f.write(_npy_header((n, channels, size, size)))
        report_every = max(1, n // 10)
        for i, result in enumerate(_results(paths, size, mode, workers)):
            if isinstance(result, str):
                skipped.append({"path": str(scan.root / scan.files[i]), "reason": result})
            else:
                # written in order, compact (unreadable files leave no hole), through write() rather than a
                # memory map of a sparse file: a full disk is then an OSError here, not a SIGBUS that kills
                # the process without a word
                f.write(np.ascontiguousarray(result, dtype=np.uint8).tobytes())
                kept.append(i)
            if (i + 1) % report_every == 0:
                log.info("decoded %d/%d images (%.0f/s)", i + 1, n, (i + 1) / (time.perf_counter() - start))
        if not kept:
            raise DataError(
                f"{scan.root}: none of the {n} image files could be decoded (first: {skipped[0]['path']}: "
                f"{skipped[0]['reason']})"
            )
        f.seek(0)
        f.write(_npy_header((len(kept), channels, size, size)))
        f.truncate(_HEADER_BYTES + len(kept) * per_image)
    atomic_write_json(
        directory / "index.json",
        {
            "format": CACHE_FORMAT,
            "root": str(scan.root.resolve()),
            "size": size,
            "mode": mode,
            "classes": scan.classes,
            "files": [scan.files[i] for i in kept],
            "labels": [scan.labels[i] for i in kept],
            "skipped": skipped,
            "decode_seconds": round(time.perf_counter() - start, 3),
            "workers": workers,
        },
    )


def _load(directory: Path, built: bool, seconds: float) -> DecodedImages | None:
    index_path, images_path = directory / "index.json", directory / "images.npy"
    if not index_path.is_file() or not images_path.is_file():
        return None
    try:
        index = read_json(index_path)
        images = np.load(images_path, mmap_mode="r")
    except Exception:  # a damaged cache is rebuilt, not reported
        return None
    try:  # a damaged or hand-edited index (labels out of range, lists of other lengths) is rebuilt too
        files, classes = list(index["files"]), list(index["classes"])
        labels = np.asarray(index["labels"], dtype=np.int64)
        if (
            index.get("format") != CACHE_FORMAT
            or images.ndim != 4
            or images.shape[0] != len(files)
            or labels.shape != (len(files),)
            or (labels.size and not 0 <= labels.min() <= labels.max() < len(classes))
        ):
            return None
        return DecodedImages(
            images=images,
            files=files,
            labels=labels,
            classes=classes,
            skipped=list(index["skipped"]),
            directory=directory,
            built=built,
            seconds=float(index.get("decode_seconds", 0.0)) if built else seconds,
        )
    except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
        return None


def decode_folder(
    scan: FolderScan, size: int, mode: str, cache_root: Path, label: str, workers: int | None = None
) -> DecodedImages:
    """The decoded images of ``scan`` at ``size``×``size`` in ``mode`` ("RGB" or "L"), decoding only once.

    Raises:
        DataError: no file of the tree could be decoded.
        OutputError: the cache directory cannot be written (set $CNNBENCH_CACHE elsewhere).
    """
    directory = cache_dir_for(scan, size, mode, cache_root, label)
    t0 = time.perf_counter()
    hit = _load(directory, False, 0.0)
    if hit is not None:
        hit.seconds = time.perf_counter() - t0
        return hit
    directory.mkdir(parents=True, exist_ok=True)
    lock = DirectoryLock(directory, heartbeat_s=LOCK_HEARTBEAT_S, stale_after_s=LOCK_STALE_S)
    wait_s = lock_wait_seconds(LOCK_WAIT_S)

    def waiting(owner: LockOwner) -> None:
        log.info(
            "%s is decoding %s; waiting for it (at most %.0f s; lock file %s)",
            owner.describe(),
            directory,
            wait_s,
            lock.path,
        )

    lock.acquire(wait_s=wait_s, on_wait=waiting)
    for line in lock.taken_over:
        log.info("%s", line)
    try:
        hit = _load(directory, False, 0.0)  # built by the process we waited for
        if hit is not None:
            hit.seconds = time.perf_counter() - t0
            return hit
        # holding the lock, every temporary file here is a dead writer's (a decode killed mid-write)
        remove_dead_temp_files(directory, every=True)
        log.info("decoding %d images of %s once into %s", len(scan.files), scan.root, directory)
        _build(scan, size, mode, directory, workers or default_workers())
    finally:
        lock.release()
    out = _load(directory, True, 0.0)
    if out is None:  # pragma: no cover - only if the files vanish between write and read
        raise DataError(f"decode-once cache {directory} was written but cannot be read back")
    return out


def read_npy_shape(path: Path) -> tuple[int, ...]:
    """The shape recorded in a .npy header (for tools and tests)."""
    with open(path, "rb") as f:
        f.read(8)
        n = int.from_bytes(f.read(2), "little")
        return tuple(ast.literal_eval(f.read(n).decode("latin1"))["shape"])
