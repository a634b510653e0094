"""``fit``: train one model and leave a complete run directory.

The life of a run, each step a call into the module that does that one job::

    prepare_run_dir    engine/setup.py        never two runs in one directory (--resume, --overwrite)
    Trainer            engine/trainer.py      data checked; model, loaders, optimiser and step built
    start_run          engine/setup.py        state restored from last.pt or new (--lr auto's range test);
                                              config.yaml, data.json, model.json; the logs opened
    train              engine/train_loop.py   chunks of steps (engine/chunk.py), validation windows
                                              (engine/validation.py), checkpoints (engine/checkpoint.py),
                                              the retry at a smaller batch after an out-of-memory error
                                              (engine/oom.py), divergence, early stopping, stop signals
    settle_checkpoints, test_pass, build_summary, write_results
                       engine/results.py      the best checkpoint on the test split once; summary.json last

The run directory's files and their formats are ``cnnbench.rundir``'s (docs/architecture.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnnbench.engine import distributed as ddp
from cnnbench.engine.config import TrainConfig
from cnnbench.engine.results import build_summary, close_logs, settle_checkpoints, test_pass, write_results
from cnnbench.engine.setup import prepare_run_dir, start_run
from cnnbench.engine.stop import STOP, StopRequest
from cnnbench.engine.train_loop import train
from cnnbench.engine.trainer import Trainer
from cnnbench.engine.validation import stopped_in_range_test
from cnnbench.rundir import Status
from cnnbench.rundir.layout import TRAIN_LOCK_FILE
from cnnbench.utils.io import check_writable_dir
from cnnbench.utils.lock import DirectoryLock


def fit(
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    dataset=None,
    quiet: bool = False,
    overwrite: bool = False,
    lr_find_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train ``cfg.model`` on ``cfg.data`` and write the run directory ``out_dir``.

    Args:
        resume: continue from ``out_dir/checkpoint/last.pt`` (falls back to ``last.prev.pt``).
            Under torchrun, a restarted job (``--max-restarts``) resumes automatically.
        overwrite: ``out_dir`` already holds a run and this is a new one: move the old one aside to
            ``<parent>/.replaced/`` first. Without it (and without ``resume``) that is an error, so two
            runs never mix in one directory.
        dataset: an already loaded ``cnnbench.data.Dataset`` (a study loads it once for all runs).
        quiet: no progress bar or per-epoch lines (``--json``).
        lr_find_dir: with ``--lr auto``, a directory of cached range tests (a study's ``lr_find/``):
            a run finds the test of its model, data, seed and regularisation there instead of repeating it.

    Returns:
        The summary.json dict. Failures that are results (divergence, interruption) are reported
        through ``status``; configuration and data errors raise ``CnnbenchError``.
    """
    from cnnbench.models import get_spec

    _check_config_type(cfg)
    get_spec(cfg.model)  # an unknown model fails before any data is decoded or directory made
    out = Path(out_dir)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun the other ranks follow rank 0
        restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0
        prepare_run_dir(out, cfg, resume=resume or restarted, overwrite=overwrite)
    check_writable_dir(out)
    lock = DirectoryLock(out, TRAIN_LOCK_FILE)
    trainer = Trainer(cfg, out, dataset=dataset, quiet=quiet)
    main = trainer.dist.is_main
    if main:
        lock.acquire()
    try:
        with STOP.installed() as stop:
            resume = resume or trainer.dist.restart_count > 0
            return _run(trainer, resume, stop, Path(lr_find_dir) if lr_find_dir else None)
    finally:
        if main:
            lock.release()
        ddp.shutdown(trainer.dist)


def _run(trainer: Trainer, resume: bool, stop: StopRequest, lr_find_dir: Path | None) -> dict[str, Any]:
    """The life of a run, top to bottom."""
    run = start_run(trainer, resume, lr_find_dir)
    status, error = stopped_in_range_test(run, stop) if run.range_test_stopped else train(run, stop)
    settle_checkpoints(run, status)
    test, test_time_s = test_pass(run) if status != Status.INTERRUPTED else (None, None)
    summary = build_summary(run, status, error, test, test_time_s)
    write_results(run, test, summary)
    close_logs(run, summary)
    return summary.to_dict()


def _check_config_type(cfg: object) -> None:
    """A dict or None given as the config is named as such, not met as an AttributeError from inside."""
    if isinstance(cfg, TrainConfig):
        return
    hint = (
        "; build one from the mapping with cnnbench.TrainConfig(**cfg) (TrainConfig takes the training options "
        "as keywords: model=..., data=..., epochs=...; fit itself takes none)"
        if isinstance(cfg, Mapping)
        else ", e.g. cnnbench.TrainConfig(model='lenet5', data='mnist-sample', epochs=1)"
    )
    got = "None" if cfg is None else f"a {type(cfg).__name__}"
    raise TypeError(f"cnnbench.fit: cfg is {got}, expected a cnnbench.TrainConfig{hint}")
