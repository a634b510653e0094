"""A study definition: datasets × models × schedules × seeds under one recipe.

It comes from flags, a preset, a YAML file, or all three (flags override the file, which overrides
the preset), and is validated completely before any work: every message names the bad key or flag
and the allowed values.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnnbench.engine.config import SCHEDULES, TrainConfig, train_config_fields
from cnnbench.errors import CnnbenchError, ConfigError
from cnnbench.utils.config import accuracy_fraction, check_range, coerce_fields, coerce_value, short_repr
from cnnbench.utils.yamlfile import load_yaml

PER_RUN_KEYS = {"model": "models", "data": "data", "schedule": "schedules", "seed": "seeds"}  # key -> study list
WORKERS_AUTO = "auto"
MAX_SEEDS = 10_000  # seeds a study may list or count
# keys a study directory's study.yaml carries besides the definition; ignored when it is read back
OUTPUT_KEYS = ("resolved_models", "shard", "command", "runs", "started", "notes")


@dataclass
class StudySpec:
    """What a study runs. ``recipe`` holds TrainConfig fields shared by every run."""

    name: str = "study"
    preset: str | None = None
    data: list[str] = field(default_factory=lambda: ["mnist-sample"])
    data_dir: str | None = None
    models: list[str] = field(default_factory=lambda: ["seed-mnist"])
    schedules: list[str] = field(default_factory=lambda: ["onecycle"])  # train's default schedule
    seeds: list[int] = field(default_factory=lambda: [0])
    recipe: dict[str, Any] = field(default_factory=dict)
    model_recipes: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-model recipe overrides
    overrides: dict[str, Any] = field(default_factory=dict)  # training flags typed by the user: above everything
    native_resolution: bool = False  # each model at its own default input size (224/299/380)
    pretrained_dir: str | None = None  # where runs with pretrained weights find them (else the torch/timm cache)
    targets: dict[str, float] = field(default_factory=dict)  # per-dataset target accuracy (overrides recipe)
    embed: bool = True  # t-SNE + clustering of the best run of every model at the end
    embed_max_points: int = 10_000
    speed: bool = True  # throughput/latency per model
    onnx: bool = False  # also export to ONNX and time ONNX Runtime on the CPU
    workers: int | str = WORKERS_AUTO  # concurrent runs; auto: from free GPU memory, 1 on a CPU
    keep_last_checkpoint: bool = False  # keep checkpoint/last.pt (weights + optimiser) of finished runs
    description: str = ""
    deviations: list[str] = field(default_factory=list)  # where the recipe differs on purpose from its seed study
    notes: list[str] = field(default_factory=list)  # what validation changed (duplicates removed), said to the user

    def __post_init__(self) -> None:
        _check_name(self.name)
        self.data = _dedupe(_as_list(self.data, "data"), "data", self.notes)
        self.models = _as_list(self.models, "models")
        self.schedules = _dedupe(_as_list(self.schedules, "schedules"), "schedules", self.notes)
        self.seeds = _dedupe(parse_seeds(self.seeds), "seeds", self.notes)
        for s in self.schedules:
            if s not in SCHEDULES:
                raise ConfigError(f"schedules: {s!r} is not a schedule; allowed: {', '.join(SCHEDULES)}")
        if not self.data:
            raise ConfigError("data: at least one dataset is needed")
        if not self.models:
            raise ConfigError("models: at least one model is needed")
        _check_recipe_keys(self.recipe, "recipe")
        _check_recipe_keys(self.overrides, "overrides")
        self.recipe = coerce_fields(TrainConfig, self.recipe, "recipe")
        self.overrides = coerce_fields(TrainConfig, self.overrides, "overrides")
        if not isinstance(self.model_recipes, dict):
            raise ConfigError("model_recipes: expected a mapping of model name to training options")
        resolved: dict[str, dict[str, Any]] = {}
        for model, overrides in self.model_recipes.items():
            if not isinstance(overrides, dict):
                raise ConfigError(
                    f"model_recipes.{model}: expected a mapping of training options, got {short_repr(overrides)}"
                )
            _check_recipe_keys(overrides, f"model_recipes.{model}")
            values = coerce_fields(TrainConfig, overrides, f"model_recipes.{model}")
            for name in _recipe_models(model):  # 'lenet' means lenet5, as in --models; a typo is an error
                resolved.setdefault(name, {}).update(values)
        self.model_recipes = resolved
        if not isinstance(self.targets, dict):
            raise ConfigError(f"targets: expected a mapping of dataset to accuracy, got {short_repr(self.targets)}")
        self.targets = {str(k): _target(k, v) for k, v in self.targets.items()}
        for dataset in self.targets:
            _check_target_dataset(dataset, self.data)
        scalars = ("embed_max_points", "embed", "speed", "onnx", "native_resolution", "keep_last_checkpoint")
        for key, value in coerce_fields(StudySpec, {k: getattr(self, k) for k in scalars}, "study").items():
            setattr(self, key, value)
        check_range("embed_max_points", self.embed_max_points, 10)
        bad_count = not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 1
        if self.workers != WORKERS_AUTO and bad_count:
            raise ConfigError(f"workers: {short_repr(self.workers)}: expected a whole number ≥ 1 or 'auto'")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def run_config(self, dataset: str, model: str, schedule: str, seed: int) -> TrainConfig:
        """The TrainConfig of one run (validated): recipe < per-model recipe < per-dataset target < flags <
        per-run keys."""
        values = dict(self.recipe)
        values.update(self.model_recipes.get(model, {}))
        values.update(self.overrides)
        values.update(model=model, data=dataset, schedule=schedule, seed=seed, data_dir=self.data_dir)
        if dataset in self.targets and "target_accuracy" not in self.overrides:
            # a preset's per-dataset target yields to --target-accuracy (flags win, as everywhere else)
            values["target_accuracy"] = self.targets[dataset]
        if values.get("stop_at_target") and values.get("target_accuracy") is None:
            raise ConfigError(
                f"targets: every run stops at its target (stop_at_target), but dataset {dataset!r} has none; "
                f"add targets: {{{dataset}: 0.9}} (a validation accuracy) or set stop_at_target: false"
            )
        if self.native_resolution and values.get("image_size") is None:
            from cnnbench.models import default_input_size

            values["image_size"] = default_input_size(model)
        if self.pretrained_dir and str(values.get("pretrained", "")).lower() == "true":
            values["pretrained"] = self.pretrained_dir
        if values.get("pretrained") in (None, "none") and values.get("finetune", "full") != "full":
            values["finetune"] = "full"  # a model trained from scratch has no pretrained backbone to freeze
        if _is_photo_folder(dataset) and values.get("image_size") and not values.get("data_image_size"):
            # decode-once cache at the usual 256:224 ratio of the input, so a crop never upsamples
            values["data_image_size"] = int(-(-values["image_size"] * 8 // 7))
        return TrainConfig(**values)


def _check_name(name: Any) -> None:
    """A study name becomes ``studies/<name>``: one plain path component, nothing that climbs out."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"name: {short_repr(name)}: expected text, e.g. name: fashion-small")
    if name in (".", "..") or "/" in name or "\\" in name or Path(name).is_absolute() or "\0" in name:
        raise ConfigError(
            f"name: {name!r}: expected one directory name without '/' or '..' (use --out to choose where it is written)"
        )


