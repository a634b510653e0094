"""Checkpoint files (``RUN_DIR/checkpoint/*.pt``): their format, writing and verified reading, and a
run's trained model rebuilt from its config and best checkpoint.

The torch half of the run directory's format (``cnnbench.rundir`` is the torch-free half). The engine
writes checkpoints with ``save_checkpoint``; analysis, eval and the engine's resume read them through
``load_checkpoint``, so that none of the readers needs to import the engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnbench.errors import CheckpointError, CnnbenchError
from cnnbench.rundir import RunConfig, RunFiles
from cnnbench.rundir.config import describe_unknown_keys, unknown_config_keys
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
    """A run directory on disk and its parsed ``config.yaml`` (``RunConfig.values``).

    ``config`` holds only what cnnbench reads: keys that are not cnnbench settings (added by hand, or
    by another version) are dropped from it and named in ``notes``, which every reader says aloud.
    """

    path: Path
    config: dict[str, Any]
    notes: tuple[str, ...] = ()

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
    if not isinstance(config.get("model_args"), dict):
        raise CnnbenchError(
            f"{cfg_path} has no model_args section: it is truncated or damaged, or was not written by cnnbench train"
        )
    if not isinstance(config.get("data_config"), dict):
        raise CnnbenchError(f"{cfg_path} has no data_config section: it is truncated or damaged")
    config, notes = _known_config(cfg_path, config)
    return RunDir(path=path, config=config, notes=tuple(notes))


def _known_config(cfg_path: Path, config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``config`` without the keys cnnbench does not know (at the top, in model_args, in data_config), and a
    note naming them: ignored, but never silently, and never passed on to a function that would fail on them."""
    import dataclasses
    import inspect

    from cnnbench.data import DataConfig
    from cnnbench.models import create_model

    notes = []
    unknown = unknown_config_keys(config)
    if unknown:
        notes.append(describe_unknown_keys(cfg_path, unknown))
    config = {k: v for k, v in config.items() if k not in unknown}
    sections = {
        "model_args": set(inspect.signature(create_model).parameters),
        "data_config": {f.name for f in dataclasses.fields(DataConfig)},
    }
    for section, allowed in sections.items():
        values = config.get(section)
        if not isinstance(values, dict):
            continue
        extra = sorted(str(k) for k in values if k not in allowed)
        if extra:
            notes.append(describe_unknown_keys(cfg_path, extra, section))
            config[section] = {k: v for k, v in values.items() if k in allowed}
    return config, notes


@dataclass(frozen=True)
class CheckpointFile:
    """Which checkpoint was loaded: its path, the SHA-256 of the very bytes read, and its epoch and step."""

    path: Path
    sha256: str
    epoch: int | None
    step: int | None
    model_args: dict[str, Any] | None = None  # what the model was rebuilt with (load_run_model)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "epoch": self.epoch, "step": self.step}


def config_count(run: RunDir, key: str, default: int) -> int:
    """A whole number ≥ 1 that ``config.yaml`` records (``eval_batch_size``, ...), or ``default`` when absent.

    Raises:
        CnnbenchError: naming the file, the key and the value, when it is anything else (edited by hand).
    """
    value = run.config.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CnnbenchError(f"{RunFiles(run.path).config}: {key} {value!r}: expected a whole number ≥ 1")
    return value


def checkpoint_model_args(
    cfg_path: Path, model_args: dict[str, Any], ckpt: dict[str, Any], notes: list[str]
) -> dict[str, Any]:
    """The model arguments to rebuild a checkpoint's model with: the checkpoint's own where it records them
    (they describe its weights), with a note for each value config.yaml gives differently (edited by hand)."""
    recorded = ckpt.get("model_args")
    if not isinstance(recorded, dict):
        return model_args
    changed = [k for k in recorded if k in model_args and model_args[k] != recorded[k]]
    for key in changed:
        notes.append(
            f"{cfg_path}: model_args {key} {model_args[key]!r} differs from the checkpoint's {recorded[key]!r} "
            "(edited by hand?); the checkpoint's value is used"
        )
    return {**model_args, **{k: v for k, v in recorded.items() if k in model_args}}


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
    side = checksum_path(path)

    def write(f) -> None:
        torch.save(state, _HashingWriter(f, digest))
        # Before the new file takes the name (atomic_save renames it after this returns), the checksum
        # file lists both hashes; after, only the new one. A reader between the two renames (eval or
        # embed of a run still training), or a process killed between them, then finds the hash of
        # whichever file holds the name, and a changed file (a disk error, a stray write, someone's
        # edit) matches neither: caught at load, where a bad `last` falls back to `last.prev`.
        previous = _checksum_lines(side) if path.exists() else []
        atomic_write_text(side, f"{digest.hexdigest()}  {path.name}\n" + "".join(previous[:2]))

    atomic_save(path, write)
    atomic_write_text(side, f"{digest.hexdigest()}  {path.name}\n")
    return path


def _checksum_lines(side: Path) -> list[str]:
    try:
        return [f"{ln.strip()}\n" for ln in side.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError):
        return []


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
    return read_checkpoint(path, map_location)[0]


