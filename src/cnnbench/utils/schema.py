"""Column names of result files, shared by the layer that writes them and the layers that read them."""

from __future__ import annotations

# metrics.csv: one row per epoch, written by cnnbench.engine, read by cnnbench.report. New columns go
# last: readers take columns by name, and a file written before a column existed reads it as missing.
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
    "step",  # optimiser steps done at the end of the epoch (places validation on a step axis)
)

# steps.csv: training figures every few optimiser steps (cnnbench.engine.runlog.step_log_interval),
# next to metrics.csv; no validation columns, validation is measured per epoch only.
STEP_COLUMNS = (
    "step",  # optimiser steps done
    "epoch",  # fractional epochs done (epoch index + batches done / batches per epoch)
    "train_loss",  # mean per-sample training loss over the steps since the previous row
    "train_acc",  # training accuracy over the same steps
    "lr",  # learning rate of the last of those steps
    "steps_averaged",  # how many steps the row averages (the interval, fewer after an epoch end)
    "batch_size",
)
