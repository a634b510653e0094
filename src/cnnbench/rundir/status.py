"""How a run stands: the one list of statuses, written to summary.json and shown in every table."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """A run's status. A ``str``, so ``Status.COMPLETED == "completed"`` and JSON writes the value.

    The first five end a run and are written to ``summary.json``; the others describe a run that has
    no readable summary (yet), as the report and a study list it.
    """

    COMPLETED = "completed"  # the planned work ran
    EARLY_STOPPED = "early_stopped"  # early stopping, or --stop-at-target reached the target
    DIVERGED = "diverged"  # the loss became NaN/Inf; the last good checkpoint is kept
    INTERRUPTED = "interrupted"  # SIGTERM/SIGINT; --resume continues it
    FAILED = "failed"  # an error (a study writes the summary; the message is in ``error``)
    RUNNING = "running"  # no summary yet, and a live process holds the study
    MISSING = "missing"  # no summary, nobody running it (or no directory at all)
    UNREADABLE = "unreadable"  # summary.json is damaged
    NOT_STARTED = "not_started"  # a study was stopped before this run began
    UNKNOWN = "unknown"

    __str__ = str.__str__  # "completed", not "Status.COMPLETED", in f-strings and messages
    __format__ = str.__format__


# OK: the test figures are final and enter means. FINISHED: re-running the same recipe would give the
# same result, so a study never retries it.
STATUS_OK = (Status.COMPLETED.value, Status.EARLY_STOPPED.value)
STATUS_FINISHED = (*STATUS_OK, Status.DIVERGED.value)
