"""Atomic checkpoints with a fallback: a damaged ``last`` never loses the run.

Saving ``last`` first keeps the previous good one as ``last.prev.pt`` (a hard link, so it costs no
copy), then writes the new file atomically (temp + fsync + rename). A save that dies halfway leaves
the previous ``last`` untouched and no partial file; a ``last`` that is damaged on disk anyway
(a disk error, a copy cut short) is detected at load and ``last.prev`` is used instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from cnnbench.errors import CheckpointError
from cnnbench.runs import CHECKPOINT_FORMAT, checksum_path, load_checkpoint
from cnnbench.utils.io import atomic_save, atomic_write_text


def save_checkpoint(directory: Path, name: str, state: dict[str, Any]) -> Path:
    """Write ``directory/name.pt`` atomically; for ``last``, keep the previous one as ``last.prev.pt``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.pt"
    state = {"format": CHECKPOINT_FORMAT, **state}
    if name == "last" and path.exists():
        prev = directory / "last.prev.pt"
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


class _HashingWriter:
    """A file wrapper that hashes the bytes torch.save writes (no second read of the file)."""

    def __init__(self, f, digest) -> None:
        self._f, self._digest = f, digest

    def write(self, data) -> int:
        self._digest.update(data)
        return self._f.write(data)

    def flush(self) -> None:
        self._f.flush()


RESUME_KEYS = ("optimizer", "scheduler", "early_stopping", "run_state", "rng")


def load_resume_checkpoint(
    directory: Path, map_location: str | torch.device = "cpu", require: tuple[str, ...] = ()
) -> tuple[dict[str, Any], list[str]]:
    """Load ``last.pt``, falling back to ``last.prev.pt`` if it is damaged.

    Args:
        require: keys a usable checkpoint must hold (``RESUME_KEYS`` to continue training: a weights-only
            ``best.pt`` copied over ``last.pt`` is then refused, and ``last.prev.pt`` tried).

    Returns:
        The checkpoint and notes describing any fallback.

    Raises:
        CheckpointError: naming every file tried when none loads.
    """
    notes: list[str] = []
    errors: list[str] = []
    for name in ("last.pt", "last.prev.pt"):
        path = directory / name
        if not path.exists():
            continue
        try:
            ckpt = load_checkpoint(path, map_location)
            missing = [k for k in require if k not in ckpt]
            if missing:
                raise CheckpointError(
                    f"checkpoint {path} holds no training state ({', '.join(missing)} missing): it is a weights-only "
                    "file such as best.pt and cannot be resumed from"
                )
        except CheckpointError as exc:
            errors.append(str(exc))
            notes.append(f"{path} could not be loaded ({exc}); falling back to the previous checkpoint")
            continue
        return ckpt, notes
    if errors:
        raise CheckpointError("no usable checkpoint to resume from: " + "; ".join(errors))
    raise CheckpointError(f"no checkpoint to resume from in {directory} (expected last.pt)")


def rng_state() -> dict[str, Any]:
    """Every RNG a training step touches, as tensors (loadable with weights_only=True)."""
    import random

    import numpy as np

    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_gauss": random.getstate()[2],
        "numpy_keys": torch.from_numpy(np_state[1].astype("int64")),
        "numpy_pos": int(np_state[2]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype("uint32"), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
