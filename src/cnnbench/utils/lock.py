"""An exclusive lock file on an output directory, so two processes never write one study."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from cnnbench.errors import LockedError, OutputError
from cnnbench.utils.io import describe_os_error


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DirectoryLock:
    """``with DirectoryLock(study_dir):`` holds ``study_dir/.lock`` or raises ``LockedError``.

    The lock file records pid, host and start time. A lock left by a dead process on this host
    (SIGKILL, power loss) is taken over; a live one is refused with its owner named.
    """

    def __init__(self, directory: str | os.PathLike[str], name: str = ".lock") -> None:
        self.path = Path(directory) / name
        self._held = False

    def acquire(self) -> None:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._read_owner()
                if owner is not None and owner.get("host") == info["host"] and not pid_alive(int(owner["pid"])):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                who = (
                    f"process {owner['pid']} on {owner['host']} since {owner['started']}"
                    if owner
                    else "another process"
                )
                raise LockedError(
                    f"{self.path.parent} is in use by {who} (lock file {self.path}); "
                    "wait for it to finish, or delete the lock file if that process is gone"
                ) from None
            except OSError as exc:
                raise OutputError(f"cannot create lock file {self.path}: {describe_os_error(exc)}") from exc
            with os.fdopen(fd, "w") as f:
                json.dump(info, f)
            self._held = True
            return
        raise LockedError(f"could not take the lock {self.path}")

    def _read_owner(self) -> dict | None:
        try:
            owner = json.loads(self.path.read_text())
            int(owner["pid"])
            return owner
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def release(self) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False

    def __enter__(self) -> DirectoryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_is_live(path: str | os.PathLike[str]) -> bool:
    """Whether a process still holds the lock file ``path`` (a ``DirectoryLock``'s): its process is alive
    on this host, or it is another host's (assumed alive). A lock file that cannot be read counts as
    held while it exists."""
    path = Path(path)
    try:
        owner = json.loads(path.read_text())
        pid, host = int(owner["pid"]), owner.get("host")
    except (OSError, ValueError, KeyError, TypeError):
        return path.exists()
    if host != socket.gethostname():
        return True  # another machine's process: assume alive
    return pid_alive(pid)
