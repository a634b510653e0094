"""One process-wide stop request, set by SIGTERM or Ctrl-C and honoured at the next safe point.

``fit`` polls it between steps and checkpoints before returning an ``interrupted`` run; a study
installs it around all of its runs, so the request that stops the current run also stops the study
(no next run starts). Installs nest: the innermost ``installed()`` leaves the handlers of the
outermost in place, so one signal is seen by every layer. A second Ctrl-C raises KeyboardInterrupt
at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}  # the shell's 128 + signal number
# The end of a stopped run's error: `cnnbench train`'s way back. A study's runs say the study's instead
# (`cnnbench run` has no --resume: the same command resumes it), in summary.json and so in the report.
RESUME_HINT = "; resume with --resume"
STUDY_RESUME_HINT = "; run the same command to resume"


class StopRequest:
    def __init__(self) -> None:
        self.signal: str | None = None  # SIGTERM or SIGINT once asked
        self._depth = 0
        self._old: dict[int, Any] = {}

    @property
    def set(self) -> bool:
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.signal or "", 1)

    def request(self, name: str) -> None:
        """Ask everything running in this process to stop (as the signal ``name`` would)."""
        self.signal = self.signal or name

    def _handle(self, signum: int, frame: Any) -> None:  # noqa: ARG002
        if self.set and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.request(signal.Signals(signum).name)

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """Handle SIGTERM and SIGINT inside the block (main thread only; a no-op elsewhere)."""
        main = threading.current_thread() is threading.main_thread()
        if main and self._depth == 0:
            self.signal = None  # a new outermost user starts with no request pending
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            if main and self._depth == 0:
                for sig, handler in self._old.items():
                    signal.signal(sig, handler)
                self._old.clear()

    def install_forever(self) -> None:
        """For a worker process: handle the signals until it exits."""
        if threading.current_thread() is threading.main_thread() and self._depth == 0:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._handle)
            self._depth = 1


STOP = StopRequest()
