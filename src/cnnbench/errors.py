"""User-facing errors.

Every error a user can cause (a bad flag, a missing file, a corrupt dataset) is raised as a
``CnnbenchError`` subclass whose message names the flag, file or value and what was expected.
The CLI prints the message alone, without a traceback, and exits with status 2.
"""

from __future__ import annotations


class CnnbenchError(Exception):
    """Base class of errors that the CLI reports as one clear message."""


class ConfigError(CnnbenchError, ValueError):
    """An option, flag or study-file key has a value that is not allowed."""


class DataError(CnnbenchError):
    """A dataset is missing, malformed or inconsistent."""


class DataNotFoundError(DataError, FileNotFoundError):
    """A dataset was not found in any of the places cnnbench looks."""


class ChecksumError(DataError):
    """A downloaded or local file does not have its published checksum."""


class ModelError(CnnbenchError):
    """An unknown model, or a model that cannot be built as asked."""


class WeightsNotFoundError(ModelError, FileNotFoundError):
    """A pretrained weights file is not where cnnbench expects it."""


class WeightsDownloadError(ModelError):
    """Published weights could not be downloaded: no connection, an interrupted transfer, a wrong checksum."""


class CheckpointError(CnnbenchError):
    """A checkpoint file is missing, truncated or not a cnnbench checkpoint."""


class OutputError(CnnbenchError, OSError):
    """A result file could not be written (read-only directory, full disk, ...)."""


class ResultsError(CnnbenchError):
    """A study or run directory holds no results, or a result file cannot be read."""


class LockedError(CnnbenchError):
    """Another cnnbench process holds the lock on an output directory."""


class DivergedError(CnnbenchError):
    """The loss became NaN or infinite."""
