"""Validation helpers for config dataclasses: every message names the flag and what is allowed."""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from cnnbench.errors import ConfigError

T = TypeVar("T")


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters, so that an error about a huge value (a list
    pasted where a number belongs, an expanded YAML alias) stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 4]} ..."


def check_choice(flag: str, value: Any, allowed: Iterable[Any]) -> None:
    allowed = list(allowed)
    if value not in allowed:
        raise ConfigError(f"{flag} {value!r}: expected one of {', '.join(map(str, allowed))}")


def accuracy_fraction(flag: str, value: float | int) -> float:
    """An accuracy given as a fraction (0.95) or a percentage (95), as a fraction; the error names the value typed.

    Between 1 and 5 neither reading makes sense (a fraction is at most 1; a target below 5 % is below chance
    for any dataset of fewer than 20 classes), so such a value is refused instead of read as a percentage.
    """
    check_range(flag, value, 0, 100, low_inclusive=False)
    if value <= 1:
        return float(value)
    if value < 5:
        raise ConfigError(
            f"{flag} {value!r}: ambiguous — a fraction is at most 1 and a percentage this low is no target; "
            "write 0.95 or 95 for 95 %"
        )
    return float(value) / 100


def check_range(
    flag: str,
    value: float | int,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
    """Raise ConfigError unless ``low <= value <= high`` (bounds optional, inclusivity configurable).

    NaN and ±inf are refused whatever the bounds: no option of cnnbench means anything at infinity.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{flag} {value!r}: expected a number")
    if not math.isfinite(value):
        raise ConfigError(f"{flag} {value!r}: expected a finite number")
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


def coerce_fields(cls: type, values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``values`` with each scalar converted to its dataclass field's type, or a ConfigError naming the key.

    YAML reads ``1e-3`` as a string and a user may write ``epochs: "3"``: numeric strings are accepted
    for number fields, as timm and Lightning configs do; anything else of the wrong type is refused
    with the key, the value and the type expected. Keys that are not fields pass through unchanged.
    """
    hints = typing.get_type_hints(cls)
    return {k: _coerce(v, hints[k], f"{where}: {k}") if k in hints else v for k, v in values.items()}


def coerce_value(value: Any, hint: Any, where: str) -> Any:
    """One value converted to type ``hint`` (``float``, ``int | None``, ...) as ``coerce_fields`` does."""
    return _coerce(value, hint, where)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    args = typing.get_args(hint) if _is_union(hint) else (hint,)
    optional = type(None) in args
    kinds = [a for a in args if a is not type(None)]
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: a value is required ({_expected(kinds)})")
    if any(typing.get_origin(k) in (list, dict, tuple) or k in (list, dict, tuple, Any) for k in kinds):
        return value  # containers are checked where they are used
    if bool in kinds:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _BOOLS:
            return _BOOLS[value.strip().lower()]
    elif isinstance(value, bool):
        raise ConfigError(f"{where} {short_repr(value)}: expected {_expected(kinds)}")
    if int in kinds and float not in kinds:
        number = _number(value)
        if number is not None and float(number).is_integer():
            return int(number)
    if float in kinds:
        number = _number(value)
        if number is not None:
            return number if int not in kinds else (int(number) if float(number).is_integer() else number)
    if str in kinds and isinstance(value, str):
        return value
    if str in kinds and int in kinds and isinstance(value, int):
        return value
    raise ConfigError(f"{where} {short_repr(value)}: expected {_expected(kinds)}")


_BOOLS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _is_union(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _expected(kinds: list[Any]) -> str:
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}
    return " or ".join(names.get(k, getattr(k, "__name__", str(k))) for k in kinds)
