"""Command line: a thin table from sub-command to the module that implements it.

Each module in this package defines ``add_arguments(parser)`` and ``run(args) -> int`` and calls
into the library; no measurement logic lives here. Modules are imported lazily so that
``cnnbench --help`` does not pay for importing torch.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from cnnbench import __version__

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("cnnbench.cli.run", "run a study: datasets x models x schedules x seeds, then write its report"),
    "train": ("cnnbench.cli.train", "train one model and write a run directory"),
    "lr-find": ("cnnbench.cli.lrfind", "learning-rate range test of a recipe (what --lr auto runs)"),
    "eval": ("cnnbench.cli.eval", "evaluate a run directory or checkpoint on a test split"),
    "speed": ("cnnbench.cli.speed", "measure throughput, latency and size without training"),
    "models": ("cnnbench.cli.models", "list registered models"),
    "summary": ("cnnbench.cli.summary", "layer table, params, size, FLOPs of one model at an input size"),
    "data": ("cnnbench.cli.data", "list datasets, show their sizes, draw sample grids"),
    "embed": ("cnnbench.cli.embed", "t-SNE and clustering of a trained model's features"),
    "report": ("cnnbench.cli.report", "write the HTML/Markdown report of a study directory"),
}


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser without prefix matching, for every command and sub-command (sub-parsers are
    made of their parent's class): ``cnnbench run --seed 3`` must be an error, never ``--seeds 3``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """One line, as every other error of cnnbench (argparse printed ~50 lines of usage before it)."""
        self.exit(2, f"{self.prog}: error: {message} (flags: '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cnnbench",
        description="Train, measure and explain CNN image classifiers side by side.",
        epilog="Run 'cnnbench COMMAND --help' for a command's flags. Errors exit with status 2.",
    )
    parser.add_argument("--version", action="version", version=f"cnnbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _command_in(sys.argv[1:])
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Import only the command being run; the bare listing needs the help lines alone.
        if chosen == name:
            importlib.import_module(module).add_arguments(p)
            parser.set_defaults(_command_parser=p)
    return parser


def _reject_unknown(parser: argparse.ArgumentParser, args: argparse.Namespace, unknown: list[str]) -> None:
    """argparse's "unrecognized arguments" error, with the closest flag of the command for each typo."""
    target = getattr(args, "_command_parser", None) or parser
    flags = [flag for action in target._actions for flag in action.option_strings]
    hints = []
    for arg in unknown:
        name = arg.split("=", 1)[0]
        longer = [f for f in flags if f.startswith(name)] if name.startswith("--") else []
        # a cut-off flag (--seed for --seeds) names the one it starts; else the closest spelling
        close = longer if len(longer) == 1 else difflib.get_close_matches(name, flags, n=1, cutoff=0.75)
        close = close if name.startswith("-") else []
        if close:
            hints.append(f"{name}: did you mean {close[0]}?")
    target.error(" ".join(["unrecognized arguments:", *unknown]) + "".join(f"\n  {h}" for h in hints))


