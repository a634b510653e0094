"""``test_predictions.npz``: what a run predicted for every test image (the raw material of paired tests)."""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cnnbench.errors import ResultsError
from cnnbench.rundir.layout import RunFiles
from cnnbench.utils.io import atomic_open

if TYPE_CHECKING:
    import numpy as np

# Written by the engine's test pass and `cnnbench eval --save-predictions`.
PREDICTIONS_FORMAT = "cnnbench-test-predictions-v1"


@dataclass(frozen=True, eq=False)
class TestPredictions:
    """What a run predicted for every test image, in dataset order: the raw material of paired tests.

    Two models scored on the same test images are compared image by image (McNemar's test), which
    needs more than their accuracies. The arrays are small integers: 10,000 images take about 30 kB
    compressed. ``predicted == top5[:, 0]`` except where two logits tie.
    """

    __test__ = False  # a data class, not a pytest test class

    predicted: np.ndarray  # (N,) top-1 class of each test image
    target: np.ndarray  # (N,) true class
    top5: np.ndarray  # (N, k) the k = min(5, classes) highest-scoring classes, best first

    def __post_init__(self) -> None:
        import numpy as np  # here, not at the top: importing rundir stays cheap for the CLI

        n = len(self.target)
        shapes = (np.shape(self.predicted), np.shape(self.target), np.shape(self.top5))
        if shapes[0] != (n,) or shapes[1] != (n,) or len(shapes[2]) != 2 or shapes[2][0] != n or shapes[2][1] < 1:
            raise ResultsError(
                f"test predictions: expected predicted (N,), target (N,) and top5 (N, k); got shapes {shapes}"
            )
        for name in ("predicted", "target", "top5"):
            values = np.asarray(getattr(self, name))
            if values.size and (values.dtype.kind not in "iu" or values.min() < 0):
                raise ResultsError(f"test predictions: {name} must hold class indices ≥ 0 (dtype {values.dtype})")
            # a small integer type that holds every class index (Caltech-256 has 257 classes)
            dtype = np.int16 if not values.size or values.max() < 2**15 else np.int32
            object.__setattr__(self, name, values.astype(dtype))

    def __len__(self) -> int:
        return len(self.target)

    @property
    def correct(self) -> np.ndarray:
        """(N,) bool: top-1 right."""
        return self.predicted == self.target

    @property
    def correct_top5(self) -> np.ndarray:
        """(N,) bool: the true class among the top k."""
        return (self.top5 == self.target[:, None]).any(axis=1)

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self) else math.nan

    def write(self, run_dir: str | os.PathLike[str]) -> Path:
        """``run_dir/test_predictions.npz``, written atomically (compressed npz)."""
        import numpy as np

        path = RunFiles(run_dir).predictions
        with atomic_open(path, "wb") as f:
            np.savez_compressed(
                f, format=np.array(PREDICTIONS_FORMAT), predicted=self.predicted, target=self.target, top5=self.top5
            )
        return path

    @classmethod
    def read(cls, run_dir: str | os.PathLike[str]) -> TestPredictions | None:
        """``run_dir/test_predictions.npz``, or None when the run has none (written before the file existed).

        Raises:
            ResultsError: naming the file when it is present but damaged or not this format.
        """
        import numpy as np

        path = RunFiles(run_dir).predictions
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                fmt = str(data["format"]) if "format" in data.files else None
                if fmt != PREDICTIONS_FORMAT:
                    raise ResultsError(f"format {fmt!r}, expected {PREDICTIONS_FORMAT!r}")
                return cls(predicted=data["predicted"], target=data["target"], top5=data["top5"])
        except ResultsError as exc:
            raise ResultsError(f"{path}: {exc}") from exc
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # truncated, not an npz, ...
            raise ResultsError(f"{path} is not a readable test-predictions file ({type(exc).__name__}: {exc})") from exc
