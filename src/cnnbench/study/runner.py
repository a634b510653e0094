"""Run a study: plan its runs, skip the finished ones, run the rest, measure, analyse.

A study directory can be killed at any moment and the same command continues it: finished runs
(same config hash) are skipped, a run with checkpoints resumes, a run whose recipe changed is moved
aside (never deleted) and started again. The caller's ``on_results`` hook (the CLI passes
``cnnbench.report.update_results``) rewrites ``results.csv`` from the run directories after every
run, so it is always complete and never holds a run twice; the caller's ``on_finished`` hook builds
the report (the report is a layer above the study) while the study still holds its lock, so a
second ``cnnbench run`` on the directory cannot start until the first one's report is written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cnnbench.engine.config import TrainConfig
from cnnbench.engine.stop import STOP
from cnnbench.errors import CnnbenchError
from cnnbench.rundir import STATUS_FINISHED, STATUS_OK, RunId, best_checkpoint_differs, recipe_hash
from cnnbench.study.spec import StudySpec, validate_study
from cnnbench.utils.io import atomic_write_json, atomic_write_text, check_writable_dir, read_json
from cnnbench.utils.lock import DirectoryLock
from cnnbench.utils.yamlfile import load_yaml

LR_FIND_DIR = "lr_find"  # STUDY_DIR/lr_find/: the range tests of --lr auto, one per model, data, seed and recipe


@dataclass
class PlannedRun:
    run_id: str
    dataset: str
    model: str
    schedule: str
    seed: int
    config: TrainConfig

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "config": self.config.to_dict()}


@dataclass
class StudyResult:
    out_dir: Path
    runs: list[dict[str, Any]]  # run_id, status, action (ran, skipped, failed), seconds
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


def plan_runs(spec: StudySpec, models: list[str]) -> list[PlannedRun]:
    """Every (dataset, model, schedule, seed), runs of one model together (caches stay warm)."""
    runs = []
    for dataset in spec.data:
        for model in models:
            for schedule in spec.schedules:
                for seed in spec.seeds:
                    cfg = spec.run_config(dataset, model, schedule, seed)
                    runs.append(
                        PlannedRun(str(RunId(dataset, model, schedule, seed)), dataset, model, schedule, seed, cfg)
                    )
    return runs


def shard_runs(runs: list[PlannedRun], shard: tuple[int, int] | None) -> list[PlannedRun]:
    """A deterministic slice: run i of the sorted run ids goes to shard i mod n."""
    if shard is None:
        return runs
    index, count = shard
    ordered = sorted(runs, key=lambda r: r.run_id)
    chosen = {r.run_id for i, r in enumerate(ordered) if i % count == index}
    return [r for r in runs if r.run_id in chosen]


def run_status(run_dir: Path, cfg: TrainConfig) -> str:
    """done | resume | stale | new — what to do with a run directory that may already exist."""
    if not run_dir.exists():
        return "new"
    cfg_hash = cfg.hash()
    try:
        summary = read_json(run_dir / "summary.json") if (run_dir / "summary.json").exists() else None
    except CnnbenchError:
        summary = None
    if summary is not None and summary.get("config_hash") == cfg_hash and summary.get("status") in STATUS_FINISHED:
        return "done"
    config_path = run_dir / "config.yaml"
    if config_path.exists():
        try:
            saved = load_yaml(config_path.read_text(encoding="utf-8"))
            saved_hash = saved.get("resolved", {}).get("config_hash") if isinstance(saved, dict) else None
        except (yaml.YAMLError, OSError, UnicodeDecodeError, AttributeError):
            saved_hash = None  # a damaged config: the run is stale, moved aside and run again
        if saved_hash == cfg_hash:
            return "resume"
        return "stale"
    return "new" if not any(run_dir.iterdir()) else "stale"


def _move_aside(run_dir: Path) -> Path:
    dest = run_dir.parent / ".replaced" / f"{run_dir.name}.{time.strftime('%Y%m%d-%H%M%S')}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(run_dir), str(dest))
    return dest


_DATASETS: dict[tuple, Any] = {}


def _dataset_for(cfg: TrainConfig):
    """Datasets are loaded once per process and shared by every run that uses them."""
    from cnnbench.data import load_dataset

    key = tuple(sorted(dataclasses.asdict(cfg.data_config()).items()))
    if key not in _DATASETS:
        _DATASETS[key] = load_dataset(cfg.data_config())
    return _DATASETS[key]


def execute_run(planned: PlannedRun, run_dir: Path) -> dict[str, Any]:
    """Train one planned run; a failure becomes a ``failed`` summary, never a crashed study."""
    from cnnbench.engine.trainer import fit

    if STOP.set:  # a worker asked to stop takes no new run
        return {"status": "not_started", "error": f"the study was stopped by {STOP.signal} before this run"}
    action = run_status(run_dir, planned.config)
    if action == "done":
        return read_json(run_dir / "summary.json")
    notes = []
    if action == "stale":
        moved = _move_aside(run_dir)
        notes.append(f"the recipe changed; the previous run was moved to {moved}")
    cfg = planned.config.replace(progress=False, notes=list(planned.config.notes) + notes)
    try:
        # --lr auto: the runs of one model, data and seed share a range test (schedules differ after it)
        lr_find_dir = run_dir.parent.parent / LR_FIND_DIR
        return fit(
            cfg, run_dir, resume=action == "resume", dataset=_dataset_for(cfg), quiet=True, lr_find_dir=lr_find_dir
        )
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # the study goes on with the other runs; the report lists this one
        message = str(exc) if isinstance(exc, CnnbenchError) else f"{type(exc).__name__}: {exc}"
        run_dir.mkdir(parents=True, exist_ok=True)
        if not isinstance(exc, CnnbenchError):
            atomic_write_text(run_dir / "error.log", traceback.format_exc())
            message += " (traceback in error.log)"
        summary = {
            "model": cfg.model,
            "dataset": cfg.data,
            "schedule": cfg.schedule,
            "seed": cfg.seed,
            "status": "failed",
            "error": message,
            "config_hash": cfg.hash(),
            "recipe_hash": recipe_hash(cfg.to_dict()),
            "notes": cfg.notes,
        }
        atomic_write_json(run_dir / "summary.json", summary)
        return summary


_WORKER = {"busy": False}


def _worker_init(device_queue, parent_pid: int) -> None:
    """Pool workers: die with the study, stop on its signal, pin one GPU each when there are several."""
    from cnnbench.utils.orphans import die_with_parent, start_orphan_watchdog
    from cnnbench.utils.quiet import quiet_numeric_warnings

    quiet_numeric_warnings()
    # SIGTERM, not SIGKILL: the worker's STOP handler checkpoints its run before it exits
    die_with_parent(parent_pid, signal.SIGTERM)
    STOP.install_forever()
    # a worker whose study died exits once its run has checkpointed (the kernel's SIGTERM stopped it);
    # without this it would wait forever for work from a parent that is gone
    start_orphan_watchdog(parent_pid, may_exit=lambda: not _WORKER["busy"])
    if device_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(device_queue.get())


def _worker_run(planned: PlannedRun, run_dir: str) -> dict[str, Any]:
    _WORKER["busy"] = True
    try:
        return execute_run(planned, Path(run_dir))
    finally:
        _WORKER["busy"] = False


def choose_workers(requested: int | str, runs: list[PlannedRun]) -> tuple[int, list[int] | None, str]:
    """(workers, GPU ids to pin or None, why) — auto: 1 on a CPU, one per GPU, several on one big GPU."""
    import torch

    from cnnbench.utils.threads import usable_cores

    on_cpu = not torch.cuda.is_available() or all(r.config.device == "cpu" for r in runs)
    if requested != "auto":
        n, cores = int(requested), usable_cores()
        if on_cpu and n > cores:
            return (
                n,
                None,
                (
                    f"{n} worker(s) as asked; note: {n} concurrent runs on {cores} CPU core(s) oversubscribe them: "
                    "the runs share the cores and each runs slower, so the study takes no less time "
                    "(--workers auto uses 1 on a CPU)"
                ),
            )
        return n, None, f"{n} worker(s) as asked"
    if on_cpu:
        return 1, None, "1 worker (CPU: one run at a time uses every core)"
    gpus = torch.cuda.device_count()
    if gpus > 1:
        return gpus, list(range(gpus)), f"{gpus} workers, one per GPU"
    free, _ = torch.cuda.mem_get_info()
    small = all((r.config.image_size or 32) <= 64 for r in runs)
    # Small-input runs use a few GB each; several share one GPU and fill the gaps between launches.
    n = max(1, min(4, int(free / 2**30 // 12))) if small else 1
    return n, None, f"{n} worker(s) on one GPU ({free / 2**30:.0f} GiB free, {'small' if small else 'large'} inputs)"


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
    with DirectoryLock(out), STOP.installed():
        result = _run_locked(spec, out, models, runs, shard, workers, command, log, started, on_results)
        if on_finished is not None and result.interrupted is None:
            on_finished(result)
        return result


def _run_locked(spec, out, models, runs, shard, workers, command, log, started, on_results) -> StudyResult:
    def write_results() -> None:
        if on_results is not None:
            on_results(out)

    _write_study_file(spec, out, models, runs, shard, command)
    result = StudyResult(out_dir=out, runs=[], notes=list(spec.notes))
    for line in spec.notes:
        log(line)
    _write_samples(spec, runs, out, result.notes, log)
    _write_augmented(runs, out)
    todo = _skip_finished(runs, out, result, log)
    n_workers, gpu_ids, why = choose_workers(workers or spec.workers, todo or runs)
    if todo:
        _log_plan(todo, log)
        log(f"running {len(todo)} run(s) with {why}")
    finished = _AfterRun(spec, out, result, len(todo), log, write_results)
    if n_workers <= 1 or len(todo) <= 1:
        for planned in todo:
            if STOP.set:
                break
            t0 = time.perf_counter()
            summary = execute_run(planned, out / "runs" / planned.run_id)
            finished(planned, summary, time.perf_counter() - t0)
    else:
        _run_pool(todo, out, n_workers, gpu_ids, finished)

    if STOP.set:
        # Stop within seconds (a scheduler's grace period is short): results.csv is current, the
        # interrupted run has its checkpoint, and the same command resumes; no analysis or report now.
        write_results()
        result.interrupted = STOP.signal
        result.seconds = time.perf_counter() - started
        done = {r["run_id"] for r in result.runs if r["status"] in STATUS_FINISHED}
        left = len([p for p in todo if p.run_id not in done])
        log(f"study stopped by {STOP.signal}: {left} run(s) not finished; run the same command to resume")
        return result
    if spec.embed:
        _embed_best_runs(spec, out, log)
    write_results()
    result.seconds = time.perf_counter() - started
    return result


def _write_study_file(spec: StudySpec, out: Path, models, runs: list[PlannedRun], shard, command) -> None:
    """study.yaml: the resolved definition, the models and runs it expands to, and how it was started."""
    resolved = spec.to_dict()
    resolved.update(resolved_models=models, shard=list(shard) if shard else None, command=command)
    resolved["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    resolved["runs"] = [r.run_id for r in runs]
    atomic_write_text(out / "study.yaml", yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))


def _skip_finished(runs: list[PlannedRun], out: Path, result: StudyResult, log) -> list[PlannedRun]:
    """The runs still to do; the finished ones (same config hash) are recorded as skipped."""
    todo = [r for r in runs if run_status(out / "runs" / r.run_id, r.config) != "done"]
    skipped = [r for r in runs if r not in todo]
    for r in runs:
        _note_unknown_config_keys(out / "runs" / r.run_id, log)
    for r in skipped:
        result.runs.append({"run_id": r.run_id, "action": "skipped", "status": "done"})
    if skipped:
        log(f"{len(skipped)} of {len(runs)} runs already finished; skipping them")
    return todo


def _note_unknown_config_keys(run_dir: Path, log) -> None:
    """Say which keys of a run's config.yaml are ignored (added by hand): a study never reads them."""
    from cnnbench.runs import open_run

    if not (run_dir / "config.yaml").is_file():
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
        if status == "not_started":
            return
        acc = summary.get("test_accuracy")
        acc_text = f"test acc {acc:.4f}" if isinstance(acc, float) else (summary.get("error") or "")
        done = len([x for x in self.result.runs if x["action"] != "skipped"]) + 1
        self.log(f"[{done}/{self.todo}] {planned.run_id}: {status}, {acc_text} ({seconds:.1f} s)")
        self.result.runs.append({"run_id": planned.run_id, "action": "ran", "status": status, "seconds": seconds})
        if status in STATUS_OK and not self.spec.keep_last_checkpoint:
            # a study never resumes a finished run (a changed recipe starts over); best.pt is what is
            # evaluated and analysed, so last.pt (weights + optimiser state, 3× best with Adam) goes
            for name in ("last.pt", "last.pt.sha256"):
                (self.out / "runs" / planned.run_id / "checkpoint" / name).unlink(missing_ok=True)
        if self.spec.speed and status in STATUS_FINISHED:
            _measure_speed(self.spec, planned, self.out, self.log)
        self.write_results()


