"""The run directory, as a file format: every file name, and the one class that reads and writes each file.

A run directory is the contract between the layers (docs/architecture.md): the engine writes it, a
study, ``eval``, ``embed`` and the report read it. Every one of them goes through this package, so
that a file's name, its keys, its version and what "finished" or "the same recipe" mean are said once.
Torch-free (numpy only where a file holds arrays), so the report runs on machines without a GPU stack.

```
layout.py       every file name of a run and a study directory (RunFiles, StudyFiles), is_run_dir, move_aside
status.py       Status: how a run ended or stands; STATUS_OK, STATUS_FINISHED
summary.py      summary.json: RunSummary (read, write; format version)
config.py       config.yaml: RunConfig (read, write; format version); SPLITS
recipe.py       the recipe of a config and its hash (runs are only averaged within one recipe)
runid.py        RunId: a run's directory name in a study
tables.py       metrics.csv and steps.csv: columns, writers (MetricsLog, StepLog), readers   (numpy)
files.py        test_metrics.json, model.json, data.json, PNG figures: writers and readers
predictions.py  test_predictions.npz: TestPredictions                                        (numpy, lazily)
analysis.py     analysis.json and embedding.npz: keys, and the report's reader of the scores
```

This module imports the numpy-free parts; ``tables`` is imported by name where it is needed.
"""

from cnnbench.rundir.config import SPLITS, RunConfig, check_split
from cnnbench.rundir.layout import PREDICTIONS_FILE, RunFiles, StudyFiles, is_run_dir, move_aside
from cnnbench.rundir.predictions import PREDICTIONS_FORMAT, TestPredictions
from cnnbench.rundir.recipe import (
    DERIVED_SECTIONS,
    PER_RUN_KEYS,
    RUNTIME_KEYS,
    UNUSED_OPTION_VALUES,
    describe_recipe,
    option_unused,
    recipe_differences,
    recipe_hash,
    recipe_values,
)
from cnnbench.rundir.runid import RunId, safe_name
from cnnbench.rundir.status import STATUS_FINISHED, STATUS_OK, Status
from cnnbench.rundir.summary import SUMMARY_FORMAT, RunSummary

__all__ = [
    "DERIVED_SECTIONS",
    "PER_RUN_KEYS",
    "PREDICTIONS_FILE",
    "PREDICTIONS_FORMAT",
    "RUNTIME_KEYS",
    "SPLITS",
    "STATUS_FINISHED",
    "STATUS_OK",
    "SUMMARY_FORMAT",
    "UNUSED_OPTION_VALUES",
    "RunConfig",
    "RunFiles",
    "RunId",
    "RunSummary",
    "Status",
    "StudyFiles",
    "TestPredictions",
    "check_split",
    "describe_recipe",
    "is_run_dir",
    "move_aside",
    "option_unused",
    "recipe_differences",
    "recipe_hash",
    "recipe_values",
    "safe_name",
]
