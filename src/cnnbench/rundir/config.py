"""``config.yaml``: a run's resolved recipe, read and written by one class.

The file is flat on purpose: every ``TrainConfig`` field (the flags of ``cnnbench train``) at the top,
so that it reads as the command that made the run, then three sections derived from it (``SECTIONS``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnbench.errors import ConfigError, ResultsError
from cnnbench.rundir.layout import RunFiles
from cnnbench.rundir.recipe import DERIVED_SECTIONS, FILE_KEYS
from cnnbench.utils.io import atomic_write_text

# The format of config.yaml. Files written before the key existed (until 2026-12) hold the same keys
# and no ``format``; the reader takes both.
CONFIG_FORMAT = "cnnbench-config-v1"
CONFIG_FORMATS = (CONFIG_FORMAT, None)
# model_args: create_model's keywords; data_config: the DataConfig fields; resolved: what the run
# resolved on its machine (device, world_size, amp, channels_last, lr, config_hash, recipe_hash).
SECTIONS = DERIVED_SECTIONS
# The training options a config.yaml holds at its top level: TrainConfig's fields. Listed here, torch-free,
# so that the report can tell a key added by hand from a real one; tests/test_reliability_round3_inputs.py
# checks the list against TrainConfig (a new option is added in both places).
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


def unknown_config_keys(config: Mapping[str, Any]) -> list[str]:
    """The top-level keys of a parsed config.yaml that cnnbench neither writes nor reads (added by hand, or
    by another version): every reader ignores them, and says so."""
    allowed = {*TRAIN_CONFIG_KEYS, *SECTIONS, *FILE_KEYS}
    return sorted(str(k) for k in config if k not in allowed)


def describe_unknown_keys(path: str | os.PathLike[str], keys: list[str], section: str = "") -> str:
    """``"RUN/config.yaml: unknown key 'foo' (not a cnnbench setting; ignored)"``."""
    where = f" in {section}" if section else ""
    names = ", ".join(repr(k) for k in keys)
    return f"{path}: unknown key{'s' if len(keys) > 1 else ''} {names}{where} (not a cnnbench setting; ignored)"


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


@dataclass(frozen=True)
class RunConfig:
    """A run's ``config.yaml`` as the mapping it holds (``values``), with its parts named."""

    values: dict[str, Any]  # the whole file: TrainConfig fields (flat), the SECTIONS, and ``format``

    @classmethod
    def build(
        cls, options: Mapping[str, Any], model_args: Mapping[str, Any], data_config: Mapping[str, Any], resolved=None
    ) -> RunConfig:
        """The config of a run: ``options`` (``TrainConfig.to_dict()``) and its sections, in the file's order."""
        values = {"format": CONFIG_FORMAT, **options, "model_args": dict(model_args), "data_config": dict(data_config)}
        values["resolved"] = dict(resolved or {})
        return cls(values)

    @property
    def format(self) -> str | None:
        return self.values.get("format")

    @property
    def options(self) -> dict[str, Any]:
        """The TrainConfig fields (every key but the sections and ``format``)."""
        return {k: v for k, v in self.values.items() if k not in SECTIONS and k not in FILE_KEYS}

    @property
    def model_args(self) -> dict[str, Any] | None:
        return self.values.get("model_args")

    @property
    def data_config(self) -> dict[str, Any] | None:
        return self.values.get("data_config")

    @property
    def resolved(self) -> dict[str, Any]:
        """The ``resolved`` section; empty when the file has none (or it is damaged)."""
        resolved = self.values.get("resolved")
        return resolved if isinstance(resolved, dict) else {}

    @property
    def config_hash(self) -> str | None:
        """The hash of the TrainConfig that wrote the file (``resolved.config_hash``), or None."""
        return self.resolved.get("config_hash")

    def write(self, run_dir: str | os.PathLike[str]) -> Path:
        """``run_dir/config.yaml``, written atomically in today's format (``format`` first), keys in order."""
        import yaml

        path = RunFiles(run_dir).config
        values = {"format": CONFIG_FORMAT, **{k: v for k, v in self.values.items() if k != "format"}}
        atomic_write_text(path, yaml.safe_dump(values, sort_keys=False))
        return path

    @classmethod
    def read(cls, run_dir: str | os.PathLike[str]) -> RunConfig:
        """``run_dir/config.yaml``.

        Raises:
            ResultsError: naming the file when it is missing, not YAML, not a mapping or another format.
        """
        path = RunFiles(run_dir).config
        data = read_yaml_file(path)
        if not isinstance(data, dict):
            raise ResultsError(f"{path} is not a mapping of config keys")
        if data.get("format") not in CONFIG_FORMATS:
            raise ResultsError(f"{path}: format {data.get('format')!r}, expected {CONFIG_FORMAT!r} (or none)")
        return cls(data)

    @classmethod
    def read_if_present(cls, run_dir: str | os.PathLike[str]) -> RunConfig | None:
        """``read``, or None when the run directory has no config.yaml (yet)."""
        return cls.read(run_dir) if RunFiles(run_dir).config.is_file() else None


def read_yaml_file(path: str | os.PathLike[str]) -> Any:
    """A YAML file parsed with cnnbench's strict safe loader (``utils.yamlfile``: no duplicate keys, no
    alias bombs), on the C parser where PyYAML has it: 60 configs in milliseconds.

    Raises:
        ResultsError: naming the file when it is missing or is not valid YAML.
    """
    import yaml

    from cnnbench.utils.yamlfile import load_yaml

    try:
        return load_yaml(Path(path).read_text(encoding="utf-8"), fast=True)
    except FileNotFoundError as exc:
        raise ResultsError(f"{path} does not exist") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ResultsError(f"{path} is not valid YAML ({exc})") from exc
