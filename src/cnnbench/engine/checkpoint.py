"""Atomic checkpoints with a fallback: a damaged ``last`` never loses the run.

Saving ``last`` first keeps the previous good one as ``last.prev.pt`` (a hard link, so it costs no
copy), then writes the new file atomically (temp + fsync + rename). A save that dies halfway leaves
the previous ``last`` untouched and no partial file; a ``last`` that is damaged on disk anyway
(a disk error, a copy cut short) is detected at load and ``last.prev`` is used instead.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import torch

from cnnbench.errors import CheckpointError
from cnnbench.runs import CHECKPOINT_FORMAT, load_checkpoint
from cnnbench.utils.io import atomic_save


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
    atomic_save(path, lambda f: torch.save(state, f))
    return path


def load_resume_checkpoint(
    directory: Path, map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], list[str]]:
    """Load ``last.pt``, falling back to ``last.prev.pt`` if it is damaged.

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
