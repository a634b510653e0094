"""Atomic file writes: a reader never sees a half-written file.

Every result file (summary.json, metrics.csv, checkpoints, reports) is written to a temporary
file in the same directory, flushed and fsynced, then renamed over the target. ``os.replace`` is
atomic on POSIX, so a crash, SIGKILL or full disk leaves either the old file or the new one.

A temporary file is named ``.<name>.<host>-<pid>.<random>.tmp`` (host: a short hash of the host
name). A writer killed mid-write (SIGKILL, power loss) leaves its temporary file behind; the next
writer of the same file removes every one whose process is gone on this host, or that is a day old.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from cnnbench.errors import OutputError

_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.EISDIR: "it is a directory, not a file",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.ENAMETOOLONG: "the name is too long (file systems allow 255 bytes per name, 4096 per path)",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EFBIG: "the file is larger than this process may write (ulimit -f)",
    errno.EMFILE: "too many open files (ulimit -n)",
    errno.EIO: "an input/output error (a failing disk or network file system)",
}


def describe_os_error(exc: OSError) -> str:
    """A short human reason for an OSError ("the disk is full", ...)."""
    return _REASONS.get(exc.errno or 0, exc.strerror or str(exc))


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file that replaces ``path`` only if the block finishes without error.

    Raises:
        OutputError: naming ``path`` when the directory cannot be created or written.
    """
    path = Path(path)
    # said on a failed write only when there is one: a new file has no previous version to keep
    kept = "; the previous version is kept" if path.is_file() else ""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_dead_temp_files(path.parent, target=path.name)
        fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(path.name)}{_writer_tag()}.", suffix=".tmp", dir=path.parent)
        # mkstemp creates 0600; a results folder is shared like any file the user writes (0644 under 022)
        os.fchmod(fd, 0o666 & ~_umask())
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {describe_os_error(exc)}") from exc
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _unlink_quietly(tmp)
        raise OutputError(f"cannot write {path}: {describe_os_error(exc)}{kept}") from exc
    except RuntimeError as exc:
        _unlink_quietly(tmp)
        # torch's zip writer reports a failed write as RuntimeError ("[enforce fail at inline_container.cc]
        # unexpected pos", "PytorchStreamWriter failed writing file"), most often because the disk is full
        if "inline_container" not in str(exc) and "PytorchStreamWriter" not in str(exc):
            raise
        raise OutputError(f"cannot write {path}: {_write_failure_reason(path)}{kept}") from exc
    except BaseException:
        _unlink_quietly(tmp)
        raise


_TEMP_NAME_CHARS = 100  # of the target's name in its temporary file's: the whole name stays under NAME_MAX
_OLD_TEMP_S = 86_400.0  # a temporary file untouched for a day is a dead writer's, whoever wrote it
# after the target's prefix: "<host hash>-<pid>.<mkstemp's random part>.tmp" (or, from older versions,
# "<random>.tmp" alone)
_TEMP_REST = re.compile(r"^(?:(?P<host>[0-9a-f]{6})-(?P<pid>\d+)\.)?[A-Za-z0-9_]{6,12}\.tmp$")


def _temp_prefix(name: str) -> str:
    return f".{name[:_TEMP_NAME_CHARS]}."


def _host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode("utf-8", "surrogateescape")).hexdigest()[:6]


def _writer_tag() -> str:
    return f"{_host_tag()}-{os.getpid()}"


def remove_dead_temp_files(directory: str | os.PathLike[str], target: str | None = None, every: bool = False) -> int:
    """Remove the temporary files that writers killed mid-write left in ``directory``.

    Args:
        target: only those of this file name (the next writer of a file cleans up after the last one).
        every: every temporary file of ours in ``directory``, live writer or not: for a caller that holds
            the directory's lock, so that no other process writes there.

    Returns:
        How many were removed. Errors (another user's file, a read-only directory) are ignored.
    """
    import time

    from cnnbench.utils.lock import pid_alive

    prefix = _temp_prefix(target) if target is not None else "."
    removed = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return 0
    host = _host_tag()
    for entry in entries:
        if not entry.name.startswith(prefix) or not entry.name.endswith(".tmp"):
            continue
        rest = entry.name[len(prefix) :]
        if target is None:  # any target: the rest follows the target's name and its dot
            match = next((m for m in map(_TEMP_REST.match, _suffixes(rest)) if m), None)
        else:
            match = _TEMP_REST.match(rest)
        if match is None:
            continue
        try:
            old = time.time() - entry.stat(follow_symlinks=False).st_mtime > _OLD_TEMP_S
        except OSError:
            continue
        dead = match["host"] == host and match["pid"] is not None and not pid_alive(int(match["pid"]))
        if every or dead or old:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed += 1
    return removed


