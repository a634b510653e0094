"""Study directories → one row per run: the figures of ``summary.json`` joined with the speed files.

Reads only result files (JSON, YAML, CSV); never imports torch. Several study directories (the shards
of one study, run on different machines) merge into one ``Results``; a run found in two of them is
kept once, keyed by ``run_id``.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnbench.errors import ResultsError
from cnnbench.report.runfiles import read_config, read_json_file, read_yaml_file
from cnnbench.rundir import (
    STATUS_OK,
    RunId,
    RunSummary,
    check_figure,
    describe_recipe,
    describe_unknown_keys,
    recipe_differences,
    recipe_hash,
    unknown_config_keys,
)
from cnnbench.utils.lock import lock_is_live

ID_COLUMNS = ("run_id", "dataset", "model", "schedule", "seed", "status", "error", "recipe_hash", "recipe")
SUMMARY_FIGURES = (
    "test_accuracy",
    "test_loss",
    "test_top5",
    "test_mean_class_accuracy",
    "best_val_accuracy",
    "train_accuracy",
    "epochs_run",
    "best_epoch",
    "train_time_s",
    "time_per_epoch_s",
    "target_accuracy",
    "epochs_to_target",
    "time_to_target_s",
    "steps_to_target",
    "images_to_target",
    "test_time_s",
    "params",
    "size_mb",
    "flops",
)
SPEED_FIGURES = ("gpu_throughput", "cpu_latency_ms", "onnx_latency_ms")
# The columns of results.csv, in order (docs/architecture.md).
RESULT_COLUMNS = ID_COLUMNS + SUMMARY_FIGURES + SPEED_FIGURES
FIGURES = SUMMARY_FIGURES + SPEED_FIGURES
# Summary figures that a speed file can supply when the summary lacks them.
_FROM_SPEED = ("params", "size_mb", "flops", "test_time_s")


@dataclass
class RunRecord:
    """One run of a study: where it is, what it is, how it ended, and its figures."""

    run_id: str
    dataset: str
    model: str
    schedule: str
    seed: int | None
    status: str  # a summary.json status, or running / missing / unreadable
    error: str | None
    figures: dict[str, float | int | None]  # keyed by SUMMARY_FIGURES + SPEED_FIGURES
    path: Path | None  # the run directory; None for a run the study defines but nobody started
    study_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # config.yaml (empty when absent or unreadable)
    speed: dict[str, Any] | None = None
    recipe: str | None = None  # recipe hash (cnnbench.rundir): runs are only ever averaged within one
    # When one dataset × architecture was trained under several recipes, ``model`` is a label such as
    # "lenet5 [lr=0.002]" (so every table, figure and mean keeps them apart) and ``arch`` the zoo name.
    arch: str = ""
    variant: str | None = None  # the keys that tell this recipe from the others, or None

    def __post_init__(self) -> None:
        self.arch = self.arch or self.model

    @property
    def ok(self) -> bool:
        """Completed or early-stopped: its test figures are final."""
        return self.status in STATUS_OK

    def row(self) -> dict[str, Any]:
        """The results.csv row of this run."""
        values: dict[str, Any] = {
            "run_id": self.run_id,
            "dataset": self.dataset,
            "model": self.arch,
            "schedule": self.schedule,
            "seed": self.seed,
            "status": self.status,
            "error": self.error,
            "recipe_hash": self.recipe,
            "recipe": self.variant,
        }
        values.update({k: self.figures.get(k) for k in FIGURES})
        return values


@dataclass
class StudyFile:
    """A study directory and its parsed ``study.yaml`` (empty when it has none)."""

    path: Path
    definition: dict[str, Any]
    text: str  # study.yaml as written, for the report header


@dataclass
class Results:
    """Every run of one or more study directories, sorted by dataset, model, schedule, seed."""

    study_dirs: tuple[Path, ...]
    runs: list[RunRecord]
    studies: list[StudyFile]
    speed_files: list[dict[str, Any]]  # every speed/<model>.json found, with "_path" added
    samples: list[Path]  # samples.npz files, one per study directory that has one
    problems: list[str]  # unreadable files, duplicate runs: listed in the report

    def datasets(self) -> list[str]:
        return sorted({r.dataset for r in self.runs})

    def models(self, dataset: str | None = None) -> list[str]:
        return sorted({r.model for r in self.runs if dataset is None or r.dataset == dataset})

    def schedules(self, dataset: str | None = None) -> list[str]:
        return sorted({r.schedule for r in self.runs if dataset is None or r.dataset == dataset})

    def status_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(r.status for r in self.runs).items()))

    def for_dataset(self, dataset: str) -> list[RunRecord]:
        return [r for r in self.runs if r.dataset == dataset]


def collect(study_dirs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str], strict: bool = False) -> Results:
    """Read the run directories and speed files of one or more study directories.

    A study directory holds ``runs/<run_id>/``; a directory whose sub-directories are themselves run
    directories (``cnnbench train`` outputs side by side) is read the same way. A run directory
    without ``summary.json`` is listed as ``running`` (while a live process holds the study lock) or
    ``missing``. Runs that ``study.yaml`` defines (a ``runs:`` list, or ``datasets``/``models``/
    ``schedules``/``seeds`` lists) but that have no directory anywhere are listed as ``missing``.

    Args:
        study_dirs: one directory or several (shards of one study).
        strict: raise on an unreadable result file instead of listing the run as ``unreadable``.

    Raises:
        ResultsError: a directory does not exist or holds no run directory (naming it), or, with
            ``strict``, a result file cannot be read.
    """
    if isinstance(study_dirs, (str, os.PathLike)):
        study_dirs = [study_dirs]
    dirs = tuple(Path(d) for d in study_dirs)
    if not dirs:
        raise ResultsError("no study directory given: expected at least one STUDY_DIR")
    problems: list[str] = []
    studies: list[StudyFile] = []
    speed_files: list[dict[str, Any]] = []
    samples: list[Path] = []
    by_id: dict[tuple[str, str | None], RunRecord] = {}
    for study_dir in dirs:
        study = _read_study_file(study_dir, strict, problems)
        studies.append(study)
        speeds = _read_speed_files(study_dir, strict, problems)
        speed_files.extend(speeds)
        if (study_dir / "samples.npz").is_file():
            samples.append(study_dir / "samples.npz")
        lock_live = _lock_is_live(study_dir / ".lock")
        run_dirs = _run_dirs(study_dir)
        if not run_dirs and not study.definition:
            raise ResultsError(
                f"{study_dir} holds no run directories: expected {study_dir}/runs/<run_id>/ "
                "(each with summary.json) or study.yaml"
            )
        for run_dir in run_dirs:
            record = _read_run(run_dir, study_dir, speeds, lock_live, strict, problems)
            _keep(by_id, record, problems)
    _add_missing_runs(by_id, studies)
    runs = list(by_id.values())
    _label_recipes(runs, several_studies=len(dirs) > 1)
    runs.sort(key=lambda r: (r.dataset, r.model, r.schedule, r.seed if r.seed is not None else -1, r.run_id))
    return Results(dirs, runs, studies, speed_files, samples, problems)


def _add_missing_runs(by_id: dict[tuple[str, str | None], RunRecord], studies: list[StudyFile]) -> None:
    """List as ``missing`` the runs the study definitions name but no study directory holds."""
    found = {(r.dataset, r.model, r.schedule, r.seed) for r in by_id.values()}
    found_ids = {r.run_id for r in by_id.values()}
    for run_id, (key, study_dir) in _expected_runs(studies).items():
        if run_id in found_ids or key in found:
            continue
        by_id[(run_id, None)] = RunRecord(
            run_id=run_id,
            dataset=key[0],
            model=key[1],
            schedule=key[2],
            seed=key[3],
            status="missing",
            error="defined in study.yaml, but no run directory in the given study directories",
            figures=dict.fromkeys(FIGURES),
            path=None,
            study_dir=study_dir,
        )


def _label_recipes(runs: list[RunRecord], several_studies: bool) -> None:
    """Give every dataset × architecture trained under more than one recipe a label per recipe.

    The label names the recipe keys that differ (``lr=0.002``), preceded by the study directory when
    the runs come from several studies; a difference outside the recipe values (a run directory
    without config.yaml) falls back to the hash.
    """
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for run in runs:
        if run.path is not None:
            groups.setdefault((run.dataset, run.arch), []).append(run)
    for run in runs:
        # a run the study defines but nobody started belongs with its siblings when they share one recipe
        siblings = {r.recipe for r in groups.get((run.dataset, run.arch), [])}
        if run.path is None and run.recipe is None and len(siblings) == 1:
            run.recipe = next(iter(siblings))
    for members in groups.values():
        by_recipe: dict[str | None, list[RunRecord]] = {}
        for run in members:
            by_recipe.setdefault(run.recipe, []).append(run)
        if len(by_recipe) < 2:
            continue
        samples = {h: next((r.config for r in rs if r.config), {}) for h, rs in by_recipe.items()}
        keys = recipe_differences([c for c in samples.values() if c])
        studies = {h: sorted({r.study_dir.name for r in rs}) for h, rs in by_recipe.items()}
        for h, rs in by_recipe.items():
            parts = []
            if several_studies and len({tuple(v) for v in studies.values()}) > 1:
                parts.append(",".join(studies[h]))
            described = describe_recipe(samples[h], keys) if samples[h] and keys else ""
            parts.append(described or f"recipe {h or 'unknown'}")
            label = "; ".join(parts)
            for run in rs:
                run.variant = label
                run.model = f"{run.arch} [{label}]"


def _run_dirs(study_dir: Path) -> list[Path]:
    if not study_dir.is_dir():
        what = "is a file, not a directory" if study_dir.exists() else "does not exist"
        raise ResultsError(f"study directory {study_dir} {what}")
    root = study_dir / "runs" if (study_dir / "runs").is_dir() else study_dir
    markers = ("summary.json", "config.yaml", "metrics.csv")
    return sorted(p for p in root.iterdir() if p.is_dir() and any((p / m).is_file() for m in markers))


def _read_study_file(study_dir: Path, strict: bool, problems: list[str]) -> StudyFile:
    path = study_dir / "study.yaml"
    if not path.is_file():
        return StudyFile(study_dir, {}, "")
    try:
        definition = read_yaml_file(path)
    except ResultsError as exc:
        if strict:
            raise
        problems.append(str(exc))
        return StudyFile(study_dir, {}, "")
    text = path.read_text(encoding="utf-8", errors="replace")
    return StudyFile(study_dir, definition if isinstance(definition, dict) else {}, text)


def _read_speed_files(study_dir: Path, strict: bool, problems: list[str]) -> list[dict[str, Any]]:
    out = []
    speed_dir = study_dir / "speed"
    if not speed_dir.is_dir():
        return out
    for path in sorted(speed_dir.glob("*.json")):
        try:
            data = read_json_file(path)
            if not isinstance(data, dict) or "model" not in data:
                raise ResultsError(f"{path} is not a speed file: expected a JSON object with a 'model' key")
            _check_speed_figures(path, data)
        except ResultsError as exc:
            if strict:
                raise
            problems.append(f"{exc} (skipped)")
            continue
        data["_path"] = str(path)
        out.append(data)
    return out


def _check_speed_figures(path: Path, data: dict[str, Any]) -> None:
    """A hand-edited speed file must not put a negative or absurd number into a table or a Pareto plot.

    Raises:
        ResultsError: naming the file, the key and the value.
    """
    whole = {"params", "flops"}
    for key in (*SPEED_FIGURES, *_FROM_SPEED):
        if data.get(key) is not None:
            try:
                check_figure(key, data[key], whole=key in whole)
            except ResultsError as exc:
                raise ResultsError(f"{path}: {exc}") from None


def _lock_is_live(path: Path) -> bool:
    """Whether a process may still hold ``path`` (a cnnbench DirectoryLock file): the lock module's rule,
    so that a run the next study would take over is ``missing`` here, not ``running``."""
    return lock_is_live(path)


def _read_run(
    run_dir: Path,
    study_dir: Path,
    speeds: list[dict[str, Any]],
    lock_live: bool,
    strict: bool,
    problems: list[str],
) -> RunRecord:
    # Read summary first, then config: with ``strict`` the first unreadable file is the one reported.
    summary, status, error = _read_summary(run_dir, lock_live, strict, problems)
    config = _read_run_config(run_dir, strict, problems)
    dataset, model, schedule, seed = _identity(run_dir.name, summary, config)
    if status is None:
        status = str(summary.get("status") or "unknown")
        error = summary.get("error") or None
    speed = _match_speed(run_dir, model, _input_shape(config), speeds, strict, problems)
    figures = _run_figures(summary, speed, status)
    recipe = summary.get("recipe_hash") if isinstance(summary.get("recipe_hash"), str) else None
    if recipe is None and config:
        recipe = recipe_hash(config)  # a run directory written before summaries carried the hash
    return RunRecord(
        run_id=run_dir.name,
        dataset=dataset,
        model=model,
        schedule=schedule,
        seed=seed,
        status=status,
        error=None if error is None else str(error),
        figures=figures,
        path=run_dir,
        study_dir=study_dir,
        summary=summary,
        config=config,
        speed=speed,
        recipe=recipe,
    )


def _read_summary(
    run_dir: Path, lock_live: bool, strict: bool, problems: list[str]
) -> tuple[dict[str, Any], str | None, str | None]:
    """(summary, status, error) of a run; status is None when summary.json was read and holds it."""
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        epochs = _count_metric_rows(run_dir / "metrics.csv")
        status = "running" if lock_live else "missing"
        return {}, status, f"no summary.json yet ({epochs} epoch{'s' if epochs != 1 else ''} in metrics.csv)"
    try:
        loaded = read_json_file(summary_path)
        if not isinstance(loaded, dict):
            raise ResultsError(f"{summary_path} is not a run summary: expected a JSON object")
        try:
            RunSummary.from_dict(loaded)  # a figure that is not a number, or an accuracy above 1, stays out of means
        except ResultsError as exc:
            raise ResultsError(f"{summary_path}: {exc}") from exc
    except ResultsError as exc:
        if strict:
            raise
        problems.append(str(exc))
        return {}, "unreadable", str(exc)
    return loaded, None, None


def _read_run_config(run_dir: Path, strict: bool, problems: list[str]) -> dict[str, Any]:
    """config.yaml of a run; empty when absent or (without ``strict``) unreadable. Keys that are not
    cnnbench settings (added by hand) are listed as a problem and left out."""
    try:
        config = read_config(run_dir) or {}
    except ResultsError as exc:
        if strict:
            raise
        problems.append(str(exc))
        return {}
    unknown = unknown_config_keys(config)
    if unknown:
        problems.append(describe_unknown_keys(run_dir / "config.yaml", unknown))
        config = {k: v for k, v in config.items() if k not in unknown}
    return config


def _run_figures(summary: dict[str, Any], speed: dict[str, Any] | None, status: str) -> dict[str, Any]:
    """The run's figures: summary.json's, the speed file's, and the speed file's stand-ins for missing ones."""
    figures: dict[str, Any] = {k: _number(summary.get(k)) for k in SUMMARY_FIGURES}
    for key in SPEED_FIGURES:
        figures[key] = _number(speed.get(key)) if speed else None
    if speed:
        for key in _FROM_SPEED:
            # sizes are the model's; the speed file's test pass stands in only for a run that finished
            if figures[key] is None and (key != "test_time_s" or status in STATUS_OK):
                figures[key] = _number(speed.get(key))
    return figures


def _identity(name: str, summary: dict[str, Any], config: dict[str, Any]) -> tuple[str, str, str, int | None]:
    """(dataset, model, schedule, seed) from summary.json, else config.yaml, else the directory name."""
    run_id = RunId.parse(name)
    parsed = dataclasses.astuple(run_id) if run_id else ("?", name, "?", None)
    dataset = summary.get("dataset") or config.get("data") or parsed[0]
    model = summary.get("model") or config.get("model") or parsed[1]
    schedule = summary.get("schedule") or config.get("schedule") or parsed[2]
    seed = summary.get("seed", config.get("seed", parsed[3]))
    try:
        seed = int(seed) if seed is not None else None
    except (TypeError, ValueError):
        seed = None
    return str(dataset), str(model), str(schedule), seed


def _count_metric_rows(path: Path) -> int:
    try:
        with open(path, encoding="utf-8") as f:
            return max(0, sum(1 for line in f if line.strip()) - 1)
    except OSError:
        return 0


def _match_speed(
    run_dir: Path,
    model: str,
    shape: list[int] | None,
    speeds: list[dict[str, Any]],
    strict: bool,
    problems: list[str],
) -> dict[str, Any] | None:
    """The run's own speed.json, else the study's speed file for this model at the run's input size."""
    own = run_dir / "speed.json"
    if own.is_file():
        try:
            data = read_json_file(own)
            if isinstance(data, dict):
                _check_speed_figures(own, data)
                data["_path"] = str(own)
                return data
        except ResultsError as exc:
            if strict:
                raise
            problems.append(f"{exc} (skipped)")
    candidates = [s for s in speeds if s.get("model") == model]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    if shape is not None:
        matching = [s for s in candidates if list(s.get("input") or []) == shape]
        return matching[-1] if matching else None
    return candidates[-1]


