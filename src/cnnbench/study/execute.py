"""Running one planned run: skipped when done, resumed, or started (a stale directory moved aside first);
a failure becomes a ``failed`` summary.json, never a crashed study.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from cnnbench.engine.stop import RESUME_HINT, STOP, STUDY_RESUME_HINT
from cnnbench.errors import CnnbenchError
from cnnbench.rundir import RunFiles, RunSummary, Status, StudyFiles, move_aside, recipe_hash
from cnnbench.rundir.summary import read_summary_json
from cnnbench.study.datasets import dataset_for
from cnnbench.study.plan import PlannedRun, RunAction, run_status
from cnnbench.utils.io import atomic_write_json, atomic_write_text


def execute_run(planned: PlannedRun, run_dir: Path) -> dict[str, Any]:
    """Train one planned run; a failure becomes a ``failed`` summary, never a crashed study."""
    from cnnbench.engine.fit import fit

    if STOP.set:  # a worker asked to stop takes no new run
        return {"status": Status.NOT_STARTED.value, "error": f"the study was stopped by {STOP.signal} before this run"}
    action = run_status(run_dir, planned.config)
    if action == RunAction.DONE:
        return read_summary_json(run_dir)
    notes = []
    if action in (RunAction.STALE, RunAction.DAMAGED):
        moved = move_aside(run_dir)
        why = "the recipe changed" if action == RunAction.STALE else f"{RunFiles(run_dir).summary.name} was unreadable"
        notes.append(f"{why}; the previous run was moved to {moved}")
    cfg = planned.config.replace(progress=False, notes=list(planned.config.notes) + notes)
    try:
        # --lr auto: the runs of one model, data and seed share a range test (schedules differ after it)
        lr_find_dir = StudyFiles(run_dir.parent.parent).lr_find_dir
        resume = action == RunAction.RESUME
        summary = fit(cfg, run_dir, resume=resume, dataset=dataset_for(cfg), quiet=True, lr_find_dir=lr_find_dir)
        return _study_hint(summary, run_dir)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # the study goes on with the other runs; the report lists this one
        return _failed(cfg, run_dir, exc).to_dict()


def _study_hint(summary: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """A stopped run's error says how a *study* resumes (the same command), not train's --resume."""
    error = summary.get("error")
    if not isinstance(error, str) or not error.endswith(RESUME_HINT):
        return summary
    summary = {**summary, "error": error.removesuffix(RESUME_HINT) + STUDY_RESUME_HINT}
    atomic_write_json(RunFiles(run_dir).summary, summary)
    return summary


def _failed(cfg, run_dir: Path, exc: Exception) -> RunSummary:
    """The summary.json of a run that raised ``exc``: its message (a traceback in error.log for a bug)."""
    message = str(exc) if isinstance(exc, CnnbenchError) else f"{type(exc).__name__}: {exc}"
    run_dir.mkdir(parents=True, exist_ok=True)
    if not isinstance(exc, CnnbenchError):
        log = RunFiles(run_dir).error_log
        atomic_write_text(log, traceback.format_exc())
        message += f" (traceback in {log.name})"
    summary = RunSummary(
        model=cfg.model,
        dataset=cfg.data,
        schedule=cfg.schedule,
        seed=cfg.seed,
        status=Status.FAILED,
        error=message,
        config_hash=cfg.hash(),
        recipe_hash=recipe_hash(cfg.to_dict()),
        notes=cfg.notes,
    )
    summary.write(run_dir)
    return summary