def _suffixes(rest: str) -> list[str]:
    """Every tail of ``rest`` after a dot (``a.b.c`` -> ``b.c``, ``c``): where a target's name may end."""
    parts = rest.split(".")
    return [".".join(parts[i:]) for i in range(1, len(parts))]


def _umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_failure_reason(path: Path) -> str:
    import shutil

    try:  # a file-size limit (ulimit -f) fails torch's writer the same way a full disk does
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        if soft != resource.RLIM_INFINITY:
            return f"the file is larger than this process may write (ulimit -f {soft // 1024})"
    except (ImportError, OSError, ValueError):
        pass

    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return "the write failed (the disk may be full)"
    return "the disk is full" if free < 2**30 else "the write failed (the disk may be full)"


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    # backslashreplace: a file name that is not valid UTF-8 (surrogate escapes) is written as \udcXX
    # text instead of failing the whole report or config
    atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"))


def to_jsonable(obj: Any) -> Any:
    """Convert numpy/torch scalars and paths so ``json.dumps`` accepts them; NaN/Inf become null."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays/scalars, torch tensors
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    return obj


def dumps_json(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), indent=2, sort_keys=False, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj))


def atomic_save(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` atomically through ``write(file)``, e.g. ``lambda f: torch.save(obj, f)``."""
    with atomic_open(path, "wb") as f:
        write(f)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows (cnnbench writes a missing figure as null)")


def loads_json(text: str) -> Any:
    """``json.loads`` without Python's extensions: ``NaN``, ``Infinity`` and ``-Infinity`` are refused
    (ValueError), so that a hand-edited file can never slip a non-finite number into a figure or a mean."""
    return json.loads(text, parse_constant=_no_constants)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file; a missing or malformed file (NaN and Infinity included) raises an error naming it."""
    from cnnbench.errors import CnnbenchError

    path = Path(path)
    try:
        return loads_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CnnbenchError(f"{path} does not exist") from exc
    except IsADirectoryError as exc:
        raise CnnbenchError(f"{path} is a directory, not a JSON file") from exc
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise CnnbenchError(f"{path} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise CnnbenchError(f"{path} is not valid JSON: nested thousands of levels deep") from exc


@contextlib.contextmanager
def removed_if_left_empty(path: str | os.PathLike[str]) -> Iterator[None]:
    """On an error in the block, remove ``path`` and the parents the block created, when they are empty.

    A command refused after it made its output directory (a bad weights file, a missing dataset) then
    leaves nothing behind; a directory that holds anything (a failed run's files) is kept.
    """
    path = Path(path)
    created = []
    for parent in (path, *path.parents):
        try:
            if parent.exists():
                break
        except OSError:  # a name too long: the command reports it; nothing of ours to remove
            return (yield)
        created.append(parent)
    try:
        yield
    except BaseException:
        for directory in created:  # deepest first: each is removed only if empty
            try:
                directory.rmdir()
            except OSError:
                break
        raise


def check_dir_path(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """Refuse a directory path that is a file, or lies under one, creating nothing (a dry run's check).

    Raises:
        OutputError: naming the flag and the file in the way, as ``check_writable_dir`` does.
    """
    path = Path(path)
    try:
        for existing in (path, *path.parents):
            if existing.exists():
                if not existing.is_dir():
                    where = "" if existing == path else f"{existing} "
                    raise OutputError(f"{flag} {path}: {where}is a file, not a directory")
                break
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"{flag} {path}: {describe_os_error(exc)}") from exc
    return path


def check_writable_dir(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """Create ``path`` if needed and prove it is writable, before any long work starts.

    Raises:
        OutputError: naming the flag and the directory.
    """
    path = check_dir_path(path, flag)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{flag} {path}: cannot write there ({describe_os_error(exc)})") from exc
    return path
