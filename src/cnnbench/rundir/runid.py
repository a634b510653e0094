"""What names a run: its id (its directory name in a study) and the parts of a directory name."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Characters a run id part keeps; any run of others becomes one "_" (``imagefolder:/x/y`` -> ``imagefolder_x_y``).
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(text: str) -> str:
    """``text`` usable as one part of a directory name: ``imagefolder:/x/y`` -> ``imagefolder_x_y``."""
    return _UNSAFE.sub("_", text).strip("_") or "data"


@dataclass(frozen=True)
class RunId:
    """``<dataset>__<model>__<schedule>__s<seed>``: a run's directory name under ``STUDY_DIR/runs/``,
    and ``cnnbench train``'s default ``runs/<run id>``.

    ``str(RunId(...))`` sanitises every part with :func:`safe_name` (a dataset may be a path), so
    :meth:`parse` gives back the sanitised names; summary.json and config.yaml hold the real ones.
    """

    dataset: str
    model: str
    schedule: str
    seed: int

    SEPARATOR = "__"

    def __str__(self) -> str:
        parts = (safe_name(self.dataset), safe_name(self.model), safe_name(self.schedule), f"s{self.seed}")
        return self.SEPARATOR.join(parts)

    @classmethod
    def parse(cls, text: str) -> RunId | None:
        """The four parts of a run id, or None when ``text`` is not one (a run directory named by hand)."""
        parts = text.rsplit(cls.SEPARATOR, 3)  # from the right: a sanitised dataset may itself hold "__"
        if len(parts) != 4 or not all(parts) or not parts[3].startswith("s"):
            return None
        try:
            seed = int(parts[3][1:])
        except ValueError:
            return None
        return cls(parts[0], parts[1], parts[2], seed)
