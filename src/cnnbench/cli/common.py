"""Flags shared by several sub-commands, and the output convention.

With ``--json`` a command prints exactly one JSON object on stdout and nothing else; progress,
notes and warnings always go to stderr so that ``cnnbench X --json | jq`` works.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cnnbench.utils.io import dumps_json


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of tables")


def emit_json(obj: Any) -> None:
    sys.stdout.write(dumps_json(obj))
    sys.stdout.flush()


def console(stderr: bool = False):
    """A rich console; tables go to stdout, progress and notes to stderr."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def note(message: str) -> None:
    """A line for humans on stderr (kept out of --json output)."""
    console(stderr=True).print(message)


def print_table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console().print(table)


def parse_input_shape(text: str, flag: str = "--input") -> tuple[int, int, int]:
    """``"1x28x28"`` -> (1, 28, 28); ``"224"`` -> (3, 224, 224).

    Raises:
        ConfigError: naming the flag when the text is not CxHxW with positive integers.
    """
    from cnnbench.errors import ConfigError

    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = [3, values[0], values[0]]
    if len(values) != 3 or min(values) < 1:
        raise ConfigError(f"{flag} {text!r}: expected CxHxW, e.g. 1x28x28 or 3x224x224")
    return values[0], values[1], values[2]
