"""Worker processes of a study: one run each at a time, one GPU each when there are several, never an
orphan left training when the study dies, and every one told when the study is asked to stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnbench.engine.stop import STOP
from cnnbench.rundir import StudyFiles
from cnnbench.study.execute import execute_run
from cnnbench.study.plan import PlannedRun

_WORKER = {"busy": False}


def _worker_init(device_queue, pid_queue, parent_pid: int) -> None:
    """Pool workers: die with the study, stop on its signal, pin one GPU each when there are several."""
    from cnnbench.utils.orphans import die_with_parent, start_orphan_watchdog
    from cnnbench.utils.quiet import quiet_numeric_warnings

    quiet_numeric_warnings()
    pid_queue.put(os.getpid())  # the study signals its workers by these pids when it is asked to stop
    # SIGTERM, not SIGKILL: the worker's STOP handler checkpoints its run before it exits
    die_with_parent(parent_pid, signal.SIGTERM)
    STOP.install_forever()
    # a worker whose study died exits once its run has checkpointed (the kernel's SIGTERM stopped it);
    # without this it would wait forever for work from a parent that is gone
    start_orphan_watchdog(parent_pid, may_exit=lambda: not _WORKER["busy"])
    if device_queue is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(device_queue.get())


def _worker_run(planned: PlannedRun, run_dir: str) -> dict[str, Any]:
    _WORKER["busy"] = True
    try:
        return execute_run(planned, Path(run_dir))
    finally:
        _WORKER["busy"] = False


def choose_workers(requested: int | str, runs: list[PlannedRun]) -> tuple[int, list[int] | None, str]:
    """(workers, GPU ids to pin or None, why) — auto: 1 on a CPU, one per GPU, several on one big GPU."""
    import torch

    from cnnbench.utils.threads import usable_cores

    on_cpu = not torch.cuda.is_available() or all(r.config.device == "cpu" for r in runs)
    if requested != "auto":
        n, cores = int(requested), usable_cores()
        if on_cpu and n > cores:
            return (
                n,
                None,
                (
                    f"{n} worker(s) (--workers or the study's workers); note: {n} concurrent runs on {cores} "
                    "CPU core(s) oversubscribe them: "
                    "the runs share the cores and each runs slower, so the study takes no less time "
                    "(--workers auto uses 1 on a CPU)"
                ),
            )
        return n, None, f"{n} worker(s) (--workers or the study's workers)"
    if on_cpu:
        return 1, None, "1 worker (CPU: one run at a time uses every core)"
    gpus = torch.cuda.device_count()
    if gpus > 1:
        return gpus, list(range(gpus)), f"{gpus} workers, one per GPU"
    free, _ = torch.cuda.mem_get_info()
    small = all((r.config.image_size or 32) <= 64 for r in runs)
    # Small-input runs use a few GB each; several share one GPU and fill the gaps between launches.
    n = max(1, min(4, int(free / 2**30 // 12))) if small else 1
    return n, None, f"{n} worker(s) on one GPU ({free / 2**30:.0f} GiB free, {'small' if small else 'large'} inputs)"


def run_pool(todo: list[PlannedRun], out: Path, n_workers: int, gpu_ids: list[int] | None, finished: Callable) -> None:
    """The runs of ``todo`` on ``n_workers`` processes; ``finished(planned, summary, seconds)`` as each ends."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")  # CUDA cannot be forked
    queue = None
    if gpu_ids:
        queue = ctx.Queue()
        for gid in gpu_ids:
            queue.put(gid)
    pids = ctx.Queue()
    init = (queue, pids, os.getpid())
    with ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_worker_init, initargs=init) as pool:
        starts, futures = {}, {}
        for planned in todo:
            fut = pool.submit(_worker_run, planned, str(StudyFiles(out).run(planned.run_id)))
            futures[fut] = planned
            starts[fut] = time.perf_counter()
        pending = set(futures)
        told = False
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                if not fut.cancelled():
                    finished(futures[fut], fut.result(), time.perf_counter() - starts[fut])
            if STOP.set and not told:
                # tell every worker (a SIGTERM to the study reaches only this process): each checkpoints
                # its run and takes no other; runs not yet started are cancelled
                told = True
                for fut in pending:
                    fut.cancel()
                _signal_workers(pids)
                pending = {f for f in pending if not f.cancelled()}


def _signal_workers(pids: Any) -> None:
    """SIGTERM every worker that has started (each put its pid in ``pids`` when it started)."""
    import queue

    while True:
        try:
            pid = pids.get_nowait()
        except (queue.Empty, OSError, ValueError):
            return
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
