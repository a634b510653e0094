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
