"""Studies: datasets × models × schedules × seeds under one recipe, run and resumed as a whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnbench.study.plan import plan_runs
from cnnbench.study.presets import PRESETS, get_preset
from cnnbench.study.runner import StudyResult, run_study
from cnnbench.study.spec import StudySpec, build_spec, load_study_file

__all__ = [
    "PRESETS",
    "StudyResult",
    "StudySpec",
    "default_study_values",
    "plan_runs",
    "resolve_spec",
    "run_study",
]


def resolve_spec(preset: str | None, study_file: str | Path | None, flags: dict[str, Any]) -> StudySpec:
    """preset < study file < flags, validated. A study file may name its own ``preset``."""
    file_values = load_study_file(study_file) if study_file else {}
    key = "--preset" if preset else f"{study_file}: preset"
    preset = preset or file_values.get("preset")
    preset = None if preset == "none" else preset  # a file's `preset: none` means what --preset none means
    base = get_preset(preset, key) if preset else None
    if base is not None:
        base["preset"] = preset
    where = str(study_file) if study_file else "flags"
    return build_spec(base, file_values, flags, where)


def default_study_values(data_dir: str | None = None, data_given: bool = False) -> tuple[str, dict[str, Any], str]:
    """What ``cnnbench run`` without a preset or study file runs: (preset, overrides, a line saying so).

    Args:
        data_given: ``--data`` was given: the preset runs on it, and no default dataset is looked for.
    """
    import torch

    gpu = torch.cuda.is_available()
    # On a GPU the large-batch version of the MNIST study (its report lists how it differs from the
    # seed's recipe); on a CPU the quick preset: the same fixed work for every model.
    preset = "mnist-study-fast" if gpu else "quick"
    how = (
        "mnist-study-fast (GPU found)"
        if gpu
        else "quick preset (no GPU: each model tuned by the same range test and trained to its target)"
    )
    if data_given:
        return preset, {}, f"default study: {how} (--preset none: train's defaults instead)"
    from cnnbench.data import resolve_default_digits

    dataset, data_note = resolve_default_digits(data_dir=data_dir)
    return preset, {"data": [dataset]}, f"default study: {how} on {dataset}. {data_note}"
