"""``cnnbench eval``: evaluate a run directory or a checkpoint file on a split."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench.data.config import data_default
from cnnbench.engine.evaluate import evaluate
from cnnbench.errors import CnnbenchError, ConfigError
from cnnbench.rundir import check_split
from cnnbench.runs import checkpoint_model_args, eval_state_dict, load_checkpoint, open_run, read_checkpoint
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
) -> dict[str, Any]:
    """Evaluate the best checkpoint of a run directory (or the given checkpoint file).

    With ``data``/``data_dir`` unset, the run's own dataset and split are used, so the result
    reproduces the run's ``test_accuracy``.
    """
    from cnnbench.data import DataConfig, DeviceLoader, load_dataset
    from cnnbench.models import create_model

    check_split(split)
    ckpt_path, config, model_args, data_config, notes = _what_to_evaluate(Path(path))
    ckpt, loaded = read_checkpoint(ckpt_path)
    model_args = checkpoint_model_args(Path(path) / "config.yaml", model_args, ckpt, notes)
    if Path(path).is_dir() and lock_is_live(Path(path) / ".train.lock"):
        notes.append(
            f"{path} is still training: evaluated its {ckpt_path.stem} checkpoint of epoch {loaded.epoch} as it is "
            "now; a later epoch may replace it"
        )
    data_config = _override_data(data_config, data, data_dir)
    dev = resolve_device(device)
    dataset = load_dataset(DataConfig(**data_config))
    if dataset.num_classes != model_args["num_classes"]:
        raise CnnbenchError(
            f"--data {dataset.name} has {dataset.num_classes} classes but the model was trained for "
            f"{model_args['num_classes']}"
        )
    model = create_model(**{**model_args, "pretrained": None})
    model.load_state_dict(eval_state_dict(ckpt))
    model.to(dev).eval()
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"--batch-size {batch_size!r}: expected a whole number ≥ 1")
    recorded = config.get("test_batch_size", 32)
    if isinstance(recorded, bool) or not isinstance(recorded, int) or recorded < 1:
        raise CnnbenchError(f"{path}: test_batch_size {recorded!r} in its config: expected a whole number ≥ 1")
    bs = batch_size if batch_size is not None else recorded
    loader = DeviceLoader(
        getattr(dataset, split),
        batch_size=bs,
        device=dev,
        train=False,
        mean=dataset.mean,
        std=dataset.std,
        output_size=model_args["input_size"],
    )
    result, seconds = _timed_evaluate(model, loader, dataset.num_classes, dev)
    return {
        "checkpoint": str(ckpt_path),
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
        "notes": notes,
    }


def _override_data(data_config: dict[str, Any], data: str | None, data_dir: str | None) -> dict[str, Any]:
    """The run's DataConfig fields with ``--data``/``--data-dir`` applied (another dataset starts from defaults)."""
    if data is not None and data != data_config["name"]:
        data_config = {"name": data, "val_fraction": data_config.get("val_fraction", data_default("val_fraction"))}
    if data_dir is not None:
        data_config["data_dir"] = data_dir
    return data_config


def _timed_evaluate(
    model: torch.nn.Module, loader: DeviceLoader, num_classes: int, dev: torch.device
) -> tuple[EvalResult, float]:
    """Evaluate and time it; synchronising on both sides so queued GPU work is inside the clock."""
    synchronize(dev)
    t0 = time.perf_counter()
    result = evaluate(model, loader, num_classes, dev)
    synchronize(dev)
    return result, time.perf_counter() - t0


def _what_to_evaluate(path: Path) -> tuple[Path, dict[str, Any], dict[str, Any], dict[str, Any], list[str]]:
    """(checkpoint, run config, model_args, DataConfig fields, notes) of a run directory or a checkpoint file.

    A run directory gives its best checkpoint (its last when it never recorded a best); the notes name
    keys of its config.yaml that were ignored.
    """
    if path.is_dir():
        run = open_run(path)
        ckpt_path = run.checkpoint_path("best")
        if not ckpt_path.exists():
            ckpt_path = run.checkpoint_path("last")
        if not isinstance(run.config.get("data_config"), dict):
            raise CnnbenchError(f"{path / 'config.yaml'} has no data_config section: it is truncated or damaged")
        return ckpt_path, run.config, run.config["model_args"], dict(run.config["data_config"]), list(run.notes)
    ckpt = load_checkpoint(path)
    config, model_args = ckpt["config"], ckpt.get("model_args")
    if model_args is None:
        raise CnnbenchError(f"{path} has no model_args; evaluate its run directory instead")
    from cnnbench.engine.config import TrainConfig

    return path, config, model_args, TrainConfig.from_dict(config, str(path)).data_config().to_dict(), []
