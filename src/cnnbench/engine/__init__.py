"""Training engine: one run from a TrainConfig to a complete run directory."""

from cnnbench.engine.config import TrainConfig
from cnnbench.engine.fit import fit

__all__ = ["TrainConfig", "fit"]
