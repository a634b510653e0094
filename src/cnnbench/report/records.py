"""What the report knows about the runs of one or more study directories: one ``RunRecord`` per run,
gathered in ``Results``; and the columns of results.csv.

Plain data, built by ``report.collect``; every table, figure and statistic of the report reads these.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnbench.rundir import STATUS_OK

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
FROM_SPEED = ("params", "size_mb", "flops", "test_time_s")


@dataclass
class RunRecord:
    """One run of a study: where it is, what it is, how it ended, and its figures."""

    run_id: str
    dataset: str
    model: str
    schedule: str
    seed: int | None
    status: str  # a Status: how the run ended (summary.json), or running / missing / unreadable
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
    def augmented(self) -> bool | None:
        """Whether the run trained on augmented batches (``augment: auto`` resolved as training resolves it
        for the dataset); None when its config does not say."""
        augment = self.config.get("augment")
        if augment == "auto":
            from cnnbench.data.augment import training_augment_kind
            from cnnbench.data.catalog import get_spec

            try:
                augment = training_augment_kind(augment, get_spec(self.dataset.split(":", 1)[0]).kind)
            except KeyError:  # an image folder: natural images, augmented
                return True
        return None if augment is None else augment != "none"

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
