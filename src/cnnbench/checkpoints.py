"""Checkpoint files (``RUN_DIR/checkpoint/*.pt``): their format, writing and verified reading, and a
run's trained model rebuilt from its config and best checkpoint.

The torch half of the run directory's format (``cnnbench.rundir`` is the torch-free half). The engine
writes checkpoints with ``save_checkpoint``; analysis, eval and the engine's resume read them through
``load_checkpoint``, so that none of the readers needs to import the engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnbench.errors import CheckpointError, CnnbenchError
from cnnbench.rundir import RunConfig, RunFiles
from cnnbench.rundir.layout import checkpoint_file, checksum_path
from cnnbench.utils.io import atomic_save, atomic_write_text

CHECKPOINT_FORMAT = "cnnbench-checkpoint-v1"
# what a cnnbench checkpoint is, said when a file is not one
CHECKPOINT_EXPECTED = (
    f"expected a .pt file written by cnnbench train: a torch.save dict with the keys 'format' "
    f"({CHECKPOINT_FORMAT!r}) and 'model' (the weights)"
)
# the first bytes of what torch.save writes: a zip archive (torch ≥ 1.6), or a pickle (the legacy format)
_TORCH_SAVE_MAGIC = (b"PK\x03\x04", b"\x80")


@dataclass(frozen=True)
class RunDir:
    """A run directory on disk and its parsed ``config.yaml`` (``RunConfig.values``)."""

    path: Path
    config: dict[str, Any]

    @property
    def checkpoint_dir(self) -> Path:
        return RunFiles(self.path).checkpoints

    def checkpoint_path(self, which: str = "best") -> Path:
        return RunFiles(self.path).checkpoint(which)


def open_run(path: str | os.PathLike[str]) -> RunDir:
    """Open a run directory, or raise an error naming what is missing."""
    path = Path(path)
    cfg_path = RunFiles(path).config
    if not path.is_dir():
        if path.exists():
            raise CnnbenchError(f"{path} is a file, not a run directory")
        raise CnnbenchError(f"run directory {path} does not exist")
    if not cfg_path.is_file():
        raise CnnbenchError(f"{path} is not a run directory: {cfg_path.name} is missing")
    config = RunConfig.read(path).values
    if "model_args" not in config:
        raise CnnbenchError(
            f"{cfg_path} has no model_args section: it is truncated or damaged, or was not written by cnnbench train"
        )
    return RunDir(path=path, config=config)


def save_checkpoint(directory: Path, name: str, state: dict[str, Any]) -> Path:
    """Write ``directory/name.pt`` atomically; for ``last``, keep the previous one as ``last.prev.pt``.

    Saving ``last`` first keeps the previous good one as ``last.prev.pt`` (a hard link, so it costs no
    copy), then writes the new file atomically (temp + fsync + rename). A save that dies halfway leaves
    the previous ``last`` untouched and no partial file; a ``last`` that is damaged on disk anyway
    (a disk error, a copy cut short) is detected at load, where the engine's resume uses ``last.prev``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / checkpoint_file(name)
    state = {"format": CHECKPOINT_FORMAT, **state}
    if name == "last" and path.exists():
        _keep_previous(path, directory / checkpoint_file("last.prev"))
    digest = hashlib.sha256()

    def write(f) -> None:
        torch.save(state, _HashingWriter(f, digest))

    atomic_save(path, write)
    # the checksum of what was written, beside it: contents changed later (a disk error, a stray
    # write, someone's edit) are caught at load, where a bad `last` falls back to `last.prev`
    atomic_write_text(checksum_path(path), f"{digest.hexdigest()}  {path.name}\n")
    return path


def _keep_previous(path: Path, prev: Path) -> None:
    """``last.pt`` (and its checksum) as ``last.prev.pt``: a hard link where the file system has them."""
    with contextlib.suppress(FileNotFoundError):
        prev.unlink()
    try:
        os.link(path, prev)
    except OSError:  # file systems without hard links
        atomic_save(prev, lambda f: f.write(path.read_bytes()))
    if checksum_path(path).exists():
        atomic_write_text(checksum_path(prev), checksum_path(path).read_text().replace(path.name, prev.name))
    else:
        checksum_path(prev).unlink(missing_ok=True)


