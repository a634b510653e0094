"""``cnnbench eval``: evaluate a run directory or a checkpoint file on a split."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench.checkpoints import checkpoint_model_args, eval_state_dict, load_checkpoint, open_run, read_checkpoint
from cnnbench.data.config import data_default
from cnnbench.engine.evaluate import evaluate, predictions_in_dataset_order
from cnnbench.errors import CnnbenchError, ConfigError
from cnnbench.rundir import PREDICTIONS_FILE, RunFiles, RunSummary, check_split
from cnnbench.rundir.layout import TRAIN_LOCK_FILE
from cnnbench.utils.env import resolve_device, synchronize
from cnnbench.utils.lock import lock_is_live

if TYPE_CHECKING:
    import torch

    from cnnbench.data import DeviceLoader
    from cnnbench.engine.evaluate import EvalResult


def evaluate_run(
    path: str | Path,
    *,
    data: str | None = None,
    data_dir: str | None = None,
    split: str = "test",
    batch_size: int | None = None,
    device: str = "auto",
    save_predictions: bool = False,
) -> dict[str, Any]:
    """Evaluate the best checkpoint of a run directory (or the given checkpoint file).

    With ``data``/``data_dir`` unset, the run's own dataset and split are used, so the result
    reproduces the run's ``test_accuracy``.

    Args:
        save_predictions: write the per-image predictions into the run directory
            (``test_predictions.npz``, as the run's own test pass does), for a run trained before the
            file existed; only for a run directory's own test split, and only when the accuracy matches
            its summary.json, so that the file never contradicts it.

    Raises:
        ConfigError: ``save_predictions`` for a checkpoint file, another split or another dataset.
        CnnbenchError: ``save_predictions`` and the accuracy differs from summary.json (nothing written).
    """
    check_split(split)
    if save_predictions:
        _check_saving(Path(path), split, data)
    target = _what_to_evaluate(Path(path))
    dataset = _load_data(_override_data(target.data_config, data, data_dir), target.model_args)
    model, dev = _load_model(target.model_args, target.ckpt, device)
    bs = _batch_size(batch_size, target.config, path)
    loader = _loader(getattr(dataset, split), dataset, bs, target.model_args["input_size"], dev)
    result, seconds = _timed_evaluate(model, loader, dataset.num_classes, dev, save_predictions)
    saved = _save_predictions(Path(path), result, loader.sample_order()) if save_predictions else None
    return {
        "checkpoint": str(target.ckpt_path),
        "dataset": dataset.name,
        "split": split,
        "samples": result.samples,
        "accuracy": result.accuracy,
        "loss": result.loss,
        "top5": result.top5,
        "mean_class_accuracy": result.mean_class_accuracy,
        "seconds": seconds,
        "batch_size": bs,
        "device": str(dev),
        "predictions": str(saved) if saved else None,
        "notes": target.notes,  # config.yaml keys ignored, values the checkpoint overrode, a run still training
    }


def _read_checkpoint(
    path: Path, ckpt_path: Path, model_args: dict[str, Any], notes: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the checkpoint, the model arguments to rebuild it with), with a note for what a reader should know:
    the checkpoint's own model arguments describe its weights (a config.yaml edited by hand is overridden),
    and a run still training may replace the checkpoint after this evaluation."""
    ckpt, loaded = read_checkpoint(ckpt_path)
    model_args = checkpoint_model_args(RunFiles(path).config, model_args, ckpt, notes)
    if path.is_dir() and lock_is_live(path / TRAIN_LOCK_FILE):
        notes.append(
            f"{path} is still training: evaluated its {ckpt_path.stem} checkpoint of epoch {loaded.epoch} as it is "
            "now; a later epoch may replace it"
        )
    return ckpt, model_args


def _load_data(data_config: dict[str, Any], model_args: dict[str, Any]):
    """The dataset to evaluate on; its classes must be the model's."""
    from cnnbench.data import DataConfig, load_dataset

    dataset = load_dataset(DataConfig(**data_config))
    if dataset.num_classes != model_args["num_classes"]:
        raise CnnbenchError(
            f"--data {dataset.name} has {dataset.num_classes} classes but the model was trained for "
            f"{model_args['num_classes']}"
        )
    return dataset


def _batch_size(batch_size: int | None, config: dict[str, Any], path: str | Path) -> int:
    """--batch-size, else the run's test batch size (32 when it has none)."""
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"--batch-size {batch_size!r}: expected a whole number ≥ 1")
    recorded = config.get("test_batch_size", 32)
    if isinstance(recorded, bool) or not isinstance(recorded, int) or recorded < 1:  # a config edited by hand
        raise CnnbenchError(f"{path}: test_batch_size {recorded!r} in its config: expected a whole number ≥ 1")
    return batch_size if batch_size is not None else recorded


def _loader(split_data, dataset, batch_size: int, input_size: int, dev: torch.device) -> DeviceLoader:
    """The split's batches in the dataset's normalisation, at the model's input size, in order."""
    from cnnbench.data import DeviceLoader

    normalize = (dataset.mean, dataset.std)
    return DeviceLoader(
        split_data, batch_size=batch_size, device=dev, train=False, normalize=normalize, output_size=input_size
    )