def _log_plan(todo: list[PlannedRun], log) -> None:
    """The planned work, and on a CPU an estimate of the time it takes, before the first run starts."""
    import torch

    from cnnbench.study.estimate import describe, run_work

    work = []
    for planned in todo:
        dataset = _dataset_for(planned.config)
        size = planned.config.image_size or dataset.image_shape[1]
        w = run_work(planned.run_id, planned.config, len(dataset.train), len(dataset.val), len(dataset.test), size)
        if w is None:
            log(f"equal-time study: each run trains {planned.config.time_budget_s:g} s; this machine decides its steps")
            return
        work.append(w)
    cpu = not torch.cuda.is_available() or all(r.config.device == "cpu" for r in todo)
    log(describe(work, cpu))


def _run_pool(todo, out, n_workers, gpu_ids, finished) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")  # CUDA cannot be forked
    queue = None
    if gpu_ids:
        queue = ctx.Queue()
        for gid in gpu_ids:
            queue.put(gid)
    with ProcessPoolExecutor(
        n_workers, mp_context=ctx, initializer=_worker_init, initargs=(queue, os.getpid())
    ) as pool:
        starts = {}
        futures = {}
        for planned in todo:
            fut = pool.submit(_worker_run, planned, str(out / "runs" / planned.run_id))
            futures[fut] = planned
            starts[fut] = time.perf_counter()
        pending = set(futures)
        told = False
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                if not fut.cancelled():
                    finished(futures[fut], fut.result(), time.perf_counter() - starts[fut])
            if STOP.set and not told:
                # tell every worker (a SIGTERM to the study reaches only this process): each checkpoints
                # its run and takes no other; runs not yet started are cancelled
                told = True
                for fut in pending:
                    fut.cancel()
                for proc in list(getattr(pool, "_processes", {}).values()):
                    with contextlib.suppress(OSError):
                        os.kill(proc.pid, signal.SIGTERM)
                pending = {f for f in pending if not f.cancelled()}


