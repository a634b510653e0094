"""Run a study: plan its runs, skip the finished ones, run the rest, measure, analyse.

A study directory can be killed at any moment and the same command continues it: finished runs
(same config hash) are skipped, a run with checkpoints resumes, a run whose recipe changed is moved
aside (never deleted) and started again. The caller's ``on_results`` hook (the CLI passes
``cnnbench.report.update_results``) rewrites ``results.csv`` from the run directories after every
run, so it is always complete and never holds a run twice; the caller's ``on_finished`` hook builds
the report (the report is a layer above the study) while the study still holds its lock, so a
second ``cnnbench run`` on the directory cannot start until the first one's report is written.

The jobs are in modules of their own: ``plan`` (the runs, what each directory needs, the planned
work), ``execute`` (one run), ``workers`` (worker processes), ``artefacts`` (study.yaml, samples,
speed, feature analysis); this module orders them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnbench.engine.stop import STOP, STUDY_RESUME_HINT
from cnnbench.errors import CnnbenchError
from cnnbench.rundir import STATUS_FINISHED, STATUS_OK, RunFiles, Status, StudyFiles
from cnnbench.rundir.layout import REPLACED_DIR, STUDY_LOCK_FILE, checksum_path
from cnnbench.study.artefacts import embed_best_runs, measure_speed, write_augmented, write_samples, write_study_file
from cnnbench.study.execute import execute_run
from cnnbench.study.plan import PlannedRun, RunAction, log_plan, plan_runs, run_status, shard_runs
from cnnbench.study.spec import StudySpec, validate_study
from cnnbench.study.workers import choose_workers, run_pool
from cnnbench.utils.io import check_writable_dir
from cnnbench.utils.lock import DirectoryLock


@dataclass
class StudyResult:
    out_dir: Path
    runs: list[dict[str, Any]]  # run_id, action (ran, skipped), status, seconds (ran only)
    report: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    interrupted: str | None = None  # SIGTERM/SIGINT that stopped the study; the same command resumes it

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "runs": self.runs,
            "report": self.report,
            "seconds": self.seconds,
            "notes": self.notes,
            "interrupted": self.interrupted,
        }


def run_study(
    spec: StudySpec,
    out_dir: str | Path,
    *,
    shard: tuple[int, int] | None = None,
    workers: int | str | None = None,
    command: str | None = None,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr),
    on_results: Callable[[Path], Any] | None = None,
    on_finished: Callable[[StudyResult], Any] | None = None,
) -> StudyResult:
    """Run (or continue) the study in ``out_dir``.

    Args:
        on_results: called with the study directory whenever a run directory changed (after every
            run, on a stop, at the end); ``cnnbench.report.update_results`` keeps results.csv current.
        on_finished: called with the result when the study ran to its end (not when a signal stopped
            it), before the study's lock is released: ``cnnbench run`` writes the report there.
    """
    started = time.perf_counter()
    # before any work: unknown models/datasets/recipe keys fail here, and missing pretrained weights
    # are downloaded once here rather than by each worker
    models = validate_study(spec, fetch_weights=True)
    runs = shard_runs(plan_runs(spec, models), shard)
    out = check_writable_dir(out_dir)

    def write_results() -> None:
        if on_results is not None:
            on_results(out)

    with DirectoryLock(out, STUDY_LOCK_FILE), STOP.installed():
        write_study_file(spec, out, models, runs, shard, command)
        result = StudyResult(out_dir=out, runs=[], notes=list(spec.notes))
        for line in spec.notes:
            log(line)
        write_samples(spec, runs, out, result.notes, log)
        write_augmented(runs, out)
        todo = _skip_finished(runs, out, result, log)
        finished = _AfterRun(spec, out, result, len(todo), log, write_results)
        _run_all(todo, workers or spec.workers, runs, finished)
        if STOP.set:
            return _stopped(result, todo, started, write_results, log)
        if spec.embed:
            embed_best_runs(spec, out, log)
        write_results()
        result.seconds = time.perf_counter() - started
        if on_finished is not None:
            on_finished(result)
        return result


def _run_all(todo: list[PlannedRun], workers: int | str, runs: list[PlannedRun], finished: _AfterRun) -> None:
    """The runs still to do, here one after another or on worker processes; ``finished`` after each."""
    n_workers, gpu_ids, why = choose_workers(workers, todo or runs)
    if todo:
        log_plan(todo, finished.log)
        finished.log(f"running {len(todo)} run(s) with {why}")
    if n_workers > 1 and len(todo) > 1:
        run_pool(todo, finished.out, n_workers, gpu_ids, finished)
        return
    for planned in todo:
        if STOP.set:
            break
        t0 = time.perf_counter()
        summary = execute_run(planned, StudyFiles(finished.out).run(planned.run_id))
        finished(planned, summary, time.perf_counter() - t0)


def _stopped(result: StudyResult, todo: list[PlannedRun], started: float, write_results, log) -> StudyResult:
    """Stop within seconds (a scheduler's grace period is short): results.csv is current, the
    interrupted run has its checkpoint, and the same command resumes; no analysis or report now."""
    write_results()
    result.interrupted = STOP.signal
    result.seconds = time.perf_counter() - started
    done = {r["run_id"] for r in result.runs if r["status"] in STATUS_FINISHED}
    left = len([p for p in todo if p.run_id not in done])
    log(f"study stopped by {STOP.signal}: {left} run(s) not finished; run the same command to resume")
    return result


def _skip_finished(runs: list[PlannedRun], out: Path, result: StudyResult, log) -> list[PlannedRun]:
    """The runs still to do; the finished ones (same config hash) are recorded as skipped."""
    actions = {r.run_id: run_status(StudyFiles(out).run(r.run_id), r.config) for r in runs}
    todo = [r for r in runs if actions[r.run_id] != RunAction.DONE]
    skipped = [r for r in runs if r not in todo]
    for r in todo:
        if actions[r.run_id] == RunAction.DAMAGED:
            path = RunFiles(StudyFiles(out).run(r.run_id)).summary
            kept = path.parent.parent / REPLACED_DIR
            log(f"{path}: unreadable; that run is trained again, its directory kept under {kept}")
    for r in runs:
        _note_unknown_config_keys(StudyFiles(out).run(r.run_id), log)
    for r in skipped:
        result.runs.append({"run_id": r.run_id, "action": "skipped", "status": RunAction.DONE.value})
    if skipped:
        log(f"{len(skipped)} of {len(runs)} runs already finished; skipping them")
    return todo


def _note_unknown_config_keys(run_dir: Path, log) -> None:
    """Say which keys of a run's config.yaml are ignored (added by hand): a study never reads them."""
    from cnnbench.checkpoints import open_run

    if not RunFiles(run_dir).config.is_file():
        return
    try:
        notes = open_run(run_dir).notes
    except CnnbenchError:
        return  # a damaged config: the run is stale and moved aside (run_status)
    for line in notes:
        log(f"note: {line}")


@dataclass
class _AfterRun:
    """Called in the study process once a run ended (here or in a worker): log it, tidy, measure, write results."""

    spec: StudySpec
    out: Path
    result: StudyResult
    todo: int  # runs this call of the study runs
    log: Callable[[str], None]
    write_results: Callable[[], None]

    def __call__(self, planned: PlannedRun, summary: dict[str, Any], seconds: float) -> None:
        status = summary.get("status")
        if status == Status.NOT_STARTED:
            return
        acc = summary.get("test_accuracy")
        error = str(summary.get("error") or "").removesuffix(STUDY_RESUME_HINT)  # the study's own line says how
        acc_text = f"test acc {acc:.4f}" if isinstance(acc, float) else error
        done = len([x for x in self.result.runs if x["action"] != "skipped"]) + 1
        self.log(f"[{done}/{self.todo}] {planned.run_id}: {_how_it_ended(summary)}, {acc_text} ({seconds:.1f} s)")
        self.result.runs.append({"run_id": planned.run_id, "action": "ran", "status": status, "seconds": seconds})
        if status in STATUS_OK and not self.spec.keep_last_checkpoint:
            # a study never resumes a finished run (a changed recipe starts over); best.pt is what is
            # evaluated and analysed, so last.pt (weights + optimiser state, 3× best with Adam) goes
            last = RunFiles(StudyFiles(self.out).run(planned.run_id)).checkpoint("last")
            last.unlink(missing_ok=True)
            checksum_path(last).unlink(missing_ok=True)
        if self.spec.speed and status in STATUS_FINISHED:
            measure_speed(self.spec, planned, self.out, self.log)
        self.write_results()


def _how_it_ended(summary: dict[str, Any]) -> str:
    """The status, and for a run stopped at its target where it got there ("early_stopped" alone reads as
    patience running out)."""
    status, steps, target = summary.get("status"), summary.get("steps_to_target"), summary.get("target_accuracy")
    stopped_there = isinstance(steps, int) and steps == summary.get("steps")  # patience ends later than that
    if status == Status.EARLY_STOPPED and stopped_there and isinstance(target, float):
        return f"reached {target:.0%} validation accuracy at step {steps}"
    return str(status)
