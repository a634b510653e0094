"""cnnbench: train, measure and explain CNN image classifiers side by side.

The Python API in one place (each name is loaded on first use, so ``import cnnbench`` stays cheap
and the CLI starts without torch)::

    cfg = cnnbench.TrainConfig(model="lenet5", data="mnist-sample", epochs=1)
    cnnbench.fit(cfg, "study/runs/lenet5")             # writes a run directory
    summary = cnnbench.RunSummary.read("study/runs/lenet5")
    cnnbench.build_report("study")                     # report.html, results.csv, ...
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> module that defines it.
_EXPORTS = {
    "TrainConfig": "cnnbench.engine.config",
    "fit": "cnnbench.engine.fit",
    "RunSummary": "cnnbench.rundir",
    "build_report": "cnnbench.report.build",
    "create_model": "cnnbench.models",
    "list_models": "cnnbench.models",
    "embed_run": "cnnbench.analysis.embed",
    "measure_model": "cnnbench.bench.speed",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cnnbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return [*__all__, "__version__"]