def _measure_speed(spec: StudySpec, planned: PlannedRun, out: Path, log) -> None:
    """Speed of each model at its run's input size, once per study (speed/<model>.json)."""
    from cnnbench.bench import measure_model

    summary = read_json(out / "runs" / planned.run_id / "summary.json")
    size = summary.get("input_size")
    path = out / "speed" / f"{planned.model}.json"
    if path.exists():
        try:
            if read_json(path).get("input", [None, None])[1] == size:
                return
        except CnnbenchError:
            pass
    dataset = _dataset_for(planned.config)
    c = dataset.image_shape[0]
    try:
        result = measure_model(
            planned.model,
            (c, size, size),
            num_classes=dataset.num_classes,
            device=planned.config.device,
            onnx=spec.onnx,
        )
    except Exception as exc:  # a speed measurement never fails the study
        log(f"speed of {planned.model} could not be measured: {type(exc).__name__}: {exc}")
        return
    atomic_write_json(path, result.to_dict())


def _embed_best_runs(spec: StudySpec, out: Path, log) -> None:
    """t-SNE + clustering for the best run (by validation accuracy) of each dataset × model."""
    from cnnbench.analysis import embed_run

    best: dict[tuple[str, str], tuple[float, Path]] = {}
    for run_dir in sorted((out / "runs").glob("*")):
        if not (run_dir / "summary.json").exists():
            continue
        try:
            s = read_json(run_dir / "summary.json")
        except CnnbenchError:
            continue
        if s.get("status") not in STATUS_OK or s.get("best_val_accuracy") is None:
            continue
        key = (s["dataset"], s["model"])
        if key not in best or s["best_val_accuracy"] > best[key][0]:
            best[key] = (s["best_val_accuracy"], run_dir)
    for (_, model), (_, run_dir) in sorted(best.items()):
        if _analysis_is_current(run_dir):
            continue
        t0 = time.perf_counter()
        try:
            embed_run(run_dir, max_points=spec.embed_max_points)
        except Exception as exc:  # analysis of one model never fails the study
            reason = str(exc) if isinstance(exc, CnnbenchError) else f"{type(exc).__name__}: {exc}"
            log(
                f"feature analysis of {run_dir.name} failed: {reason}; the study goes on "
                f"(--embed-max-points sets the points analysed per model, --no-embed skips the analysis)"
            )
            continue
        log(f"feature analysis of {model} ({run_dir.name}): {time.perf_counter() - t0:.1f} s")


