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


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    # Read by cli.main before torch loads (OpenMP reads its settings once); parsed here for --help
    # and so that argparse knows the flag.
    parser.add_argument(
        "--threads",
        metavar="N",
        default=None,
        help="CPU threads for PyTorch (default: auto = torch's choice, one per physical core; or $CNNBENCH_THREADS). "
        "Recorded in every run's summary",
    )


def emit_json(obj: Any) -> None:
    sys.stdout.write(dumps_json(obj))
    sys.stdout.flush()


def is_terminal(stream=None) -> bool:
    """Whether ``stream`` (default stdout) is a terminal; pipes, files and CI logs are not."""
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def console(stderr: bool = False):
    """A rich console; tables go to stdout, progress and notes to stderr.

    Into a pipe or a log a line is never folded at rich's default 80 columns (``soft_wrap``): a
    long path or model name stays whole for grep.
    """
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=not is_terminal(sys.stderr if stderr else sys.stdout))


def note(message: str, markup: bool = True) -> None:
    """A line for humans on stderr (kept out of --json output).

    Args:
        markup: read rich markup (``[dim]...[/dim]``); pass False for text that may hold brackets of
            its own (a pip extra, a file name), which markup would swallow.
    """
    console(stderr=True).print(message, markup=markup)


def print_table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    """A boxed rich table on a terminal; elsewhere :func:`plain_table` (whole values, one row a line)."""
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if not is_terminal():
        sys.stdout.write(plain_table(title, columns, cells))
        sys.stdout.flush()
        return
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in cells:
        table.add_row(*row)
    console().print(table)


def plain_table(title: str | None, columns: list[str], rows: list[list[str]]) -> str:
    """Columns aligned with two spaces, no borders and no folding, as ``ls -l`` prints into a pipe:
    each row is one line whatever its width, so ``grep`` and ``awk`` see whole values."""
    rows = [[v.replace("\n", " ") for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in rows if i < len(r)]) for i, c in enumerate(columns)]
    lines = [title] if title else []
    for row in (columns, *rows):
        lines.append("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)).rstrip())
    return "\n".join(lines) + "\n"


def print_fields(title: str | None, fields: list[tuple[str, Any]], min_table_width: int = 120) -> None:
    """Named figures: one row of a table on a terminal at least ``min_table_width`` columns wide,
    else one ``name  value`` line per figure (a narrow terminal, a pipe, a log)."""
    import shutil

    if is_terminal() and shutil.get_terminal_size().columns >= min_table_width:
        print_table(title, [k for k, _ in fields], [[v for _, v in fields]])
        return
    width = max(len(k) for k, _ in fields)
    lines = [title] if title else []
    lines += [f"{k.ljust(width)}  {'' if v is None else v}" for k, v in fields]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


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
