"""CPU threads that keep their speed when other programs share the cores.

PyTorch's CPU kernels run on an OpenMP pool (GNU libgomp in the PyPI wheels). Between parallel
regions its threads *spin* before sleeping (``GOMP_SPINCOUNT``, 300,000 iterations by default). On
an idle machine that saves a wake-up per kernel; when other processes hold the cores, a spinning
thread burns the time slice its sibling needs and every kernel waits for the slowest thread —
LeNet-5 training ran 3.6–6.1× slower beside two busy processes on a 2-core machine (issue [4/5];
docs/benchmarks.md, CPU contention).

``configure_cpu_threads`` bounds the spin (``GOMP_SPINCOUNT``, below) and optionally fixes the
thread count. libgomp reads these variables once, when torch loads it, so the CLI calls this
before anything imports torch; from Python, call it first thing. Called later, only the thread
count can still change (``torch.set_num_threads``) and the result says so.

A user's own ``OMP_WAIT_POLICY`` / ``GOMP_SPINCOUNT`` / ``OMP_NUM_THREADS`` always win: cnnbench
only fills in what is unset. The wait policy changes no arithmetic, so results do not depend on it;
the thread count may change the order of floating-point sums, so it is recorded in every run.

Torch-free on purpose: it must run before torch is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# Spin iterations before an idle OpenMP thread sleeps (libgomp's default is 300,000; 0 is
# OMP_WAIT_POLICY=PASSIVE). Chosen by benchmarks/cpu_contention.py: see docs/benchmarks.md for the
# quiet and busy throughputs of each value measured.
SPIN_COUNT = 10_000
ENV_THREADS = "CNNBENCH_THREADS"  # the default for --threads
_USER_KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
_OURS: dict[str, str] = {}  # what an earlier call set, so that a second call does not take it for the user's


@dataclass
class ThreadSettings:
    """What ``configure_cpu_threads`` set, for result files and notes."""

    threads: int | None  # requested intra-op threads; None = torch's default (physical cores)
    spin_count: str | None  # GOMP_SPINCOUNT in effect (None when OMP_WAIT_POLICY decides)
    wait_policy: str | None  # OMP_WAIT_POLICY in effect, if any
    source: str  # "cnnbench", "user environment" or "too late (torch was already imported)"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def usable_cores() -> int:
    """CPUs this process may run on (respects taskset/cgroup affinity, unlike ``os.cpu_count``)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def check_threads(value: object, flag: str = "--threads") -> int | None:
    """``None``/``"auto"``/0 → None (torch's default); otherwise a positive int, or a ConfigError naming ``flag``."""
    from cnnbench.errors import ConfigError

    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    try:
        n = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{flag} {value!r}: expected a positive whole number of threads, or auto") from None
    if n < 0:
        raise ConfigError(f"{flag} {value!r}: expected a positive whole number of threads, or auto")
    return n or None


def configure_cpu_threads(threads: int | None = None, env: dict[str, str] | None = None) -> ThreadSettings:
    """Bound OpenMP spinning and set the intra-op thread count, before torch loads if possible.

    Args:
        threads: intra-op threads; None keeps torch's default (or ``CNNBENCH_THREADS`` when set).
        env: the environment to modify (``os.environ`` by default; tests pass a dict).
    """
    env = os.environ if env is None else env
    notes: list[str] = []
    if threads is None:
        threads = check_threads(env.get(ENV_THREADS), ENV_THREADS)
    user = [k for k in _USER_KEYS if k in env and _OURS.get(k) != env[k]]
    newly_set = not user and "GOMP_SPINCOUNT" not in env
    if not user:
        env["GOMP_SPINCOUNT"] = _OURS["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
        if threads > usable_cores():
            notes.append(f"{threads} threads on {usable_cores()} usable cores: threads will wait for each other")
    source = "user environment" if user else "cnnbench"
    if "torch" in sys.modules and env is os.environ:
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        if newly_set:
            source = "too late (torch was already imported)"
            notes.append(
                "torch was imported before configure_cpu_threads(): OpenMP's spin setting applies from the "
                "next process; call it before importing torch"
            )
    return ThreadSettings(
        threads=threads,
        spin_count=env.get("GOMP_SPINCOUNT"),
        wait_policy=env.get("OMP_WAIT_POLICY"),
        source=source,
        notes=notes,
    )


def openmp_waits_briefly(env: dict[str, str] | None = None) -> bool:
    """Whether idle OpenMP threads go to sleep soon: ``OMP_WAIT_POLICY=passive``, or a
    ``GOMP_SPINCOUNT`` of at most 100,000 (``configure_cpu_threads`` sets 10,000; libgomp's own
    default is 300,000). With long spins, short parallel regions on a busy machine wait for
    descheduled threads, so callers that can choose use one thread then.
    """
    env = os.environ if env is None else env
    policy = env.get("OMP_WAIT_POLICY", "").strip().lower()
    if policy in ("passive", "active"):
        return policy == "passive"
    spin = env.get("GOMP_SPINCOUNT", "").strip()
    return spin.isdigit() and int(spin) <= 100_000


def threads_from_argv(argv: Sequence[str]) -> str | None:
    """The value of ``--threads`` in a command line, read before argparse (and torch) runs."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return None


def load_average() -> float | None:
    """The 1-minute load average, or None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None
