"""The end of a run: its checkpoints settled, the best checkpoint on the test split once, the result files.

``summary.json`` is written last (``RunSummary.write``): its presence says the run ended, and its
figures are final for a completed or early-stopped run.
"""

from __future__ import annotations

import contextlib
import time

from cnnbench.checkpoints import eval_state_dict, load_checkpoint
from cnnbench.engine import distributed as ddp
from cnnbench.engine.checkpoint import save_best, save_last
from cnnbench.engine.evaluate import EvalResult, predictions_in_dataset_order
from cnnbench.engine.graphs import CudaGraphStep
from cnnbench.engine.state import FitRun
from cnnbench.rundir import STATUS_OK, RunSummary, Status, recipe_hash
from cnnbench.rundir.files import write_test_metrics
from cnnbench.rundir.layout import checksum_path
from cnnbench.utils.env import device_info, synchronize, versions


def settle_checkpoints(run: FitRun, status: str) -> None:
    """best.pt on disk for the test pass; last.pt at the final step of a finished run, without its fallback."""
    run.logs.progress.close()
    step_fn = run.trainer.step_fn
    if isinstance(step_fn, CudaGraphStep):
        if step_fn.failed:
            run.state.notes.append(step_fn.failed)
        elif step_fn.capture_seconds is not None:
            run.state.notes.append(f"CUDA graph: training step captured in {step_fn.capture_seconds:.2f} s")
    if status != Status.INTERRUPTED:
        save_best(run)  # the test pass reads it
    if status in STATUS_OK and run.last_saved_step != run.state.step:
        save_last(run)  # a run that ended inside an epoch (early stopping, the target)
    if status in STATUS_OK and run.main:
        # a finished run needs no fallback for a damaged `last`; keep the disk for the next run
        previous = run.files.checkpoint("last.prev")
        previous.unlink(missing_ok=True)
        checksum_path(previous).unlink(missing_ok=True)


def test_pass(run: FitRun) -> tuple[EvalResult | None, float | None]:
    """The best checkpoint on the test split, once: (result, seconds); (None, None) without a best checkpoint."""
    trainer, device = run.trainer, run.trainer.device
    best_path = run.files.checkpoint("best")
    if not best_path.exists():
        return None, None
    ckpt = load_checkpoint(best_path, map_location=device)
    trainer.model.load_state_dict(ckpt["model"])
    if trainer.ema is not None and ckpt.get("ema") is not None:
        trainer.ema.load_state_dict(eval_state_dict(ckpt))
    loader = trainer.loader(trainer.dataset.test, run.cfg.test_batch_size, train=False)
    synchronize(device)
    t0 = time.perf_counter()
    test = trainer.evaluate(loader, keep_predictions=True)  # test_predictions.npz: what the paired tests compare
    synchronize(device)
    seconds = time.perf_counter() - t0
    # outside the timed pass: under DDP every rank sends its shard, and all end with the whole split in order
    test.predictions = predictions_in_dataset_order(test.predictions, loader.sample_order(), trainer.dist)
    return test, seconds


def build_summary(run: FitRun, status: str, error: str | None, test: EvalResult | None, test_time_s) -> RunSummary:
    """The run's summary.json (docs/architecture.md lists its keys)."""
    cfg, state, early, trainer, rows = run.cfg, run.state, run.early, run.trainer, run.logs.metrics.rows
    best_row = next((r for r in rows if early.best_step is not None and r["step"] == early.best_step), None)
    best_row = best_row or next((r for r in rows if r["epoch"] == early.best_epoch), None)
    epochs_run = state.epoch if state.batch_in_epoch == 0 else round(run.epochs_done(), 4)
    return RunSummary(
        model=cfg.model,
        dataset=cfg.data,
        status=status,
        error=error,
        **_test_figures(test),
        best_val_accuracy=max((r["val_acc"] for r in rows if r["val_acc"] is not None), default=None),
        train_accuracy=best_row["train_acc"] if best_row else None,
        epochs_run=epochs_run,
        best_epoch=early.best_epoch or None,
        train_time_s=state.train_time_s,
        time_per_epoch_s=state.train_time_s / epochs_run if epochs_run else None,
        target_accuracy=cfg.target_accuracy,
        epochs_to_target=state.epochs_to_target,
        time_to_target_s=state.time_to_target_s,
        steps_to_target=state.steps_to_target,
        images_to_target=state.images_to_target,
        test_time_s=test_time_s,
        test_batch_size=cfg.test_batch_size,
        test_samples=test.samples if test else None,
        params=run.model_summary.params,
        size_mb=run.model_summary.size_mb,
        flops=run.model_summary.flops,
        input_size=trainer.input_size,
        schedule=cfg.schedule,
        seed=cfg.seed,
        batch_size=state.batch_size,
        lr=None if run.range_test_stopped else state.lr,  # no lr was picked, none trained with
        steps=state.step,
        images=state.images,
        evaluations=state.evaluations,
        best_step=early.best_step,
        lr_find=state.lr_find,
        device=device_info(trainer.device),
        world_size=trainer.dist.world_size,
        versions=versions(),
        config_hash=cfg.hash(),
        recipe_hash=recipe_hash(cfg.to_dict()),
        notes=state.notes,
    )


def _test_figures(test: EvalResult | None) -> dict[str, float | None]:
    return {
        "test_accuracy": test.accuracy if test else None,
        "test_loss": test.loss if test else None,
        "test_top5": test.top5 if test else None,
        "test_mean_class_accuracy": test.mean_class_accuracy if test else None,
    }


def write_results(run: FitRun, test: EvalResult | None, summary: RunSummary) -> None:
    """test_metrics.json and test_predictions.npz (when the test pass ran), then summary.json: the file
    that says the run ended. Rank 0 writes; every rank waits for it."""
    if run.main:
        if test is not None and test.predictions is not None:
            test.predictions.write(run.files.path)
        if test is not None:
            classes = list(run.trainer.dataset.classes)
            write_test_metrics(run.files.path, classes, test.confusion, test.per_class_accuracy, test.samples)
        summary.write(run.files.path)
    with contextlib.suppress(Exception):
        ddp.barrier(run.trainer.dist)


def close_logs(run: FitRun, summary: RunSummary) -> None:
    """TensorBoard closed with the outcome; the closing line for the person watching."""
    run.logs.tb.text("summary", f"status {summary.status}, test accuracy {summary.test_accuracy}")
    run.logs.tb.close()
    if summary.status in STATUS_OK:
        run.say(
            f"{run.cfg.model}: test accuracy {summary.test_accuracy:.4f} (best epoch {summary.best_epoch}, "
            f"{summary.train_time_s:.1f}s training) → {run.files.path}"
        )
