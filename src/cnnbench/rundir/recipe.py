"""A run's recipe: the part of its config that decides its result, and the hash that groups runs by it.

A study averages runs of one recipe over seeds, and never mixes recipes: the engine (writing
``recipe_hash`` into summary.json), the study and the report (grouping rows) all call this module,
so that "the same recipe" and "what differs between two recipes" mean the same thing everywhere.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Keys of a run's config that identify the run inside its study rather than its recipe: a study
# groups runs by everything else, and averages over the seed.
PER_RUN_KEYS = ("model", "data", "schedule", "seed")
# Keys that never change a result: where things live, how progress is shown, what a runner noted,
# how often to check or save. Two runs that differ only in these have the same recipe.
RUNTIME_KEYS = (
    "progress",
    "notes",
    "device",
    "data_dir",
    "nan_check_every",
    "checkpoint_every_steps",
    "threads",
)
# config.yaml sections written next to the recipe (derived from it, or about the machine).
DERIVED_SECTIONS = ("model_args", "data_config", "resolved")
# Keys of config.yaml about the file itself, not the run.
FILE_KEYS = ("format",)


#: Recipe options added after run directories were first written, with the value that means "not
#: used": a run that leaves one there has the recipe (and hashes) of a run written before it existed.
UNUSED_OPTION_VALUES: dict[str, Any] = {"stop_at_target": False, "lr_find_steps": 60, "val_every_steps": None}


def option_unused(key: str, value: Any) -> bool:
    """``value`` of recipe option ``key`` is the same recipe as a config written before the option existed."""
    return value is None or (key in UNUSED_OPTION_VALUES and value == UNUSED_OPTION_VALUES[key])


def recipe_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe part of a run's config (a TrainConfig dict or a parsed config.yaml): every key but
    the per-run, runtime and derived ones, with numbers normalised (``5`` and ``5.0`` are one value)."""
    skip = set(PER_RUN_KEYS) | set(RUNTIME_KEYS) | set(DERIVED_SECTIONS) | set(FILE_KEYS)
    return {k: _normalise(v) for k, v in sorted(config.items()) if k not in skip and not option_unused(k, v)}


def recipe_hash(config: Mapping[str, Any]) -> str:
    """A 12-hex-digit hash of ``recipe_values(config)``: equal for runs of one recipe, any model or seed."""
    text = json.dumps(recipe_values(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def recipe_differences(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The recipe keys whose values are not the same in every one of ``configs`` (sorted)."""
    values = [recipe_values(c) for c in configs]
    keys = sorted(set().union(*values)) if values else []
    return [k for k in keys if len({json.dumps(v.get(k), default=str) for v in values}) > 1]


def describe_recipe(config: Mapping[str, Any], keys: Iterable[str]) -> str:
    """``"lr=0.002, batch_size=64"``: the values of ``keys`` in one config, for a row label."""
    values = recipe_values(config)
    return ", ".join(f"{k}={_short(values.get(k))}" for k in keys)


def _normalise(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        return value
    if isinstance(value, str):
        # a YAML study file may spell a number as a string ("1e-3"); a recipe is the value, not its spelling
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, Mapping):
        return {str(k): _normalise(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return str(value)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
