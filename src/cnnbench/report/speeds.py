"""The speed files of a study (``speed/<model>.json``, a run's own ``speed.json``) and which one a run's
figures come from: its own, else the study's file of its model at its input size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnbench.errors import ResultsError
from cnnbench.rundir import RunFiles, StudyFiles
from cnnbench.rundir.files import read_json_file
from cnnbench.rundir.summary import check_figure


def read_speed_files(study_dir: Path, strict: bool, problems: list[str]) -> list[dict[str, Any]]:
    """Every ``speed/*.json`` of a study directory, with ``_path`` added; an unreadable one is skipped
    (and listed in ``problems``), or with ``strict`` raised."""
    out = []
    speed_dir = StudyFiles(study_dir).speed_dir
    if not speed_dir.is_dir():
        return out
    for path in sorted(speed_dir.glob("*.json")):
        try:
            data = read_json_file(path)
            if not isinstance(data, dict) or "model" not in data:
                raise ResultsError(f"{path} is not a speed file: expected a JSON object with a 'model' key")
            check_speed_figures(path, data)
        except ResultsError as exc:
            if strict:
                raise
            problems.append(f"{exc} (skipped)")
            continue
        data["_path"] = str(path)
        out.append(data)
    return out


def check_speed_figures(path: Path, data: dict[str, Any]) -> None:
    """A hand-edited speed file must not put a negative or absurd number into a table or a Pareto plot.

    Raises:
        ResultsError: naming the file, the key and the value.
    """
    from cnnbench.report.records import FROM_SPEED, SPEED_FIGURES

    for key in (*SPEED_FIGURES, *FROM_SPEED):
        if data.get(key) is not None:
            try:
                check_figure(key, data[key], whole=key in ("params", "flops"))
            except ResultsError as exc:
                raise ResultsError(f"{path}: {exc}") from None


def match_speed(
    run_dir: Path,
    model: str,
    shape: list[int] | None,
    speeds: list[dict[str, Any]],
    strict: bool,
    problems: list[str],
) -> dict[str, Any] | None:
    """The run's own speed.json, else the study's speed file for this model at the run's input size."""
    own = RunFiles(run_dir).speed
    if own.is_file():
        try:
            data = read_json_file(own)
            if isinstance(data, dict):
                check_speed_figures(own, data)
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


def input_shape(config: dict[str, Any]) -> list[int] | None:
    """[C, H, W] of the run's model input, from config.yaml ``model_args``."""
    args = config.get("model_args") or {}
    try:
        return [int(args["in_chans"]), int(args["input_size"]), int(args["input_size"])]
    except (KeyError, TypeError, ValueError):
        return None
