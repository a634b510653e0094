"""A study's runs: planned from its definition, sliced into shards, and what each run directory needs
(done, resume, stale, new); the planned work and its estimated time, said before the first run.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from cnnbench.engine.config import TrainConfig
from cnnbench.errors import CnnbenchError
from cnnbench.rundir import STATUS_FINISHED, RunConfig, RunFiles, RunId
from cnnbench.rundir.summary import read_summary_json
from cnnbench.study.datasets import dataset_for
from cnnbench.study.spec import StudySpec


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


class RunAction(str, Enum):
    """What a study does with a run's directory."""

    DONE = "done"  # finished with this recipe (same config hash): skipped
    RESUME = "resume"  # started with this recipe: continued from its checkpoint
    STALE = "stale"  # holds another recipe's run: moved aside, then started again
    DAMAGED = "damaged"  # its summary.json cannot be read: moved aside (kept), then started again
    NEW = "new"  # nothing there yet

    __str__ = str.__str__
    __format__ = str.__format__


def run_status(run_dir: Path, cfg: TrainConfig) -> RunAction:
    """What to do with a run directory that may already exist."""
    if not run_dir.exists():
        return RunAction.NEW
    cfg_hash = cfg.hash()
    try:
        summary = read_summary_json(run_dir) if RunFiles(run_dir).summary.exists() else None
    except CnnbenchError:
        # A finished run keeps best.pt, not the last checkpoint, so resuming it would train it again over
        # its own files: the directory is kept aside instead, and the run starts again.
        return RunAction.DAMAGED
    if (
        isinstance(summary, dict)
        and summary.get("config_hash") == cfg_hash
        and summary.get("status") in STATUS_FINISHED
    ):
        return RunAction.DONE
    if RunFiles(run_dir).config.exists():
        try:
            saved_hash = RunConfig.read(run_dir).config_hash
        except CnnbenchError:
            saved_hash = None
        return RunAction.RESUME if saved_hash == cfg_hash else RunAction.STALE
    return RunAction.NEW if not any(run_dir.iterdir()) else RunAction.STALE


def log_plan(todo: list[PlannedRun], log) -> None:
    """The planned work, and on a CPU an estimate of the time it takes, before the first run starts."""
    import torch

    from cnnbench.study.estimate import describe, run_work

    work = []
    for planned in todo:
        dataset = dataset_for(planned.config)
        size = planned.config.image_size or dataset.image_shape[1]
        w = run_work(planned.run_id, planned.config, len(dataset.train), len(dataset.val), len(dataset.test), size)
        if w is None:
            log(f"equal-time study: each run trains {planned.config.time_budget_s:g} s; this machine decides its steps")
            return
        work.append(w)
    cpu = not torch.cuda.is_available() or all(r.config.device == "cpu" for r in todo)
    log(describe(work, cpu))
