"""Say in one line why a heavy library could not be loaded, and which resource limit is to blame.

Under an address-space limit (``ulimit -v 2000000``, a batch system's memory cap) the dynamic loader
cannot map libtorch's 1 GB of shared libraries, and ``import torch`` dies with ``ImportError:
libtorch_cpu.so: failed to map segment from shared object`` deep inside torch's ``__init__``. That is
not a bug to report with a traceback but a setting to change.
"""

from __future__ import annotations

import re
import traceback

try:  # imported now: once memory has run out, importing a C extension can fail too
    import resource
except ImportError:  # not on POSIX
    resource = None  # type: ignore[assignment]

# libraries whose loading failure is described (the first match names it)
_LIBRARIES = {"torch": "PyTorch", "torchvision": "torchvision", "timm": "timm", "numpy": "NumPy", "scipy": "SciPy"}


def address_space_limit() -> int | None:
    """The soft RLIMIT_AS of this process in bytes, or None when unlimited (or unknown)."""
    if resource is None:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft


def _library_of(exc: BaseException) -> str | None:
    """The library (of ``_LIBRARIES``) in whose import ``exc`` was raised, from its name or traceback."""
    name = getattr(exc, "name", None) or ""
    if name.split(".")[0] in _LIBRARIES:
        return _LIBRARIES[name.split(".")[0]]
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        parts = frame.filename.replace("\\", "/").split("/")
        for package, label in _LIBRARIES.items():
            if package in parts[:-1]:
                return label
    text = str(exc)
    return next((label for package, label in _LIBRARIES.items() if f"lib{package}" in text), None)


def describe_load_failure(exc: BaseException) -> str | None:
    """One line for an ImportError, OSError or MemoryError raised while a library loaded, or None when
    ``exc`` is something else (the caller lets it through)."""
    library = _library_of(exc)
    if library is None:
        return None
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    limit = address_space_limit()
    if limit is not None:
        kib = limit // 1024
        return (
            f"{library} could not be loaded ({first}): this process may use at most {limit / 2**30:.1f} GiB of "
            f"address space (ulimit -v {kib}), too little to map its libraries; raise the limit "
            "(ulimit -v unlimited, or a larger memory request from the batch system) and run again"
        )
    if isinstance(exc, MemoryError):
        return f"{library} could not be loaded: the machine ran out of memory ({first}); free memory and run again"
    return (
        f"{library} could not be loaded ({type(exc).__name__}: {first}); reinstall it in this environment "
        "(pip install --force-reinstall torch torchvision) or check that it matches this machine"
    )


_CPU_OOM = re.compile(r"can't allocate memory: you tried to allocate (\d+) bytes")


def describe_out_of_memory(exc: BaseException) -> str | None:
    """One line for running out of host memory mid-command (a MemoryError, or torch's CPU allocator
    failing under ``ulimit -v`` or a cgroup), naming the limit when there is one; None for anything else."""
    match = _CPU_OOM.search(str(exc)) if isinstance(exc, RuntimeError) else None
    if not isinstance(exc, MemoryError) and match is None:
        return None
    asked = f" (an allocation of {int(match.group(1)) / 2**20:,.0f} MiB failed)" if match else ""
    limit = address_space_limit()
    where = (
        f"this process may use at most {limit / 2**30:.1f} GiB of address space (ulimit -v {limit // 1024})"
        if limit is not None
        else "the machine has no more free memory"
    )
    return (
        f"out of memory{asked}: {where}; use a smaller --batch-size or --image-size, a smaller model, "
        "or raise the limit"
    )