class _HashingWriter:
    """A file wrapper that hashes the bytes torch.save writes (no second read of the file)."""

    def __init__(self, f, digest) -> None:
        self._f, self._digest = f, digest

    def write(self, data) -> int:
        self._digest.update(data)
        return self._f.write(data)

    def flush(self) -> None:
        self._f.flush()


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a cnnbench checkpoint with ``weights_only=True``.

    Raises:
        CheckpointError: naming the file when it is missing, truncated or not a cnnbench checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    _verify_checksum(path)
    _check_torch_save_file(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses anything but tensors and plain containers: say so, it is not damage
        first_line = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        if "Unsupported global" in str(exc):  # a class or function named in the pickle, not damage
            raise CheckpointError(
                f"checkpoint {path} holds objects that are not plain tensors and was refused for safety "
                "(cnnbench loads checkpoints with weights_only=True and never runs code from a file)"
            ) from exc
        raise CheckpointError(f"checkpoint {path} is damaged or truncated (UnpicklingError: {first_line})") from exc
    except Exception as exc:  # torch raises many types for a damaged zip/pickle
        # torch's own message is long and suggests weights_only=False, which is never the fix here
        first_line = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        reason = f"{type(exc).__name__}: {first_line}"
        raise CheckpointError(f"checkpoint {path} is damaged or truncated ({reason})") from exc
    if not isinstance(ckpt, dict):
        raise CheckpointError(
            f"{path} is not a cnnbench checkpoint: it holds a {type(ckpt).__name__}; {CHECKPOINT_EXPECTED}"
        )
    if ckpt.get("format") != CHECKPOINT_FORMAT or "model" not in ckpt:
        keys = ", ".join(repr(k) for k in list(ckpt)[:8]) + (", ..." if len(ckpt) > 8 else "")
        found = f"its keys are {keys}" if ckpt else "it is an empty dict"
        if "format" in ckpt and ckpt["format"] != CHECKPOINT_FORMAT:
            found = f"its format is {ckpt['format']!r}"
        raise CheckpointError(f"{path} is not a cnnbench checkpoint: {found}; {CHECKPOINT_EXPECTED}")
    return ckpt


def _check_torch_save_file(path: Path) -> None:
    """A file that torch.save did not write (text, an image, ...) is named as not a checkpoint; a file
    that starts like one and still fails to load is damaged or truncated (said by ``load_checkpoint``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc.strerror or exc}") from exc
    if not head:
        raise CheckpointError(f"checkpoint {path} is damaged or truncated (the file is empty)")
    if not head.startswith(_TORCH_SAVE_MAGIC):
        raise CheckpointError(
            f"{path} is not a cnnbench checkpoint: it is not a file written by torch.save; {CHECKPOINT_EXPECTED}"
        )


def _verify_checksum(path: Path) -> None:
    """Compare ``path`` with its ``.sha256`` file, when it has one (checkpoints of older versions do not)."""
    side = checksum_path(path)
    if not side.is_file():
        return
    try:
        expected = side.read_text(encoding="utf-8").split()[0].lower()
    except (OSError, UnicodeDecodeError, IndexError):
        raise CheckpointError(f"checksum file {side} is unreadable; the checkpoint cannot be verified") from None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise CheckpointError(
            f"checkpoint {path} does not match its checksum in {side.name}: its contents changed after it "
            "was written (disk error or modification)"
        )


def eval_state_dict(ckpt: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights to evaluate: the EMA weights when the run kept an EMA, else the raw ones."""
    return ckpt.get("ema") or ckpt["model"]


def build_run_model(
    run: RunDir | str | os.PathLike[str],
    which: str = "best",
    device: str | torch.device = "cpu",
) -> torch.nn.Module:
    """Rebuild a run's model from ``config.yaml`` and load its ``which`` checkpoint, in eval mode.

    Falls back from ``best`` to ``last`` when the run never recorded a best checkpoint.
    """
    from cnnbench.models import create_model

    run = run if isinstance(run, RunDir) else open_run(run)
    path = run.checkpoint_path(which)
    if which == "best" and not path.is_file():
        path = run.checkpoint_path("last")
    ckpt = load_checkpoint(path)
    args = dict(run.config["model_args"])
    args["pretrained"] = None  # the checkpoint holds the trained weights
    model = create_model(**args)
    model.load_state_dict(eval_state_dict(ckpt))
    return model.to(device).eval()


def run_data_config(run: RunDir | str | os.PathLike[str]):
    """The DataConfig a run trained on (config.yaml's data_config), so analysis and eval see the same splits."""
    from cnnbench.data import DataConfig

    run = run if isinstance(run, RunDir) else open_run(run)
    return DataConfig(**run.config["data_config"])
