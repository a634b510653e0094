"""`cnnbench run`'s flags that are not study keys: --workers and --shard, parsed and checked by name."""

from __future__ import annotations

import re

from cnnbench.errors import CnnbenchError, ConfigError
from cnnbench.study.spec import WORKERS_AUTO


def check_workers_flag(value: str | None) -> int | str | None:
    if value is None:
        return None
    if value == WORKERS_AUTO:
        return value
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"--workers {value!r}: expected a whole number ≥ 1 or 'auto'") from None
    if n < 1:
        raise ConfigError(f"--workers {value!r}: expected a whole number ≥ 1 or 'auto'")
    return n


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"1/4"`` → (1, 4); index from 0."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m or int(m.group(2)) < 1 or int(m.group(1)) >= int(m.group(2)):
        raise CnnbenchError(f"--shard {text!r}: expected i/n with 0 ≤ i < n, e.g. 0/2")
    return int(m.group(1)), int(m.group(2))
