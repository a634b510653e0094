"""Training engine: one run from a TrainConfig to a complete run directory."""

from cnnbench.engine.config import TrainConfig
from cnnbench.engine.trainer import fit

__all__ = ["TrainConfig", "fit"]
