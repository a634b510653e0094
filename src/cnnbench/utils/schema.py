"""Column names of result files, shared by the layer that writes them and the layers that read them."""

from __future__ import annotations

# metrics.csv: one row per epoch, written by cnnbench.engine, read by cnnbench.report
METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "lr",
    "epoch_time_s",
    "train_time_s",
    "batch_size",
)
