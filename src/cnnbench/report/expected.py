"""The runs a study defines (``study.yaml``) but that no study directory holds: listed as ``missing``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cnnbench.report.records import FIGURES, RunRecord, StudyFile
from cnnbench.rundir import RunId, Status


def add_missing_runs(by_id: dict[tuple[str, str | None], RunRecord], studies: list[StudyFile]) -> None:
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
            status=Status.MISSING.value,
            error="defined in study.yaml, but no run directory in the given study directories",
            figures=dict.fromkeys(FIGURES),
            path=None,
            study_dir=study_dir,
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
