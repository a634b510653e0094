"""Study directories → one ``RunRecord`` per run: the figures of ``summary.json`` joined with the speed files.

Reads only result files (JSON, YAML, CSV); never imports torch. Several study directories (the shards
of one study, run on different machines) merge into one ``Results``; a run found in two of them is
kept once, keyed by ``run_id``. The record types are in ``report.records``; the speed files in
``report.speeds``; the runs a study defines but nobody ran in ``report.expected``; the labels of
several recipes in ``report.recipe_labels``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnbench.errors import ResultsError
from cnnbench.report.expected import add_missing_runs
from cnnbench.report.recipe_labels import label_recipes
from cnnbench.report.records import FROM_SPEED, SPEED_FIGURES, SUMMARY_FIGURES, Results, RunRecord, StudyFile
from cnnbench.report.speeds import input_shape, match_speed, read_speed_files
from cnnbench.rundir import (
    STATUS_OK,
    RunConfig,
    RunFiles,
    RunId,
    RunSummary,
    Status,
    StudyFiles,
    is_run_dir,
    recipe_hash,
)
from cnnbench.rundir.config import describe_unknown_keys, read_yaml_file, unknown_config_keys
from cnnbench.rundir.layout import STUDY_FILE, SUMMARY_FILE
from cnnbench.rundir.summary import read_summary_json
from cnnbench.utils.lock import lock_is_live


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
        speeds = read_speed_files(study_dir, strict, problems)
        speed_files.extend(speeds)
        if StudyFiles(study_dir).samples.is_file():
            samples.append(StudyFiles(study_dir).samples)
        lock_live = lock_is_live(StudyFiles(study_dir).lock)
        run_dirs = _run_dirs(study_dir)
        if not run_dirs and not study.definition:
            raise ResultsError(
                f"{study_dir} holds no run directories: expected {StudyFiles(study_dir).runs}/<run_id>/ "
                f"(each with {SUMMARY_FILE}) or {STUDY_FILE}"
            )
        for run_dir in run_dirs:
            record = _read_run(run_dir, study_dir, speeds, lock_live, strict, problems)
            _keep(by_id, record, problems)
    add_missing_runs(by_id, studies)
    runs = list(by_id.values())
    label_recipes(runs, several_studies=len(dirs) > 1)
    runs.sort(key=lambda r: (r.dataset, r.model, r.schedule, r.seed if r.seed is not None else -1, r.run_id))
    return Results(dirs, runs, studies, speed_files, samples, problems)


def _run_dirs(study_dir: Path) -> list[Path]:
    if not study_dir.is_dir():
        what = "is a file, not a directory" if study_dir.exists() else "does not exist"
        raise ResultsError(f"study directory {study_dir} {what}")
    runs = StudyFiles(study_dir).runs
    root = runs if runs.is_dir() else study_dir
    return sorted(p for p in root.iterdir() if is_run_dir(p))


def _read_study_file(study_dir: Path, strict: bool, problems: list[str]) -> StudyFile:
    path = StudyFiles(study_dir).study
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
        status = str(summary.get("status") or Status.UNKNOWN)
        error = summary.get("error") or None
    speed = match_speed(run_dir, model, input_shape(config), speeds, strict, problems)
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
    files = RunFiles(run_dir)
    if not files.summary.is_file():
        epochs = _count_metric_rows(files.metrics)
        status = Status.RUNNING if lock_live else Status.MISSING
        plural = "s" if epochs != 1 else ""
        return {}, status.value, f"no {files.summary.name} yet ({epochs} epoch{plural} in {files.metrics.name})"
    try:
        loaded = read_summary_json(run_dir)
        try:
            RunSummary.from_dict(loaded)  # a figure that is not a number, or an accuracy above 1, stays out of means
        except ResultsError as exc:
            raise ResultsError(f"{files.summary}: {exc}") from exc
    except ResultsError as exc:
        if strict:
            raise
        problems.append(str(exc))
        return {}, Status.UNREADABLE.value, str(exc)
    return loaded, None, None


def _read_run_config(run_dir: Path, strict: bool, problems: list[str]) -> dict[str, Any]:
    """config.yaml of a run; empty when absent or (without ``strict``) unreadable. Keys that are not
    cnnbench settings (added by hand) are listed as a problem and left out."""
    try:
        config = RunConfig.read_if_present(run_dir)
    except ResultsError as exc:
        if strict:
            raise
        problems.append(str(exc))
        return {}
    values = config.values if config is not None else {}
    unknown = unknown_config_keys(values)
    if unknown:
        problems.append(describe_unknown_keys(RunFiles(run_dir).config, unknown))
        values = {k: v for k, v in values.items() if k not in unknown}
    return values


def _run_figures(summary: dict[str, Any], speed: dict[str, Any] | None, status: str) -> dict[str, Any]:
    """The run's figures: summary.json's, the speed file's, and the speed file's stand-ins for missing ones."""
    figures: dict[str, Any] = {k: _number(summary.get(k)) for k in SUMMARY_FIGURES}
    for key in SPEED_FIGURES:
        figures[key] = _number(speed.get(key)) if speed else None
    if speed:
        for key in FROM_SPEED:
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


# Which of two records of one run a merge keeps: the most finished (a shard that completed it wins).
_RANK = {
    Status.COMPLETED: 0,
    Status.EARLY_STOPPED: 0,
    Status.DIVERGED: 1,
    Status.FAILED: 1,
    Status.INTERRUPTED: 2,
    Status.RUNNING: 3,
}


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