def _input_shape(config: dict[str, Any]) -> list[int] | None:
    """[C, H, W] of the run's model input, from config.yaml ``model_args``."""
    args = config.get("model_args") or {}
    try:
        return [int(args["in_chans"]), int(args["input_size"]), int(args["input_size"])]
    except (KeyError, TypeError, ValueError):
        return None


def _number(value: Any) -> float | int | None:
    """A finite number, or None (JSON null, NaN, strings, booleans)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None


_RANK = {"completed": 0, "early_stopped": 0, "diverged": 1, "failed": 1, "interrupted": 2, "running": 3}


def _keep(by_id: dict[tuple[str, str | None], RunRecord], record: RunRecord, problems: list[str]) -> None:
    """Keep one record per run_id and recipe: the most finished one (a shard that completed it beats one
    that did not). The same run id under another recipe is another run (two studies with other
    settings), kept beside it."""
    key = (record.run_id, record.recipe)
    old = by_id.get(key)
    if old is None:
        by_id[key] = record
        return
    better = _RANK.get(record.status, 9) < _RANK.get(old.status, 9)
    kept, dropped = (record, old) if better else (old, record)
    by_id[key] = kept
    problems.append(
        f"run {record.run_id} is in both {kept.study_dir} and {dropped.study_dir}; "
        f"kept the one in {kept.study_dir} ({kept.status})"
    )


def _expected_runs(studies: Iterable[StudyFile]) -> dict[str, tuple[tuple[str, str, str, int | None], Path]]:
    """run_id → ((dataset, model, schedule, seed), study dir) of the runs the study definitions name.

    An explicit ``runs`` list (what ``cnnbench run`` writes: this shard's run ids) wins; otherwise the
    product of ``datasets``/``models``/``schedules`` lists and a ``seeds`` list, when all are present.
    """
    expected: dict[str, tuple[tuple[str, str, str, int | None], Path]] = {}
    for study in studies:
        d = study.definition
        runs = d.get("runs")
        if isinstance(runs, list):
            for item in runs:
                run_id = item.get("run_id") if isinstance(item, dict) else item
                parsed = RunId.parse(str(run_id)) if run_id is not None else None
                if parsed:
                    expected.setdefault(str(run_id), (dataclasses.astuple(parsed), study.path))
            continue
        lists = [_str_list(d.get(k)) for k in ("datasets", "models", "schedules")]
        seeds = _seed_list(d.get("seeds"))
        if lists[0] is None or lists[1] is None or lists[2] is None or seeds is None:
            continue
        for dataset in lists[0]:
            for model in lists[1]:
                for schedule in lists[2]:
                    for seed in seeds:
                        key = (dataset, model, schedule, seed)
                        expected.setdefault(str(RunId(*key)), (key, study.path))
    return expected


def _str_list(value: Any) -> list[str] | None:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None


def _seed_list(value: Any) -> list[int] | None:
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value
    return None
