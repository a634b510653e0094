"""cnnbench lr-find: the learning-rate range test of one recipe, as ``--lr auto`` runs it."""

from __future__ import annotations

import argparse

from cnnbench.cli.common import add_json_flag, add_threads_flag, console, emit_json, note
from cnnbench.cli.trainflags import add_train_flags, given_train_flags

# Flags of `train` that cannot change a range test; lr-find does not offer them.
_NOT_HERE = {"lr", "epochs", "schedule", "progress", "max_steps", "time_budget_s", "stop_at_target", "val_every_steps"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Learning-rate range test: train from the model's seeded initial weights for --lr-find-steps steps while "
        "the learning rate grows from 1e-5 to 1, and pick the learning rate half a decade below the one where the "
        "smoothed loss is lowest "
        "(the rule --lr auto uses; docs/training.md). Nothing is written unless --csv is given."
    )
    parser.add_argument("--csv", default=None, metavar="FILE", help="write the curve (lr_find.csv format) to FILE")
    add_json_flag(parser)
    add_threads_flag(parser)
    add_train_flags(parser, exclude=_NOT_HERE)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cnnbench.engine import TrainConfig
    from cnnbench.engine.lr_find import find_lr
    from cnnbench.errors import ConfigError
    from cnnbench.utils.io import atomic_write_text, check_dir_path

    values = given_train_flags(args)
    if "model" in values:
        from cnnbench.models import canonical_model_name

        values["model"] = canonical_model_name(values["model"])
    cfg = TrainConfig(**{**values, "lr": "auto", "progress": False})
    if args.csv is not None:  # checked before the test runs, not after it
        if not args.csv.strip() or args.csv == "-":
            raise ConfigError(f"--csv {args.csv!r}: expected the path of a file to write (the curve is a table)")
        if Path(args.csv).is_dir():
            raise ConfigError(f"--csv {args.csv}: is a directory; expected the path of a file to write")
        check_dir_path(Path(args.csv).parent, "--csv")
    result = find_lr(cfg)
    if args.csv:
        atomic_write_text(Path(args.csv), result.csv_text())
    if args.json:
        emit_json({"model": cfg.model, "data": cfg.data, "seed": cfg.seed, **result.to_dict()})
        return 0
    _print_curve(result, cfg.model)
    for line in result.notes:
        note(line)
    note(
        f"{cfg.model}: lr {result.lr:.3g} (rule '{result.rule}', {len(result.lrs)} of {result.steps} steps, "
        f"{result.seconds:.1f} s)"
    )
    return 0


def _print_curve(result, model: str) -> None:
    """About 20 rows of the curve, the picked step always among them."""
    from rich.table import Table

    table = Table(title=f"range test of {model}", title_justify="left")
    for name in ("step", "lr", "loss", "smoothed"):
        table.add_column(name, justify="right")
    every = max(1, len(result.lrs) // 20)
    for i, (lr, loss, smooth) in enumerate(zip(result.lrs, result.losses, result.smoothed, strict=True)):
        if i % every and i != result.index and i != len(result.lrs) - 1:
            continue
        mark = " ← pick" if i == result.index else ""
        table.add_row(str(i), f"{lr:.2e}{mark}", f"{loss:.4f}", f"{smooth:.4f}")
    console().print(table)
