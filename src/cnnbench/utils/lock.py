"""Exclusive lock files: who holds one, whether that holder is gone, and how long to wait for it.

A lock file records the holder's pid, host, start time, and on Linux the boot id and the process's
own start tick, so that a pid reused after the holder died (or after a reboot) is not taken for the
holder. A lock is *stale*, and taken over, when its holder is provably gone:

- same host, and the pid is dead, belongs to another process now, or dates from an earlier boot;
- the file is empty or not a lock (a crash between creating and writing it) and older than a few seconds;
- it carries a heartbeat (the decode cache: the holder touches the file every few seconds) that has
  not been refreshed for ``stale_after_s`` — the only test that works for a holder on another host
  of a shared file system, or for a file another user's process holds that cannot be read.

Anything else is a live holder: refused at once (study and run directories), or waited for up to a
bound (the decode cache), and then refused with a message that names the file to delete.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnbench.errors import LockedError, OutputError
from cnnbench.utils.io import describe_os_error

# A lock file is created empty and written a moment later: one that is still empty or unparsable
# after this many seconds was left by a process that died in between (or damaged by hand).
GARBAGE_GRACE_S = 10.0
LOCK_WAIT_ENV = "CNNBENCH_LOCK_WAIT"  # seconds a waiting lock (the decode cache) waits for a live holder


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (one we may not signal counts as alive).

    Pids ≤ 0 are refused: ``os.kill(0, 0)`` and ``os.kill(-1, 0)`` ask about process groups and always
    succeed, so a lock file claiming pid 0 or -1 would otherwise look alive for ever.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:  # a pid beyond the C int range: hand-edited
        return False
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A process that has exited but was not yet reaped (its parent died too, and PID 1 of a container
    may never reap it): it answers signals, yet holds nothing."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux ``/proc/PID/stat`` field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # the command name (field 2) is in parentheses and may hold spaces: count from its end
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class LockOwner:
    """What a lock file says about its holder; ``readable`` is False for an empty, garbled or unreadable file."""

    path: Path
    readable: bool
    pid: int | None = None
    host: str | None = None
    started: str | None = None
    boot: str | None = None
    pid_start: int | None = None
    heartbeat_s: float | None = None  # the holder refreshes the file's mtime this often
    age_s: float = 0.0  # seconds since the file last changed (its mtime)
    problem: str = ""  # why it is not readable
    identity: tuple[int, int] | None = None  # (inode, mtime in ns) when read: a takeover removes only this file

    def describe(self) -> str:
        """``process 123 on host since 2026-12-07T10:00:00`` or ``an unknown process``."""
        if not self.readable:
            return "an unknown process"
        return f"process {self.pid} on {self.host} since {self.started}"


def read_owner(path: str | os.PathLike[str]) -> LockOwner | None:
    """The holder a lock file names, or None when there is no lock file."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return LockOwner(path, False, problem=f"unreadable ({describe_os_error(exc)})")
    age, identity = max(0.0, time.time() - st.st_mtime), (st.st_ino, st.st_mtime_ns)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        why = describe_os_error(exc) if isinstance(exc, OSError) else "not UTF-8 text"
        return LockOwner(path, False, age_s=age, problem=f"unreadable ({why})", identity=identity)
    try:
        data = json.loads(text)
        pid = data["pid"]
        if isinstance(pid, bool) or not isinstance(pid, int):
            raise TypeError("pid")
        beat = data.get("heartbeat_s")
        start = data.get("pid_start")
        return LockOwner(
            path,
            True,
            pid=pid,
            host=str(data.get("host")),
            started=str(data.get("started")),
            boot=data.get("boot") if isinstance(data.get("boot"), str) else None,
            pid_start=start if isinstance(start, int) and not isinstance(start, bool) else None,
            heartbeat_s=float(beat) if isinstance(beat, (int, float)) and not isinstance(beat, bool) else None,
            age_s=age,
            identity=identity,
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        problem = "empty" if not text.strip() else "not a cnnbench lock file"
        return LockOwner(path, False, age_s=age, problem=problem, identity=identity)


def stale_reason(owner: LockOwner, stale_after_s: float | None = None) -> str | None:
    """Why ``owner`` provably no longer holds its lock, or None when it may still hold it.

    Args:
        stale_after_s: a lock whose heartbeat (or, when unreadable, whose file) has not changed for
            this long is stale; None: never judged by age (study and run directories).
    """
    if not owner.readable:
        if owner.problem in ("empty", "not a cnnbench lock file") and owner.age_s > GARBAGE_GRACE_S:
            return f"it is {owner.problem} and {owner.age_s:.0f} s old (left by a process that died while writing it)"
        if stale_after_s is not None and owner.age_s > stale_after_s:
            return f"it is {owner.problem or 'unreadable'} and has not changed for {owner.age_s:.0f} s"
        return None
    if owner.host == socket.gethostname() and owner.pid is not None:
        if not pid_alive(owner.pid):
            return f"process {owner.pid} is gone"
        if owner.boot is not None and owner.boot != _boot_id():
            return f"it dates from before this machine restarted (pid {owner.pid} is another process now)"
        if owner.pid_start is not None and process_start(owner.pid) not in (None, owner.pid_start):
            return f"pid {owner.pid} belongs to another process now"
    if owner.heartbeat_s is not None and stale_after_s is not None:
        limit = max(stale_after_s, 4 * owner.heartbeat_s)
        if owner.age_s > limit:
            return f"its holder on {owner.host} has not refreshed it for {owner.age_s:.0f} s (stopped or gone)"
    return None


def lock_is_live(path: str | os.PathLike[str], stale_after_s: float | None = None) -> bool:
    """Whether a lock file exists and its holder may still hold it (a reader's view: nothing is changed)."""
    owner = read_owner(path)
    return owner is not None and stale_reason(owner, stale_after_s) is None


def lock_wait_seconds(default: float) -> float:
    """``$CNNBENCH_LOCK_WAIT`` (seconds) when set to a number ≥ 0, else ``default``."""
    text = os.environ.get(LOCK_WAIT_ENV, "").strip()
    try:
        value = float(text)
    except ValueError:
        return default
    return value if value >= 0 and value == value and value != float("inf") else default


class DirectoryLock:
    """``with DirectoryLock(study_dir):`` holds ``study_dir/.lock`` or raises ``LockedError``.

    Args:
        name: the lock file's name inside ``directory``.
        heartbeat_s: refresh the file's mtime this often while held, so that other hosts can tell a live
            holder from a dead one (``stale_after_s``); None: no heartbeat.
        stale_after_s: a heartbeat (or an unreadable file) older than this is stale; None: never by age.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        name: str = ".lock",
        *,
        heartbeat_s: float | None = None,
        stale_after_s: float | None = None,
    ) -> None:
        self.path = Path(directory) / name
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self.taken_over: list[str] = []  # why each stale lock was taken over (for the caller's notes)
        self._held = False
        self._stop = threading.Event()

    def acquire(self, wait_s: float = 0.0, on_wait: Callable[[LockOwner], None] | None = None) -> None:
        """Take the lock, waiting up to ``wait_s`` seconds for a live holder.

        Args:
            on_wait: called once, with the holder, when this call starts waiting.

        Raises:
            LockedError: a live holder kept it (naming the holder and the lock file to delete).
            OutputError: the lock file cannot be created (read-only directory, full disk).
        """
        deadline = time.monotonic() + max(0.0, wait_s)
        told = False
        takeovers = 0
        for _ in range(100_000):  # bounded: each pass takes the lock, takes over a stale one, sleeps or ends
            if self._try_create():
                return
            owner = read_owner(self.path)
            if owner is None:
                continue  # released between our attempt and the read: try again at once
            why = stale_reason(owner, self.stale_after_s)
            if why is not None and takeovers < 20:
                takeovers += 1
                self._take_over(owner, why)
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockedError(self._refusal(owner, waited=wait_s))
            if not told and on_wait is not None:
                on_wait(owner)
                told = True
            time.sleep(min(1.0, left))
        raise LockedError(f"could not take the lock {self.path}")

    def _try_create(self) -> bool:
        info: dict[str, Any] = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "boot": _boot_id(),
            "pid_start": process_start(os.getpid()),
        }
        if self.heartbeat_s is not None:
            info["heartbeat_s"] = self.heartbeat_s
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        except OSError as exc:
            raise OutputError(f"cannot create lock file {self.path}: {describe_os_error(exc)}") from exc
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({k: v for k, v in info.items() if v is not None}, f)
        except OSError as exc:
            self.path.unlink(missing_ok=True)  # an empty lock would block others until its grace ends
            raise OutputError(f"cannot write lock file {self.path}: {describe_os_error(exc)}") from exc
        self._held = True
        if self.heartbeat_s is not None:
            self._stop.clear()
            threading.Thread(target=self._beat, name="cnnbench-lock-heartbeat", daemon=True).start()
        return True

    def _take_over(self, owner: LockOwner, why: str) -> None:
        """Remove a stale lock without ever removing a fresh one that another waiter just created.

        The file is renamed aside first (atomic, also on NFS); if what was renamed is not the file judged
        stale (another waiter took over in between and created its own), it is put back.
        """
        if owner.identity is None:
            raise LockedError(f"{self.path} is stale ({why}) but cannot be examined; delete it by hand")
        aside = self.path.with_name(f"{self.path.name}.stale.{os.getpid()}.{threading.get_ident()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise LockedError(
                f"{self.path} is stale ({why}) but cannot be removed ({describe_os_error(exc)}); delete it by hand"
            ) from exc
        try:
            moved = os.stat(aside)
            if (moved.st_ino, moved.st_mtime_ns) != owner.identity:
                with contextlib.suppress(OSError):
                    os.link(aside, self.path)  # fails if yet another lock exists: never clobbers one
                return
            self.taken_over.append(f"took over the stale lock {self.path}: {why}")
        finally:
            with contextlib.suppress(OSError):
                os.unlink(aside)

    def _refusal(self, owner: LockOwner, waited: float) -> str:
        who = owner.describe()
        if not owner.readable:
            who += f" (the lock file is {owner.problem})"
        if waited > 0:
            return (
                f"{self.path.parent} is still in use by {who} after waiting {waited:.0f} s (lock file {self.path}); "
                f"if that process is gone or hung, delete {self.path} and run again"
            )
        return (
            f"{self.path.parent} is in use by {who} (lock file {self.path}); "
            "wait for it to finish, or delete the lock file if that process is gone"
        )

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        if self._held:
            self._stop.set()
            owner = read_owner(self.path)
            # never remove a lock that another process took over (it judged this one stale)
            if owner is not None and (not owner.readable or owner.pid == os.getpid()):
                self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
