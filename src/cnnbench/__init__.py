"""cnnbench: train, measure and explain CNN image classifiers side by side."""

__version__ = "0.1.0"
