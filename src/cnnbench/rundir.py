"""The run directory's contract shared by every layer: run ids, statuses and the recipe hash.

Torch-free on purpose: the report reads run directories on machines without a GPU stack, and the
engine writes them; both go through this module so that "finished", "the same recipe" and "what
differs between two recipes" mean the same thing everywhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench.errors import ConfigError, ResultsError
from cnnbench.utils.io import atomic_open, loads_json

if TYPE_CHECKING:
    import numpy as np

# summary.json statuses. OK: the test figures are final and enter means. FINISHED: re-running the
# same recipe would give the same result, so a study never retries it.
STATUS_OK = ("completed", "early_stopped")
STATUS_FINISHED = (*STATUS_OK, "diverged")

# The splits of a run's data (Dataset.train/.val/.test) that eval and embed take; --split offers them
# in this order (test: the default). Here rather than in cnnbench.data so that the CLI lists them without
# importing the data layer.
SPLITS = ("test", "val", "train")


def check_split(name: str) -> str:
    """``name`` when it is one of SPLITS.

    Raises:
        ConfigError: naming --split and the allowed values.
    """
    if name not in SPLITS:
        raise ConfigError(f"--split {name!r}: expected one of {', '.join(SPLITS)}")
    return name


# Characters a run id part keeps; any run of others becomes one "_" (``imagefolder:/x/y`` -> ``imagefolder_x_y``).
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """``text`` usable as one part of a directory name: ``imagefolder:/x/y`` -> ``imagefolder_x_y``."""
    return _UNSAFE.sub("_", text).strip("_") or "data"


@dataclass(frozen=True)
class RunId:
    """``<dataset>__<model>__<schedule>__s<seed>``: a run's directory name under ``STUDY_DIR/runs/``,
    and ``cnnbench train``'s default ``runs/<run id>``.

    ``str(RunId(...))`` sanitises every part with :func:`safe_name` (a dataset may be a path), so
    :meth:`parse` gives back the sanitised names; summary.json and config.yaml hold the real ones.
    """

    dataset: str
    model: str
    schedule: str
    seed: int

    SEPARATOR = "__"

    def __str__(self) -> str:
        parts = (safe_name(self.dataset), safe_name(self.model), safe_name(self.schedule), f"s{self.seed}")
        return self.SEPARATOR.join(parts)

    @classmethod
    def parse(cls, text: str) -> RunId | None:
        """The four parts of a run id, or None when ``text`` is not one (a run directory named by hand)."""
        parts = text.rsplit(cls.SEPARATOR, 3)  # from the right: a sanitised dataset may itself hold "__"
        if len(parts) != 4 or not all(parts) or not parts[3].startswith("s"):
            return None
        try:
            seed = int(parts[3][1:])
        except ValueError:
            return None
        return cls(parts[0], parts[1], parts[2], seed)


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
# The training options a config.yaml holds at its top level: TrainConfig's fields. Listed here, torch-free,
# so that the report can tell a key added by hand from a real one; tests/test_reliability_round3.py checks
# the list against TrainConfig (a new option is added in both places).
TRAIN_CONFIG_KEYS = (
    "model", "data", "data_dir", "epochs", "batch_size", "lr", "lr_find_steps", "optimizer", "momentum",
    "nesterov", "weight_decay", "schedule", "min_lr", "warmup_epochs", "warmup_start_lr", "plateau_factor",
    "plateau_patience", "plateau_max_reductions", "step_size", "step_gamma", "patience", "monitor",
    "min_delta", "target_accuracy", "stop_at_target", "val_every_steps", "label_smoothing", "grad_clip",
    "drop_rate", "augment", "amp", "channels_last", "compile", "cuda_graphs", "ema", "precise_bn_samples",
    "seed", "deterministic", "device", "val_fraction", "image_size", "data_image_size", "per_class",
    "split_ratio", "include_clutter", "strict_data", "max_skip_fraction", "pretrained", "finetune",
    "head_epochs", "backbone_lr_scale", "head", "eval_batch_size", "test_batch_size", "max_steps",
    "time_budget_s", "max_train_samples", "max_val_samples", "max_test_samples", "checkpoint_every_steps",
    "nan_check_every", "progress", "notes",
)  # fmt: skip


def unknown_config_keys(config: Mapping[str, Any], known: Iterable[str] = ()) -> list[str]:
    """The top-level keys of a parsed config.yaml that cnnbench neither writes nor reads (added by
    hand, or by another version): every reader ignores them, and says so.

    Args:
        known: further keys to accept.
    """
    allowed = {*TRAIN_CONFIG_KEYS, *DERIVED_SECTIONS, *known}
    return sorted(str(k) for k in config if k not in allowed)


def describe_unknown_keys(path: str | os.PathLike[str], keys: Sequence[str], section: str = "") -> str:
    """``"RUN/config.yaml: unknown key 'foo' (not a cnnbench setting; ignored)"``."""
    where = f" in {section}" if section else ""
    names = ", ".join(repr(k) for k in keys)
    plural = "s" if len(keys) > 1 else ""
    return f"{path}: unknown key{plural} {names}{where} (not a cnnbench setting; ignored)"


@dataclass(frozen=True)
class RunSummary:
    """A run directory's ``summary.json``, typed: what a finished (or failed) run measured.

    Written by ``cnnbench.engine.fit`` (which returns the same object as a dict); read with
    :meth:`RunSummary.read`. Keys this class does not know (a newer writer) are kept in ``extra``,
    so reading and writing back loses nothing. Fractions are 0–1, times are seconds.
    """

    model: str
    dataset: str
    status: str  # completed, early_stopped, diverged, failed or interrupted (STATUS_OK: figures are final)
    error: str | None = None  # what went wrong, for any status but completed / early_stopped
    test_accuracy: float | None = None  # top-1 on the test split with the best checkpoint, once
    test_loss: float | None = None
    test_top5: float | None = None
    test_mean_class_accuracy: float | None = None
    best_val_accuracy: float | None = None  # the best epoch's validation accuracy (selects the checkpoint)
    train_accuracy: float | None = None  # at the best epoch, on augmented batches
    epochs_run: float | None = None  # fractional when the run ended inside an epoch (--max-steps, the target)
    best_epoch: float | None = None
    train_time_s: float | None = None  # training epochs only, evaluation excluded
    time_per_epoch_s: float | None = None
    target_accuracy: float | None = None
    epochs_to_target: float | None = None  # epochs trained at the first validation pass ≥ the target
    time_to_target_s: float | None = None  # train time (evaluation excluded) until that pass
    steps_to_target: int | None = None  # optimiser steps until that pass
    images_to_target: int | None = None  # training images until that pass (steps × batch, summed over ranks)
    test_time_s: float | None = None  # one pass over the test split at test_batch_size
    test_batch_size: int | None = None
    test_samples: int | None = None
    params: int | None = None
    size_mb: float | None = None  # fp32 state_dict, MiB
    flops: int | None = None  # per image at input_size, 2 x MACs
    input_size: int | None = None  # pixels per side the model saw
    schedule: str | None = None
    seed: int | None = None
    batch_size: int | None = None  # the batch actually trained with (after any OOM back-off)
    lr: float | None = None
    steps: int | None = None  # optimiser steps taken
    images: int | None = None  # training images seen
    evaluations: int | None = None  # validation passes (one per epoch, or per --val-every-steps window)
    best_step: int | None = None  # optimiser steps at the validation pass that selected the checkpoint
    lr_find: dict[str, Any] | None = None  # --lr auto: the range test's pick (lr, rule, steps, ...)
    device: dict[str, Any] | None = None  # cnnbench.utils.env.device_info
    world_size: int | None = None
    versions: dict[str, Any] | None = None  # python, torch, torchvision, timm, ...
    config_hash: str | None = None
    recipe_hash: str | None = None  # equal for runs of one recipe (recipe_hash above)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # keys of summary.json this class does not name

    @property
    def ok(self) -> bool:
        """Completed or early-stopped: the test figures are final and enter means."""
        return self.status in STATUS_OK

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSummary:
        """From a parsed summary.json.

        Raises:
            ResultsError: ``data`` is not an object with model, dataset and status.
        """
        if not isinstance(data, Mapping):
            raise ResultsError(f"not a run summary: expected a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        missing = [k for k in ("model", "dataset", "status") if data.get(k) is None]
        if missing:
            raise ResultsError(f"not a run summary: {', '.join(missing)} missing")
        known = {k: v for k, v in data.items() if k in names}
        if known.get("notes") is None:
            known["notes"] = []
        _check_figures(known)
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})

    @classmethod
    def read(cls, run_dir: str | os.PathLike[str]) -> RunSummary:
        """``run_dir/summary.json``.

        Raises:
            ResultsError: naming the file when it is missing (the run has not ended), not JSON, or
                not a run summary.
        """
        path = Path(run_dir) / "summary.json"
        if not path.is_file():
            raise ResultsError(f"{path} does not exist: {run_dir} is not a run directory or the run has not ended")
        try:
            return cls.from_dict(loads_json(path.read_text(encoding="utf-8")))
        except (ValueError, ResultsError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            raise ResultsError(f"{path}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """The summary.json object (``extra`` merged back in)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**out, **self.extra}