def _command_in(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if arg in COMMANDS:
            return arg
        if not arg.startswith("-"):
            return None
    return None


def _configure_threads(argv: Sequence[str]) -> None:
    """OpenMP reads its settings once, when torch loads: set them before any command imports torch."""
    from cnnbench.utils.threads import check_threads, configure_cpu_threads, threads_from_argv, usable_cores

    command = _command_in(argv)
    if command is None or command in ("models", "summary"):
        return  # no computation worth tuning; `summary` never trains
    threads = check_threads(threads_from_argv(argv))
    configure_cpu_threads(threads)
    if threads is not None and threads > usable_cores():  # said before any work, as --workers is
        print(
            f"note: --threads {threads} on {usable_cores()} usable cores: threads will wait for each other",
            file=sys.stderr,
        )


# a file system or a resource limit that refuses: said in one line naming the path (utils.io.describe_os_error)
_FS_ERRNOS = (
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENAMETOOLONG,
    errno.ELOOP,
    errno.ENOTDIR,
    errno.EFBIG,
    errno.EMFILE,
    errno.EIO,
)


def main(argv: Sequence[str] | None = None) -> int:
    from cnnbench.errors import CnnbenchError
    from cnnbench.utils import limits  # noqa: F401 - loaded now: needed after memory has run out
    from cnnbench.utils.quiet import quiet_numeric_warnings
    from cnnbench.utils.streams import guard_standard_streams

    guard_standard_streams()  # a closed or broken stderr never fails a command (utils/streams.py)
    quiet_numeric_warnings()  # numpy's "Mean of empty slice" & co. are not for the user
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    try:
        _configure_threads(sys.argv[1:])
    except CnnbenchError as exc:
        print(f"cnnbench: error: {exc}", file=sys.stderr)
        return 2
    try:
        parser = build_parser()  # imports the command's module: `train` and `run` load torch here
    except (ImportError, OSError, MemoryError) as exc:
        return _load_failure(_command_in(sys.argv[1:]) or "", exc)
    args, unknown = parser.parse_known_args(sys.argv[1:])
    if unknown:
        _reject_unknown(parser, args, unknown)  # exits with status 2, as argparse does
    if args.command is None:
        # `cnnbench` alone shows what it is: a person typing the name should not start minutes of
        # training (`cnnbench run` is the default study)
        parser.print_help()
        return 2 if sys.argv[1:] else 0
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    """The command's exit status; every error a user can meet is one line on stderr (README: exit status)."""
    from cnnbench.errors import CnnbenchError

    try:
        module = importlib.import_module(COMMANDS[args.command][0])
        return int(module.run(args) or 0)
    except (ImportError, MemoryError, RuntimeError) as exc:
        return _load_failure(args.command, exc)
    except CnnbenchError as exc:
        print(f"cnnbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cnnbench {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `cnnbench models | head`: the reader left; say nothing more.
        _silence_stdout()
        return 0
    except OSError as exc:
        return _os_error(args.command, exc)


def _os_error(command: str, exc: OSError) -> int:
    """A file system that refuses (read-only cache, full disk, permissions, a path too long) deep inside a
    library, or stdout that cannot take the output: one line naming the path and the reason."""
    from cnnbench.utils.io import describe_os_error

    if exc.filename in (None, "<stdout>") and exc.errno in (*_FS_ERRNOS, errno.EBADF, errno.EIO):
        _silence_stdout()  # stdout itself (`> /dev/full`, `>&-`): the output is lost, and said so
        print(f"cnnbench {command}: error: cannot write the output: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    if exc.errno not in _FS_ERRNOS:
        return _load_failure(command, exc)  # a shared library that cannot be mapped (ulimit -v)
    where = f" {exc.filename}" if exc.filename else ""
    hint = " (set CNNBENCH_CACHE to a writable directory)" if "cache" in str(exc.filename or "") else ""
    verb = "write" if exc.errno in (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else "use"
    print(f"cnnbench {command}: error: cannot {verb}{where}: {describe_os_error(exc)}{hint}", file=sys.stderr)
    return 2


def _load_failure(command: str, exc: BaseException) -> int:
    """One line when a library could not be loaded (an address-space limit, a broken install: exit 2) or
    memory ran out mid-command (exit 1, failed); anything else is re-raised."""
    from cnnbench.utils.limits import describe_load_failure, describe_out_of_memory

    prefix = f"cnnbench{' ' + command if command else ''}: error:"
    try:
        if not isinstance(exc, RuntimeError):
            message = describe_load_failure(exc) if isinstance(exc, ImportError) or _during_import(exc) else None
            if message is not None:
                print(f"{prefix} {message}", file=sys.stderr)
                return 2
        if isinstance(exc, (MemoryError, RuntimeError)):
            # the frames of the traceback hold the tensors that filled memory: let them go before saying so
            exc.__traceback__ = None
            import gc

            gc.collect()
        message = describe_out_of_memory(exc)
    except MemoryError:
        print(f"{prefix} out of memory", file=sys.stderr)
        return 1
    if message is None:
        raise exc
    print(f"{prefix} {message}", file=sys.stderr)
    return 1


def _during_import(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while a module was being imported (not by code it later ran)."""
    import traceback

    return any("importlib._bootstrap" in f.filename for f in traceback.extract_tb(exc.__traceback__))


def _silence_stdout() -> None:
    """Point stdout at /dev/null and drop what it still buffers: the interpreter's flush at exit must not
    fail again (it would print "Exception ignored" and exit 120)."""
    import contextlib

    with contextlib.suppress(OSError, ValueError, AttributeError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    with contextlib.suppress(OSError, ValueError):
        sys.stdout.flush()
