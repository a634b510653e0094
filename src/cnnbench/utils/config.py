"""Validation helpers for config dataclasses: every message names the flag and what is allowed."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from cnnbench.errors import ConfigError

T = TypeVar("T")


def check_choice(flag: str, value: Any, allowed: Iterable[Any]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{flag} {value!r}: expected one of {', '.join(map(str, allowed))}")


def check_range(
    flag: str,
    value: float | int,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise ConfigError unless ``low <= value <= high`` (bounds optional, inclusivity configurable)."""
    ok = True
    if low is not None:
        ok = ok and (value >= low if low_inclusive else value > low)
    if high is not None:
        ok = ok and (value <= high if high_inclusive else value < high)
    if not ok:
        lo = "" if low is None else f"{'≥' if low_inclusive else '>'} {low}"
        hi = "" if high is None else f"{'≤' if high_inclusive else '<'} {high}"
        raise ConfigError(f"{flag} {value!r}: expected a number {' and '.join(p for p in (lo, hi) if p)}")


def flag_name(field: str) -> str:
    """``warmup_epochs`` -> ``--warmup-epochs``."""
    return "--" + field.replace("_", "-")


def from_mapping(cls: type[T], values: Mapping[str, Any], where: str) -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys with the allowed ones listed.

    Args:
        where: what the mapping came from, for messages ("study.yaml: recipe").
    """
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(names)}")
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
