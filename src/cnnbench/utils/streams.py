"""Standard streams that can never turn a finished command into a failed one.

A command may start with stderr closed (``2>&-``), stdout or stderr on a full disk (``2>/dev/full``),
or write into a pipe whose reader left (``cnnbench train ... 2>&1 | head``). cnnbench's messages for
people are not its results: a run that completed stays completed, with exit status 0, whatever
happens to them. ``guard_standard_streams`` (first thing in ``cnnbench.cli.main``):

- reopens a closed file descriptor 0, 1 or 2 on ``/dev/null``, so that the next file cnnbench or a
  library opens (a checkpoint, a log) cannot become fd 2 and receive C libraries' messages, and so that
  worker processes inherit a usable set;
- gives Python a stream where it has none (``sys.stderr is None`` when fd 2 was closed at start-up);
- makes stderr drop what it cannot write (closed pipe, full disk, I/O error) instead of raising;
- writes characters stdout's encoding lacks (a file name that is not valid UTF-8) as escapes.

stdout keeps raising: with ``--json`` it carries the result, and losing it is an error (the CLI says
so). A command started with stdout closed (``>&-``) runs, and fails only if it has output to give.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from typing import Any, TextIO


class TolerantStream:
    """A text stream whose write and flush never raise: after the first failure it drops what follows."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                self._stream.write(text)
                if "\n" in text:
                    self._stream.flush()  # line by line, so that a failure is met here and not at exit
            except (OSError, ValueError):  # EPIPE, ENOSPC, EIO; ValueError: the stream was closed
                self._give_up()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._give_up()

    def isatty(self) -> bool:
        try:
            return not self.broken and self._stream.isatty()
        except (OSError, ValueError):
            return False

    def _give_up(self) -> None:
        self.broken = True
        # the failed bytes stay in the wrapper's buffer, and the interpreter would try them again at exit
        # ("Exception ignored ... BrokenPipeError"): point the descriptor at /dev/null and empty the buffer
        with contextlib.suppress(OSError, ValueError, AttributeError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, buffer, errors, ...
        return getattr(self._stream, name)


class ClosedStdout(io.TextIOBase):
    """stdout of a process started with fd 1 closed: any output is an error (as ``ls >&-`` says), not lost."""

    def write(self, text: str) -> int:
        if not text:
            return 0
        raise OSError(errno.EBADF, "standard output is closed", "<stdout>")

    def writable(self) -> bool:
        return True


def _fill_closed_descriptors() -> set[int]:
    """Open /dev/null on each of fds 0, 1, 2 that is closed; the ones filled."""
    filled = set()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            filled.add(fd)
    return filled


def _text_on(fd: int, mode: str) -> TextIO:
    return io.TextIOWrapper(
        open(fd, mode + "b", closefd=False, buffering=0 if mode == "w" else -1),  # noqa: SIM115 - process-wide
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
        write_through=True,
    )


def guard_standard_streams() -> None:
    """Make stdin, stdout and stderr safe for the rest of the process (see the module docstring)."""
    filled = _fill_closed_descriptors()
    null_text = lambda mode: open(os.devnull, mode, encoding="utf-8")  # noqa: E731, SIM115
    if sys.stdin is None:
        sys.stdin = _text_on(0, "r") if 0 in filled else null_text("r")
    if sys.stdout is None:
        # fd 1 was closed (now /dev/null) or holds a file Python did not give us: never write into the latter
        sys.stdout = ClosedStdout() if 1 in filled else null_text("w")
    if sys.stderr is None:
        sys.stderr = _text_on(2, "w") if 2 in filled else null_text("w")
    with contextlib.suppress(AttributeError, ValueError, io.UnsupportedOperation):
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    if not isinstance(sys.stderr, TolerantStream):
        sys.stderr = TolerantStream(sys.stderr)  # type: ignore[assignment]