def _analysis_is_current(run_dir: Path) -> bool:
    """An analysis.json newer than the run's summary, made from the run's best checkpoint as it is now."""
    path = run_dir / "analysis.json"
    if not path.exists() or path.stat().st_mtime < (run_dir / "summary.json").stat().st_mtime:
        return False
    try:
        recorded = read_json(path).get("checkpoint_sha256")
    except (CnnbenchError, AttributeError):
        return False  # unreadable: analysed again
    return not best_checkpoint_differs(run_dir, recorded if isinstance(recorded, str) else None)


def _write_augmented(runs: list[PlannedRun], out: Path) -> None:
    """The first run's augmentation applied to a few training images (the report's augmentation figure)."""
    from cnnbench.data.augment import training_augment_kind
    from cnnbench.data.preview import AUGMENTED_FILE, preview_augmentation

    if (out / AUGMENTED_FILE).exists() or not runs:
        return
    cfg = runs[0].config
    dataset = _dataset_for(cfg)
    kind = training_augment_kind(cfg.augment, dataset.kind)
    # A study without augmentation still gets the figure, marked unused: what the dataset's family of
    # augmentation would do (the seed's Figure 32), so a reader can judge whether to turn it on.
    used = kind != "none"
    preview = preview_augmentation(dataset, kind if used else "auto", cfg.seed, output_size=cfg.image_size)
    if preview is not None:
        preview.used = used
        preview.save(out / AUGMENTED_FILE)


def _write_samples(spec: StudySpec, runs: list[PlannedRun], out: Path, notes: list[str], log) -> None:
    """A few training images per class of the first dataset (the report's sample grid)."""
    if (out / "samples.npz").exists() or not runs:
        return
    import io

    import numpy as np

    from cnnbench.utils.io import atomic_write_bytes

    dataset = _dataset_for(runs[0].config)
    for line in dataset.notes:
        log(line)
        notes.append(line)
    labels = np.asarray(dataset.train.labels)
    per_class = 8 if dataset.num_classes <= 20 else 1
    picks = []
    for c in range(dataset.num_classes):
        idx = np.flatnonzero(labels == c)[:per_class]
        picks.extend(idx.tolist())
    picks = np.array(sorted(picks), dtype=np.int64)[:256]
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        images=np.asarray(dataset.train.images[picks]),
        labels=labels[picks],
        classes=np.array(dataset.classes),
        dataset=np.array(dataset.name),
    )
    atomic_write_bytes(out / "samples.npz", buf.getvalue())
