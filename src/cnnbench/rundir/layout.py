"""Where everything of a run directory and a study directory lies: every file name, in one place.

A module that reads or writes a file of a run directory takes its path from ``RunFiles``; a study
directory's from ``StudyFiles``. No other module spells a file name, so "what is in a run directory"
has one answer (docs/architecture.md lists the same files, with the module that writes each).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

# The files of a run directory (RUN_DIR/...).
CONFIG_FILE = "config.yaml"  # the resolved TrainConfig and its derived sections (rundir.config.RunConfig)
SUMMARY_FILE = "summary.json"  # final figures; written last, it says the run ended (rundir.summary.RunSummary)
METRICS_FILE = "metrics.csv"  # one row per validation pass (rundir.tables.MetricsLog)
STEPS_FILE = "steps.csv"  # training figures every few optimiser steps (rundir.tables.StepLog)
TEST_METRICS_FILE = "test_metrics.json"  # confusion matrix, per-class accuracy (rundir.files.TestMetrics)
PREDICTIONS_FILE = "test_predictions.npz"  # every test image's prediction (rundir.predictions.TestPredictions)
MODEL_FILE = "model.json"  # ModelSummary.to_dict() with the layer table
DATA_FILE = "data.json"  # Dataset.info()
LR_FIND_FILE = "lr_find.csv"  # --lr auto: the range test's curve (engine.lr_find.LrFindResult.csv_text)
ERROR_LOG_FILE = "error.log"  # a study's traceback of a run that failed with an unexpected error
SPEED_FILE = "speed.json"  # bench's speed figures of the run's model (optional)
EMBEDDING_FILE = "embedding.npz"  # cnnbench embed: features, t-SNE map, cluster labels (rundir.analysis)
ANALYSIS_FILE = "analysis.json"  # cnnbench embed: clustering scores (rundir.analysis)
TSNE_FIGURE = "tsne.png"  # cnnbench embed's figures
KNN_FIGURE = "knn_distance.png"
EMBED_FILES = (EMBEDDING_FILE, ANALYSIS_FILE, TSNE_FIGURE, KNN_FIGURE)
TRAIN_LOCK_FILE = ".train.lock"  # held while a process trains in the directory
CHECKPOINT_DIR = "checkpoint"  # last.pt, best.pt, last.prev.pt, each with a .sha256 beside it
TENSORBOARD_DIR = "tb"  # TensorBoard events (per step under tb/steps/)

# A directory holding any of these holds (part of) a run: ``is_run_dir``.
RUN_MARKERS = (CONFIG_FILE, SUMMARY_FILE, METRICS_FILE, CHECKPOINT_DIR)

# The files of a study directory (STUDY_DIR/...).
STUDY_FILE = "study.yaml"  # the resolved study definition (study.runner)
STUDY_LOCK_FILE = ".lock"  # held while a process runs the study
RUNS_DIR = "runs"  # runs/<run id>/: one run directory per run
SPEED_DIR = "speed"  # speed/<model>.json
LR_FIND_DIR = "lr_find"  # lr_find/<key>.json: the range tests of --lr auto, shared by the study's runs
SAMPLES_FILE = "samples.npz"  # a few training images per class, for the report
RESULTS_FILE = "results.csv"  # one row per run (report.results_csv)
AGGREGATE_FILE = "aggregate.csv"  # mean ± std over seeds
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
FIGURES_DIR = "figures"
REPLACED_DIR = ".replaced"  # runs moved aside by --overwrite or a changed recipe: <name>.<time>


@dataclass(frozen=True)
class RunFiles:
    """The paths of one run directory's files: ``RunFiles(run_dir).summary`` is ``run_dir/summary.json``."""

    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def steps(self) -> Path:
        return self.path / STEPS_FILE

    @property
    def test_metrics(self) -> Path:
        return self.path / TEST_METRICS_FILE

    @property
    def predictions(self) -> Path:
        return self.path / PREDICTIONS_FILE

    @property
    def model(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def data(self) -> Path:
        return self.path / DATA_FILE

    @property
    def lr_find(self) -> Path:
        return self.path / LR_FIND_FILE

    @property
    def error_log(self) -> Path:
        return self.path / ERROR_LOG_FILE

    @property
    def speed(self) -> Path:
        return self.path / SPEED_FILE

    @property
    def embedding(self) -> Path:
        return self.path / EMBEDDING_FILE

    @property
    def analysis(self) -> Path:
        return self.path / ANALYSIS_FILE

    @property
    def tsne_figure(self) -> Path:
        return self.path / TSNE_FIGURE

    @property
    def knn_figure(self) -> Path:
        return self.path / KNN_FIGURE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD_DIR

    def checkpoint(self, which: str = "best") -> Path:
        """``checkpoint/<which>.pt``: ``best``, ``last`` or ``last.prev``."""
        return self.checkpoints / checkpoint_file(which)

    def has_last_checkpoint(self) -> bool:
        """``last.pt`` or its fallback ``last.prev.pt`` exists: a run that can resume."""
        return self.checkpoints.is_dir() and any(self.checkpoints.glob("last*.pt"))


def checkpoint_file(which: str) -> str:
    """``last`` → ``last.pt``: the file name of a checkpoint (``best``, ``last`` or ``last.prev``)."""
    return f"{which}.pt"


def checksum_path(path: str | os.PathLike[str]) -> Path:
    """``last.pt`` → ``last.pt.sha256``: the SHA-256 of a checkpoint as written (sha256sum format)."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def is_run_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds (part of) a run: a directory with a config, summary, metrics or checkpoint.

    The one rule for "is this a run directory": ``cnnbench train`` refuses to start a new run in one,
    and the report lists every one it finds (a run that has not written its summary yet included).
    """
    path = Path(path)
    return path.is_dir() and any((path / marker).exists() for marker in RUN_MARKERS)


def move_aside(run_dir: str | os.PathLike[str]) -> Path:
    """Move a run directory to ``<parent>/.replaced/<name>.<time>`` (never deleted); the new place."""
    run_dir = Path(run_dir)
    dest = run_dir.parent / REPLACED_DIR / f"{run_dir.name}.{time.strftime('%Y%m%d-%H%M%S')}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(run_dir), str(dest))
    return dest


@dataclass(frozen=True)
class StudyFiles:
    """The paths of one study directory's files (docs/architecture.md, "Study directory")."""

    path: Path

    def __init__(self, path: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "path", Path(path))

    @property
    def study(self) -> Path:
        return self.path / STUDY_FILE

    @property
    def lock(self) -> Path:
        return self.path / STUDY_LOCK_FILE

    @property
    def runs(self) -> Path:
        return self.path / RUNS_DIR

    def run(self, run_id: str) -> Path:
        return self.runs / run_id

    @property
    def speed_dir(self) -> Path:
        return self.path / SPEED_DIR

    def speed(self, model: str) -> Path:
        return self.speed_dir / f"{model}.json"

    @property
    def lr_find_dir(self) -> Path:
        return self.path / LR_FIND_DIR

    @property
    def samples(self) -> Path:
        return self.path / SAMPLES_FILE

    @property
    def results(self) -> Path:
        return self.path / RESULTS_FILE

    @property
    def aggregate(self) -> Path:
        return self.path / AGGREGATE_FILE
