"""Stratified, seeded splits and the saved split lists that make every run of a study see the same images.

Every split draws from its own random stream, ``np.random.default_rng([seed, purpose])``, so the
val slice does not change when, say, the Caltech train/test protocol changes.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnnbench.errors import DataError, OutputError
from cnnbench.utils.io import atomic_write_json

_TRAIN_TEST, _VAL, _SUBSET, _SAMPLE, _VAL_SUBSET, _TEST_SUBSET = 1, 2, 3, 4, 5, 6
PURPOSES = {
    "train_test": _TRAIN_TEST,
    "val": _VAL,
    "subset": _SUBSET,
    "sample": _SAMPLE,
    "val-subset": _VAL_SUBSET,
    "test-subset": _TEST_SUBSET,
}
SPLIT_FORMAT = "cnnbench-split-v1"


def _rng(seed: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), PURPOSES[purpose]])


def _allocate(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over classes in proportion to ``counts`` (largest remainder, so the sum is exact)."""
    if counts.sum() == 0:
        return np.zeros_like(counts)
    exact = counts * (total / counts.sum())
    out = np.floor(exact).astype(np.int64)
    remainder = int(total - out.sum())
    if remainder > 0:
        # Ties go to the larger class, then the lower label: deterministic.
        order = np.lexsort((np.arange(len(counts)), -counts, -(exact - out)))
        out[order[:remainder]] += 1
    return np.minimum(out, counts)


def stratified_take(labels: np.ndarray, count: int, seed: int, purpose: str) -> tuple[np.ndarray, np.ndarray]:
    """Take ``count`` indices, the same fraction of every class (seeded); return (rest, taken), each sorted.

    A class with at least two members always keeps one in ``rest``.
    """
    labels = np.asarray(labels)
    rng = _rng(seed, purpose)
    classes, inverse = np.unique(labels, return_inverse=True)
    counts = np.bincount(inverse, minlength=len(classes))
    take = _allocate(counts, int(count))
    take = np.where(counts >= 2, np.minimum(take, counts - 1), take)
    taken: list[np.ndarray] = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        taken.append(rng.permutation(members)[: take[c]])
    picked = np.sort(np.concatenate(taken)) if taken else np.zeros(0, np.int64)
    mask = np.ones(len(labels), dtype=bool)
    mask[picked] = False
    return np.flatnonzero(mask), picked


def stratified_fraction(labels: np.ndarray, fraction: float, seed: int, purpose: str) -> tuple[np.ndarray, np.ndarray]:
    """``stratified_take`` of ``round(fraction * N)`` indices."""
    return stratified_take(labels, int(round(fraction * len(labels))), seed, purpose)


def per_class_split(labels: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Caltech protocol: ``per_class`` random images of every class for training, the rest for test.

    A class with ``per_class`` images or fewer gives all but one to training, so that every class
    is tested. Returns (train, test, notes).
    """
    rng = _rng(seed, "train_test")
    labels = np.asarray(labels)
    train, test, short = [], [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        k = per_class if len(members) > per_class else max(len(members) - 1, 1 if len(members) == 1 else 0)
        if len(members) <= per_class:
            short.append(int(c))
        train.append(members[:k])
        test.append(members[k:])
    notes = []
    if short:
        notes.append(
            f"{len(short)} classes have ≤ {per_class} images; they train on all but one (class indices {short[:10]}"
            + (", ..." if len(short) > 10 else "")
            + ")"
        )
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test)), notes


def ratio_split(labels: np.ndarray, ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``ratio`` of every class for training, the rest for test (stratified, seeded)."""
    return stratified_fraction(labels, 1.0 - ratio, seed, "train_test")


@dataclass
class SavedSplit:
    """Split lists as saved: positions (array datasets) or file names (folders) per split."""

    path: Path
    train: list[Any]
    val: list[Any]
    test: list[Any]
    extra: dict[str, Any]


def split_path(root: Path, name: str, identity: dict[str, Any]) -> Path:
    """``<root>/splits/<name>-<hash of identity>.json``; identity holds the protocol and the source."""
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:60]
    return root / "splits" / f"{safe}-{key}.json"


def load_split(path: Path, notes: list[str] | None = None) -> SavedSplit | None:
    """The split saved at ``path``, or None when there is none.

    A malformed or inconsistent file (hand-edited: an image in two splits, a standard deviation of 0,
    NaN) counts as none, and ``notes`` says so: a new split is drawn rather than one that leaks test
    images into training or normalises by zero.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        problem = f"is not readable JSON ({exc})"
    else:
        problem = _split_problem(data)
    if problem:
        if notes is not None:
            notes.append(f"saved split {path} {problem}; a new split was drawn and saved in its place")
        return None
    return SavedSplit(path, list(data["train"]), list(data["val"]), list(data["test"]), dict(data.get("extra", {})))


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _split_problem(data: Any) -> str:
    """What is wrong with a parsed split file, or "" when it can be used."""
    if not isinstance(data, dict) or data.get("format") != SPLIT_FORMAT:
        return f"is not a split file of format {SPLIT_FORMAT!r}"
    lists = [data.get(k) for k in ("train", "val", "test")]
    if not all(isinstance(v, list) for v in lists):
        return "lacks its train, val and test lists"
    items = [x for v in lists for x in v]
    if not (all(isinstance(x, str) for x in items) or all(type(x) is int and x >= 0 for x in items)):
        return "holds entries that are neither file names nor positions ≥ 0"
    train, val, test = (set(v) for v in lists)
    if len(train) + len(val) + len(test) != len(items):
        return "lists an image twice"
    # positions index the official train array (train, val) and the test array (test); names are one pool
    if train & val or (isinstance(items[0] if items else 0, str) and (train | val) & test):
        return "puts one image in two splits"
    extra = data.get("extra", {})
    if not isinstance(extra, dict):
        return "has an 'extra' entry that is not a mapping"
    for key in ("mean", "std"):
        values = extra.get(key)
        if values is None:
            continue
        if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
        ):
            return f"has a {key} that is not a list of finite numbers"
        if key == "std" and not all(0 < v < 1e6 for v in values):
            return "has a standard deviation that is not > 0"
    return ""


def save_split(
    path: Path, identity: dict[str, Any], train: list[Any], val: list[Any], test: list[Any], extra: dict[str, Any]
) -> str | None:
    """Save split lists atomically; return None, or a note when the cache directory is not writable."""
    try:
        atomic_write_json(
            path,
            {"format": SPLIT_FORMAT, "identity": identity, "train": train, "val": val, "test": test, "extra": extra},
        )
    except OutputError as exc:
        return f"split lists not saved ({exc}); set $CNNBENCH_CACHE to a writable directory"
    return None


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> None:
    """Raise a DataError naming ``where`` when a label is outside [0, num_classes)."""
    if len(labels) == 0:
        return
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise DataError(f"{where}: label {bad} is out of range; expected 0..{num_classes - 1} ({num_classes} classes)")