# The accuracies of a summary: fractions of 1, whatever a report prints them as.
_FRACTIONS = (
    "test_accuracy",
    "test_top5",
    "test_mean_class_accuracy",
    "best_val_accuracy",
    "train_accuracy",
    "target_accuracy",
)


# Above this a figure is a typo or damage, not a measurement (the largest models have ~1e12 params and
# FLOPs of ~1e13; a time of 1e15 s is 30 million years), and a mean of many such would overflow.
FIGURE_LIMIT = 1e15
COUNT_LIMIT = 2**63  # counts are int64 wherever they are summed or tabulated


def check_figure(key: str, value: Any, *, whole: bool = False, fraction: bool = False) -> None:
    """One figure read from a file a user can edit: a finite number, ≥ 0, below the limits above.

    Args:
        whole: a count (params, epochs, ...): a whole number below ``COUNT_LIMIT``.
        fraction: an accuracy: between 0 and 1.

    Raises:
        ResultsError: naming the key, the value and what was expected.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ResultsError(f"{key} {value!r}: expected a number")
    if not math.isfinite(value):
        raise ResultsError(f"{key} {value!r}: expected a finite number")
    if fraction and not 0 <= value <= 1:
        raise ResultsError(f"{key} {value!r}: expected a fraction between 0 and 1")
    if whole and (value != int(value) or not 0 <= value < COUNT_LIMIT):
        raise ResultsError(f"{key} {value!r}: expected a whole number ≥ 0")
    if "loss" in key:  # a loss may be negative (a custom criterion); only its size is bounded
        if abs(value) >= FIGURE_LIMIT:
            raise ResultsError(f"{key} {value!r}: expected a number between -{FIGURE_LIMIT:.0e} and {FIGURE_LIMIT:.0e}")
    elif not 0 <= value < FIGURE_LIMIT and not whole:
        raise ResultsError(f"{key} {value!r}: expected a number ≥ 0 and below {FIGURE_LIMIT:.0e}")


def _check_figures(values: Mapping[str, Any]) -> None:
    """A damaged or hand-edited summary must not enter a mean: every figure a finite number in its range
    (accuracies in [0, 1], counts whole, nothing negative or astronomically large).

    Raises:
        ResultsError: naming the key and its value.
    """
    kinds = {"str": str, "str | None": str, "dict[str, Any] | None": dict, "list[str]": list}
    for f in dataclasses.fields(RunSummary):
        value = values.get(f.name)
        if value is None or f.name == "extra":
            continue
        if f.type in ("float | None", "int | None"):
            check_figure(f.name, value, whole=f.type == "int | None", fraction=f.name in _FRACTIONS)
        elif f.type in kinds and not isinstance(value, kinds[f.type]):
            # a hand-edited "versions": 5 or "notes": "text" would fail the report's tables later
            expected = {str: "text", dict: "an object", list: "a list"}[kinds[f.type]]
            raise ResultsError(f"{f.name} {_short(value)[:60]}: expected {expected}")


# A run's per-image test predictions (written by the engine's test pass and `cnnbench eval --save-predictions`).
PREDICTIONS_FILE = "test_predictions.npz"
PREDICTIONS_FORMAT = "cnnbench-test-predictions-v1"


@dataclass(frozen=True, eq=False)
class TestPredictions:
    """What a run predicted for every test image, in dataset order: the raw material of paired tests.

    Two models scored on the same test images are compared image by image (McNemar's test), which
    needs more than their accuracies. The arrays are small integers: 10,000 images take about 30 kB
    compressed. ``predicted == top5[:, 0]`` except where two logits tie.
    """

    __test__ = False  # a data class, not a pytest test class

    predicted: np.ndarray  # (N,) top-1 class of each test image
    target: np.ndarray  # (N,) true class
    top5: np.ndarray  # (N, k) the k = min(5, classes) highest-scoring classes, best first

    def __post_init__(self) -> None:
        import numpy as np  # here, not at the top: importing rundir stays cheap for the CLI

        n = len(self.target)
        shapes = (np.shape(self.predicted), np.shape(self.target), np.shape(self.top5))
        if shapes[0] != (n,) or shapes[1] != (n,) or len(shapes[2]) != 2 or shapes[2][0] != n or shapes[2][1] < 1:
            raise ResultsError(
                f"test predictions: expected predicted (N,), target (N,) and top5 (N, k); got shapes {shapes}"
            )
        for name in ("predicted", "target", "top5"):
            values = np.asarray(getattr(self, name))
            if values.size and (values.dtype.kind not in "iu" or values.min() < 0):
                raise ResultsError(f"test predictions: {name} must hold class indices ≥ 0 (dtype {values.dtype})")
            # a small integer type that holds every class index (Caltech-256 has 257 classes)
            dtype = np.int16 if not values.size or values.max() < 2**15 else np.int32
            object.__setattr__(self, name, values.astype(dtype))

    def __len__(self) -> int:
        return len(self.target)

    @property
    def correct(self) -> np.ndarray:
        """(N,) bool: top-1 right."""
        return self.predicted == self.target

    @property
    def correct_top5(self) -> np.ndarray:
        """(N,) bool: the true class among the top k."""
        return (self.top5 == self.target[:, None]).any(axis=1)

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self) else math.nan

    def write(self, run_dir: str | os.PathLike[str]) -> Path:
        """``run_dir/test_predictions.npz``, written atomically (compressed npz)."""
        import numpy as np

        path = Path(run_dir) / PREDICTIONS_FILE
        with atomic_open(path, "wb") as f:
            np.savez_compressed(
                f, format=np.array(PREDICTIONS_FORMAT), predicted=self.predicted, target=self.target, top5=self.top5
            )
        return path

    @classmethod
    def read(cls, run_dir: str | os.PathLike[str]) -> TestPredictions | None:
        """``run_dir/test_predictions.npz``, or None when the run has none (written before the file existed).

        Raises:
            ResultsError: naming the file when it is present but damaged or not this format.
        """
        import numpy as np

        path = Path(run_dir) / PREDICTIONS_FILE
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                fmt = str(data["format"]) if "format" in data.files else None
                if fmt != PREDICTIONS_FORMAT:
                    raise ResultsError(f"format {fmt!r}, expected {PREDICTIONS_FORMAT!r}")
                return cls(predicted=data["predicted"], target=data["target"], top5=data["top5"])
        except ResultsError as exc:
            raise ResultsError(f"{path}: {exc}") from exc
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # truncated, not an npz, ...
            raise ResultsError(f"{path} is not a readable test-predictions file ({type(exc).__name__}: {exc})") from exc


#: Recipe options added after run directories were first written, with the value that means "not
#: used": a run that leaves one there has the recipe (and hashes) of a run written before it existed.
UNUSED_OPTION_VALUES: dict[str, Any] = {"stop_at_target": False, "lr_find_steps": 60, "val_every_steps": None}


def option_unused(key: str, value: Any) -> bool:
    """``value`` of recipe option ``key`` is the same recipe as a config written before the option existed."""
    return value is None or (key in UNUSED_OPTION_VALUES and value == UNUSED_OPTION_VALUES[key])


def recipe_values(config: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe part of a run's config (a TrainConfig dict or a parsed config.yaml): every key but
    the per-run, runtime and derived ones, with numbers normalised (``5`` and ``5.0`` are one value)."""
    skip = set(PER_RUN_KEYS) | set(RUNTIME_KEYS) | set(DERIVED_SECTIONS)
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


def best_checkpoint_differs(run_dir: str | os.PathLike[str], sha256: str | None) -> bool:
    """Whether the run's best checkpoint now is another file than the one whose SHA-256 is ``sha256``
    (judged by ``checkpoint/best.pt.sha256``; False when either is unknown)."""
    side = Path(run_dir) / "checkpoint" / "best.pt.sha256"
    if not sha256 or not side.is_file():
        return False
    try:
        hashes = {line.split()[0].lower() for line in side.read_text(encoding="utf-8").splitlines() if line.strip()}
    except (OSError, UnicodeDecodeError):
        return False
    return bool(hashes) and sha256.lower() not in hashes
