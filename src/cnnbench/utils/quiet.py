"""Warnings that are not for the user: numpy's RuntimeWarnings about empty slices and NaN arithmetic.

cnnbench handles missing values on purpose (a class absent from a split is NaN, an empty mean is
"no value"), checks every figure it reports for finiteness, and says in words what is missing; numpy's
"Mean of empty slice" or "invalid value encountered in divide" would only alarm. Library users keep
their own warning filters: this is called by the CLI and in the worker processes it starts.
"""

from __future__ import annotations

import warnings

# numpy's messages (numpy warns with stacklevel=2, so the warning's module is the caller's, not numpy's:
# filtered by message)
NUMERIC_MESSAGES = (
    "Mean of empty slice",
    "All-NaN slice encountered",
    "Degrees of freedom <= 0",
    "invalid value encountered",
    "divide by zero encountered",
    "overflow encountered",
    "underflow encountered",
    "Precision loss occurred",
)


def quiet_numeric_warnings() -> None:
    """Ignore numpy's RuntimeWarnings about empty slices and NaN/Inf arithmetic in this process."""
    for message in NUMERIC_MESSAGES:
        warnings.filterwarnings("ignore", message=message, category=RuntimeWarning)