def _dedupe(values: list[Any], key: str, notes: list[str]) -> list[Any]:
    """Drop repeats (they would plan the same run id twice), saying so."""
    unique = list(dict.fromkeys(values))
    if len(unique) < len(values):
        repeated = sorted({str(v) for v in values if values.count(v) > 1})
        notes.append(f"{key}: {', '.join(repeated)} listed more than once; each is run once")
    return unique


def _recipe_models(key: Any) -> list[str]:
    """The models a ``model_recipes`` key names, as ``--models`` reads it (an alias or a group)."""
    from cnnbench.models import resolve_model_names

    try:
        return resolve_model_names(str(key))
    except CnnbenchError as exc:
        raise ConfigError(f"model_recipes.{key}: {exc}") from exc


def _target(dataset: Any, value: Any) -> float:
    number = coerce_value(value, float, f"targets.{dataset}")
    accuracy_fraction(f"targets.{dataset}", number)  # the check TrainConfig makes of the same value
    return number


def _check_target_dataset(dataset: str, study_data: list[str]) -> None:
    """A ``targets`` key is a dataset name; one of a dataset the study does not train is allowed (presets
    set targets for every dataset), a name that is no dataset at all (a typo, an alias) is refused: its
    target would silently never apply."""
    from cnnbench.data.config import DATASET_NAMES, did_you_mean

    if dataset in study_data or dataset.startswith("imagefolder:") or dataset in DATASET_NAMES:
        return
    raise ConfigError(
        f"targets: unknown dataset {dataset!r}{did_you_mean(dataset)}; expected a dataset name, "
        f"one of {', '.join(DATASET_NAMES)}"
    )