def read_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], CheckpointFile]:
    """``load_checkpoint``, and which file it was: the hash is of the bytes loaded, read through one open
    file, so a checkpoint replaced meanwhile (a run still training) cannot mix two versions.

    Raises:
        CheckpointError: as ``load_checkpoint``.
    """
    path = Path(path)
    for _ in range(3):  # the file was replaced while it was read (a run still training): read the new one
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist")
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below; hashed and loaded through this one handle
        except OSError as exc:
            raise CheckpointError(f"checkpoint {path} cannot be read: {exc.strerror or exc}") from exc
        with f:
            digest = _sha256_of(f)
            if _verify_checksum(path, digest):
                f.seek(0)
                _check_torch_save_file(path, f.read(4))
                f.seek(0)
                ckpt = _torch_load(path, f, map_location)
                epoch, step = ckpt.get("epoch"), ckpt.get("step")
                return ckpt, CheckpointFile(
                    path,
                    digest,
                    epoch if isinstance(epoch, int) else None,
                    step if isinstance(step, int) else None,
                )
    raise CheckpointError(f"checkpoint {path} kept changing while it was read (a run still writing it?)")


def _sha256_of(f) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _torch_load(path: Path, f, map_location: str | torch.device) -> dict[str, Any]:
    try:
        ckpt = torch.load(f, map_location=map_location, weights_only=True)
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


def _check_torch_save_file(path: Path, head: bytes) -> None:
    """A file that torch.save did not write (text, an image, ...) is named as not a checkpoint; a file
    that starts like one and still fails to load is damaged or truncated (said by ``load_checkpoint``)."""
    if not head:
        raise CheckpointError(f"checkpoint {path} is damaged or truncated (the file is empty)")
    if not head.startswith(_TORCH_SAVE_MAGIC):
        raise CheckpointError(
            f"{path} is not a cnnbench checkpoint: it is not a file written by torch.save; {CHECKPOINT_EXPECTED}"
        )


def _verify_checksum(path: Path, digest: str) -> bool:
    """Compare ``digest`` (of ``path``'s bytes) with its ``.sha256`` file, when it has one (checkpoints of
    older versions do not). The file may list two hashes while a new version is being put in place
    (``save_checkpoint``): either matches.

    Returns:
        True when it matches or there is nothing to compare with; False on a mismatch while ``path`` was
        replaced by another file meanwhile (the caller reads it again).

    Raises:
        CheckpointError: a mismatch for the file as it stands (its contents changed after it was written).
    """
    side = checksum_path(path)
    if not side.is_file():
        return True
    try:
        expected = {line.split()[0].lower() for line in side.read_text(encoding="utf-8").splitlines() if line.strip()}
    except (OSError, UnicodeDecodeError, IndexError):
        raise CheckpointError(f"checksum file {side} is unreadable; the checkpoint cannot be verified") from None
    if not expected:
        raise CheckpointError(f"checksum file {side} is empty; the checkpoint cannot be verified")
    if digest in expected:
        return True
    if not _unchanged_since(path, digest):
        return False
    raise CheckpointError(
        f"checkpoint {path} does not match its checksum in {side.name}: its contents changed after it "
        "was written (disk error or modification)"
    )


def _unchanged_since(path: Path, digest: str) -> bool:
    """Whether ``path`` still holds the bytes hashed as ``digest`` (re-hashed: it may have been replaced)."""
    try:
        with open(path, "rb") as f:
            return _sha256_of(f) == digest
    except OSError:
        return False


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
    return load_run_model(run, which, device)[0]


def load_run_model(
    run: RunDir | str | os.PathLike[str],
    which: str = "best",
    device: str | torch.device = "cpu",
    notes: list[str] | None = None,
) -> tuple[torch.nn.Module, CheckpointFile]:
    """``build_run_model``, and which checkpoint it loaded (path, SHA-256 of the bytes read, epoch).

    Args:
        notes: receives a line for each model argument config.yaml gives otherwise than the checkpoint.
    """
    from cnnbench.models import create_model

    run = run if isinstance(run, RunDir) else open_run(run)
    path = run.checkpoint_path(which)
    if which == "best" and not path.is_file():
        fallback = run.checkpoint_path("last")
        if notes is not None and fallback.is_file():  # said: the weights are the last step's, not the selected ones
            notes.append(f"{path} is missing: the last checkpoint ({fallback.name}) was evaluated instead")
        path = fallback
    ckpt, info = read_checkpoint(path)
    args = checkpoint_model_args(
        RunFiles(run.path).config, dict(run.config["model_args"]), ckpt, notes if notes is not None else []
    )
    args["pretrained"] = None  # the checkpoint holds the trained weights
    model = create_model(**args)
    model.load_state_dict(eval_state_dict(ckpt))
    return model.to(device).eval(), dataclasses.replace(info, model_args=args)


def run_data_config(run: RunDir | str | os.PathLike[str]):
    """The DataConfig a run trained on (config.yaml's data_config), so analysis and eval see the same splits."""
    from cnnbench.data import DataConfig

    run = run if isinstance(run, RunDir) else open_run(run)
    return DataConfig(**run.config["data_config"])