def _load_model(model_args: dict[str, Any], ckpt: dict[str, Any], device: str) -> tuple[torch.nn.Module, torch.device]:
    """(the model rebuilt from its arguments with the checkpoint's evaluated weights in eval mode, its device)."""
    from cnnbench.models import create_model

    dev = resolve_device(device)
    model = create_model(**{**model_args, "pretrained": None})
    model.load_state_dict(eval_state_dict(ckpt))
    return model.to(dev).eval(), dev


def _check_saving(path: Path, split: str, data: str | None) -> None:
    """--save-predictions belongs to a run directory's own test split: refuse anything else before any work."""
    if not path.is_dir():
        raise ConfigError(f"--save-predictions: {path} is not a run directory (a checkpoint file has none to write to)")
    if split != "test":
        raise ConfigError(f"--save-predictions with --split {split}: the file holds the test split only")
    if data is not None and data != open_run(path).config["data_config"]["name"]:
        raise ConfigError(f"--save-predictions with --data {data}: the file holds the run's own test split only")


def _save_predictions(run_dir: Path, result: EvalResult, order: Any) -> Path:
    """Write ``test_predictions.npz`` when the re-evaluation agrees with summary.json, image for image.

    Raises:
        CnnbenchError: summary.json is missing, holds no test accuracy, or disagrees (nothing is written).
    """
    summary = RunSummary.read(run_dir)
    predictions = predictions_in_dataset_order(result.predictions, order)
    expected, n = summary.test_accuracy, summary.test_samples or len(predictions)
    if expected is None:
        raise CnnbenchError(
            f"--save-predictions: {RunFiles(run_dir).summary} has no test accuracy (status {summary.status}), "
            f"so {PREDICTIONS_FILE} would have nothing to agree with; nothing written"
        )
    correct = int(predictions.correct.sum())
    if n != len(predictions) or correct != round(expected * n):
        raise CnnbenchError(
            f"--save-predictions: this evaluation scores {correct}/{len(predictions)} test images, "
            f"{RunFiles(run_dir).summary} {round(expected * n)}/{n} ({expected:.4f}); {PREDICTIONS_FILE} would "
            "contradict it, nothing written (another device or batch size can move a few borderline images)"
        )
    return predictions.write(run_dir)


def _override_data(data_config: dict[str, Any], data: str | None, data_dir: str | None) -> dict[str, Any]:
    """The run's DataConfig fields with ``--data``/``--data-dir`` applied (another dataset starts from defaults)."""
    if data is not None and data != data_config["name"]:
        data_config = {"name": data, "val_fraction": data_config.get("val_fraction", data_default("val_fraction"))}
    if data_dir is not None:
        data_config["data_dir"] = data_dir
    return data_config


def _timed_evaluate(
    model: torch.nn.Module, loader: DeviceLoader, num_classes: int, dev: torch.device, keep_predictions: bool = False
) -> tuple[EvalResult, float]:
    """Evaluate and time it; synchronising on both sides so queued GPU work is inside the clock."""
    synchronize(dev)
    t0 = time.perf_counter()
    result = evaluate(model, loader, num_classes, dev, keep_predictions=keep_predictions)
    synchronize(dev)
    return result, time.perf_counter() - t0


@dataclass
class _Target:
    """What ``evaluate_run`` evaluates: the checkpoint (path and contents), the run's config, the model's
    arguments, the DataConfig fields, and notes for the user."""

    ckpt_path: Path
    ckpt: dict[str, Any]
    config: dict[str, Any]
    model_args: dict[str, Any]
    data_config: dict[str, Any]
    notes: list[str]


def _what_to_evaluate(path: Path) -> _Target:
    """The checkpoint of a run directory (its best; its last when it never recorded a best) or a checkpoint file.

    For a run directory the notes name keys of its config.yaml that were ignored, model arguments the
    checkpoint overrode, and a run still training.
    """
    if path.is_dir():
        run = open_run(path)
        ckpt_path = run.checkpoint_path("best")
        notes = list(run.notes)
        if not ckpt_path.exists():
            fallback = run.checkpoint_path("last")
            if fallback.exists():
                notes.append(
                    f"{ckpt_path} is missing: evaluated {fallback.name}, the last step's weights, not the ones "
                    "selected on validation"
                )
            ckpt_path = fallback
        ckpt, model_args = _read_checkpoint(path, ckpt_path, run.config["model_args"], notes)
        return _Target(ckpt_path, ckpt, run.config, model_args, dict(run.config["data_config"]), notes)
    ckpt = load_checkpoint(path)
    config, model_args = ckpt["config"], ckpt.get("model_args")
    if model_args is None:
        raise CnnbenchError(f"{path} has no model_args; evaluate its run directory instead")
    from cnnbench.engine.config import TrainConfig

    return _Target(path, ckpt, config, model_args, TrainConfig.from_dict(config, str(path)).data_config().to_dict(), [])