def _close_match(name: Any, allowed: list[str]) -> str:
    """``" (did you mean lr?)"`` for a near miss of a key, else ``""``."""
    import difflib

    close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _is_photo_folder(dataset: str) -> bool:
    return dataset == "caltech256" or dataset.startswith("imagefolder:")


def _check_recipe_keys(recipe: dict[str, Any], where: str) -> None:
    if not isinstance(recipe, dict):
        raise ConfigError(f"{where}: expected a mapping of training options, got {type(recipe).__name__}")
    allowed = [k for k in train_config_fields() if k not in PER_RUN_KEYS and k != "notes"]
    for key in recipe:
        if key in PER_RUN_KEYS:
            raise ConfigError(f"{where}: {key!r} is set per run; use the study's {PER_RUN_KEYS[key]!r} list instead")
        if key not in allowed:
            raise ConfigError(
                f"{where}: unknown key {key!r}{_close_match(key, allowed)}; allowed keys: {', '.join(allowed)}"
            )


def _as_list(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        for v in value:
            if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                # a list or mapping in a list of names (nested aliases, a stray "-"): never str() it
                raise ConfigError(f"{key}: expected a list of names, found a {type(v).__name__} among them")
        return [str(v).strip() for v in value]
    raise ConfigError(f"{key}: expected a list or a comma-separated string, got {short_repr(value)}")


def parse_seeds(value: Any) -> list[int]:
    """``3`` → [0, 1, 2]; ``"1,5"`` or ``[1, 5]`` → [1, 5]."""
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            if value < 1:
                raise ValueError
            if value > MAX_SEEDS:  # --seeds 1000000000000 would build a list of a trillion ints first
                raise ConfigError(f"seeds: {value}: expected a count ≤ {MAX_SEEDS:,} (each seed is a run per model)")
            return list(range(value))
        if isinstance(value, str):
            parts = [p for p in value.split(",") if p.strip()]
            if len(parts) == 1 and "," not in value:
                return parse_seeds(int(parts[0]))
            return parse_seeds([int(p) for p in parts])
        if isinstance(value, (list, tuple)) and value:
            if len(value) > MAX_SEEDS:
                raise ConfigError(f"seeds: {len(value):,} seeds listed: expected at most {MAX_SEEDS:,}")
            seeds = [int(v) for v in value]
            if min(seeds) < 0:
                raise ValueError
            return seeds
    except ConfigError:
        raise
    except (TypeError, ValueError):
        pass
    raise ConfigError(
        f"seeds: {short_repr(value)}: expected a count ≥ 1 (3 → seeds 0,1,2) or a list of seeds ≥ 0 (5, → seed 5 alone)"
    )


def load_study_file(path: str | Path) -> dict[str, Any]:
    """Read a study YAML file into a mapping (validated later, together with flags)."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a YAML file" if path.is_dir() else "does not exist"
        raise ConfigError(f"study file {path} {what}")
    try:
        values = load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"study file {path} is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"study file {path} cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"study file {path} is not valid YAML{where}: {problem}") from exc
    if values is None:
        # an empty file is a mistake, not a wish for the default study
        raise ConfigError(f"study file {path} is empty: expected keys such as name, data, models, recipe")
    if not isinstance(values, dict):
        raise ConfigError(f"study file {path}: expected a mapping of keys (name, data, models, ...) at the top")
    return values


_CHANGED_LINE = "Changed from the "


def deviations_after_changes(preset: dict[str, Any], deviations: list[str], changed: dict[str, Any]) -> list[str]:
    """The preset's deviations that still hold once a study file or flags changed ``changed``, plus what changed.

    A preset's ``Deviation`` names the recipe keys it describes; changing one of them makes its text
    wrong (``--augment digits`` on a preset that says "No augmentation"), so it is dropped, and one
    line lists every value that differs from the preset, so the report never describes another recipe.
    """
    base = preset.get("recipe") or {}
    differs = {k: v for k, v in changed.items() if k not in base or base[k] != v}
    kept = [
        str(d)
        for d in deviations
        if not set(getattr(d, "keys", ())) & differs.keys() and not str(d).startswith(_CHANGED_LINE)
    ]  # a study.yaml written by an earlier run already has the line: it is rewritten, not repeated
    if differs:
        values = ", ".join(
            f"{k} {base[k]!r} → {v!r}" if k in base else f"{k} {v!r}" for k, v in sorted(differs.items())
        )
        kept.append(f"{_CHANGED_LINE}{preset.get('name', 'preset')} preset by a study file or flags: {values}.")
    return kept


def build_spec(preset: dict[str, Any] | None, file_values: dict[str, Any], flag_values: dict[str, Any], where: str):
    """Merge preset < study file < flags into a validated StudySpec.

    ``recipe`` mappings are merged key by key, so a flag like ``--epochs 3`` overrides one
    recipe entry and keeps the rest of the preset. Training flags (``flag_values["recipe"]``) become
    ``overrides``, which also win over the per-model recipes of a preset or file.
    """
    flag_values = dict(flag_values)
    flag_overrides = flag_values.pop("recipe", None) or {}
    allowed = [f.name for f in dataclasses.fields(StudySpec)]
    file_values = {k: v for k, v in file_values.items() if k not in OUTPUT_KEYS}
    for key in file_values:
        if key not in allowed:
            raise ConfigError(
                f"{where}: unknown key {key!r}{_close_match(key, allowed)}; allowed keys: {', '.join(allowed)}"
            )
    merged = _merge_layers((preset or {}, file_values, flag_values), where)
    merged["overrides"] = {**merged.get("overrides", {}), **flag_overrides}
    if preset:
        changed = {**(file_values.get("recipe") or {}), **merged["overrides"]}
        merged["deviations"] = deviations_after_changes(preset, merged.get("deviations") or [], changed)
    try:
        spec = StudySpec(**merged)
    except ConfigError as exc:
        raise ConfigError(_located(str(exc), where)) from None
    except TypeError as exc:  # pragma: no cover - unknown keys are caught above
        raise ConfigError(f"{where}: {exc}") from exc
    _check_file_recipe(spec.recipe, set(file_values.get("recipe") or {}), where)
    return spec


def _located(message: str, where: str) -> str:
    """An error about a study key, said where it came from: the study file's name, or the flag itself
    (``seeds: ...`` → ``--seeds ...``) when only the command line and a preset gave values."""
    match = re.match(r"([a-z_]+)(:? )", message)
    if where == "flags" and match and match.group(1) in _STUDY_FLAGS:
        return f"--{match.group(1).replace('_', '-')}{match.group(2)}{message[match.end() :]}"
    return f"{where}: {message}"


# StudySpec keys that ``cnnbench run`` sets from a flag of the same name
_STUDY_FLAGS = frozenset({"data", "models", "schedules", "seeds", "embed", "speed", "onnx", "embed_max_points"})


def _merge_layers(layers: tuple[dict[str, Any], ...], where: str) -> dict[str, Any]:
    """The values of ``layers``, later ones winning; ``recipe``, ``targets`` and ``model_recipes`` merged key by key."""
    merged: dict[str, Any] = {}
    recipe: dict[str, Any] = {}
    targets: dict[str, float] = {}
    model_recipes: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for key, value in layer.items():
            if key == "recipe":
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}: recipe: expected a mapping of training options")
                recipe.update(value)
            elif key == "model_recipes" and isinstance(value, dict):
                for model, overrides in value.items():
                    if overrides is not None and not isinstance(overrides, dict):
                        raise ConfigError(
                            f"{where}: model_recipes.{model}: expected a mapping of training options, "
                            f"got {short_repr(overrides)}"
                        )
                    model_recipes.setdefault(model, {}).update(overrides or {})
            elif key == "targets":
                if value is not None and not isinstance(value, dict):
                    raise ConfigError(
                        f"{where}: targets: expected a mapping of dataset to accuracy, got {short_repr(value)}"
                    )
                targets.update(value or {})
            else:
                merged[key] = value
    merged["recipe"], merged["targets"], merged["model_recipes"] = recipe, targets, model_recipes
    return merged


def _check_file_recipe(recipe: dict[str, Any], file_keys: set[str], where: str) -> None:
    """A bad value in a study file's ``recipe`` is named as that file's key (``recipe: epochs -1``), not
    as a flag the user never typed; a bad flag keeps the flag's name (the runs' check, later).

    ``recipe``: the preset's and the file's recipe merged (values already coerced); ``file_keys``: the file's.
    """
    if not file_keys:
        return
    if recipe.get("stop_at_target") and recipe.get("target_accuracy") is None:
        recipe = {**recipe, "target_accuracy": 0.5}  # the study's per-dataset target fills it in for each run
    try:
        TrainConfig(**recipe)
    except ConfigError as exc:
        flag, _, rest = str(exc).partition(" ")
        key = {"--time-budget": "time_budget_s"}.get(flag, flag.removeprefix("--").replace("-", "_"))
        if key in file_keys:
            raise ConfigError(f"{where}: recipe: {key} {rest}") from None
        raise ConfigError(f"{where}: recipe: {exc}") from None


def validate_study(spec: StudySpec, fetch_weights: bool = False) -> list[str]:
    """Check everything that can be checked without work: models, datasets, every run's recipe.

    Args:
        spec: the study.
        fetch_weights: download the pretrained weights that runs with ``pretrained: true`` need and the
            torch / Hugging Face caches lack (False: only check that they could be downloaded).

    Returns:
        The resolved model names.
    """
    from cnnbench.data import list_datasets
    from cnnbench.data.config import did_you_mean
    from cnnbench.models import resolve_model_names

    models = resolve_model_names(",".join(spec.models))
    known = [d["name"] for d in list_datasets()]
    for name in spec.data:
        base = name.split(":", 1)[0] + (":" if ":" in name else "")
        if name not in known and base not in ("imagefolder:",):
            allowed = ", ".join(dict.fromkeys([*known, "imagefolder:PATH"]))
            raise ConfigError(f"data: unknown dataset {name!r}{did_you_mean(name)}; allowed: {allowed}")
    spec.run_config(spec.data[0], models[0], spec.schedules[0], spec.seeds[0])  # the recipe itself
    _check_weights(spec, models, fetch_weights)
    return models


def _check_weights(spec: StudySpec, models: list[str], download: bool) -> None:
    """Every pretrained weights file the study needs, checked (and downloaded) at once: one error lists all missing."""
    from cnnbench.models import check_pretrained_available

    by_source: dict[str | None, list[str]] = {}
    for model in models:
        cfg = spec.run_config(spec.data[0], model, spec.schedules[0], spec.seeds[0])
        if cfg.pretrained is None:
            continue
        source = None if str(cfg.pretrained).lower() == "true" else str(cfg.pretrained)
        if source is not None and Path(source).is_file():
            continue  # one explicit file: create_model names it if it does not load
        by_source.setdefault(source, []).append(model)
    problems = []
    for source, names in by_source.items():
        try:
            check_pretrained_available(names, source, download=download)
        except CnnbenchError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
