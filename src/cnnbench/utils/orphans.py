"""Worker processes that die with their parent: no study worker trains on, and no decode worker
decodes on, after the process that started it was killed (SIGKILL runs no cleanup code).

Two mechanisms, because neither suffices alone: Linux's parent-death signal (``PR_SET_PDEATHSIG``)
reaches a worker the moment its parent dies, and a watchdog thread ends a worker whose parent is
gone but that outlived the signal (it handled it, or it runs where prctl does not exist).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> None:
    """Linux: deliver ``sig`` to this process when ``parent_pid`` (its parent) dies.

    The kernel ties the signal to the thread that forked this process; callers fork their workers
    from the thread that lives as long as the pool. When the parent died before the signal was armed
    (``getppid`` is no longer ``parent_pid``), ``sig`` is raised at once.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig))
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # re-parented (to init or a subreaper): the parent is gone
        os.kill(os.getpid(), sig)


def start_orphan_watchdog(
    parent_pid: int, may_exit: Callable[[], bool] = lambda: True, exit_code: int = 143, every_s: float = 0.5
) -> threading.Thread:
    """A daemon thread that ends this process (``os._exit``) once ``parent_pid`` is no longer its parent
    and ``may_exit()`` is true (a study worker first checkpoints its run)."""

    def watch() -> None:
        while True:
            time.sleep(every_s)
            if os.getppid() != parent_pid and may_exit():
                os._exit(exit_code)

    thread = threading.Thread(target=watch, name="cnnbench-orphan-watchdog", daemon=True)
    thread.start()
    return thread
