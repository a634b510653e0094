"""Training throughput on a quiet and on a shared CPU, through `cnnbench train` (issue [4/5]).

For each OpenMP setting, each model runs `cnnbench train` on Fashion-MNIST for a fixed number of
optimiser steps, once on the quiet machine and once while this script keeps ``--busy`` processes
(``yes > /dev/null``) running; settings, models and conditions alternate within each round, and
the busy processes are always ended. Throughput is steps × batch / ``train_time_s`` of the run's
own ``summary.json`` (training only). The table gives, per setting, the median images/s quiet and
busy, busy as a share of quiet (the goal: ≥ 50 %) and quiet against libgomp's default (the goal:
no more than 5 % below).

    python benchmarks/cpu_contention.py                       # lenet5 and resnet18, 2 rounds
    python benchmarks/cpu_contention.py --models lenet5 --rounds 3 --busy 2

Settings: ``libgomp default`` is GOMP_SPINCOUNT=300000, libgomp's documented default when
OMP_WAIT_POLICY is unset (what torch does when nobody sets anything); ``cnnbench`` is what the CLI
sets (cnnbench.utils.threads.SPIN_COUNT); ``passive`` is OMP_WAIT_POLICY=PASSIVE; ``1 thread`` is
``--threads 1`` with the cnnbench spin setting; ``spin N`` is GOMP_SPINCOUNT=N (``--settings`` to
choose; the default runs the first four).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnnbench.utils.threads import SPIN_COUNT, usable_cores
from naive import DEFAULT_FASHION

SETTINGS: dict[str, tuple[dict[str, str], list[str]]] = {
    "libgomp default": ({"GOMP_SPINCOUNT": "300000"}, []),
    "cnnbench": ({}, []),
    "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, []),
    # shorter bounded spins than cnnbench's, to look for a setting between it and passive
    "spin 3000": ({"GOMP_SPINCOUNT": "3000"}, []),
    "spin 1000": ({"GOMP_SPINCOUNT": "1000"}, []),
    "spin 300": ({"GOMP_SPINCOUNT": "300"}, []),
    "1 thread": ({}, ["--threads", "1"]),
}
WORK = {"lenet5": (150, 128), "resnet18": (12, 64)}  # optimiser steps, batch: ~5-10 s of training each, quiet


def run_train(model: str, setting: str, data_dir: Path, out: Path) -> float:
    """Images/s of one `cnnbench train` run, from its summary."""
    steps, batch = WORK[model]
    env_extra, flags = SETTINGS[setting]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env.update(env_extra)
    cmd = [
        sys.executable, "-m", "cnnbench", "train", "--model", model, "--data", "fashion-mnist",
        "--data-dir", str(data_dir), "--max-steps", str(steps), "--batch-size", str(batch), "--epochs", "1",
        "--max-val-samples", "500", "--max-test-samples", "500", "--precise-bn-samples", "0",
        "--no-progress", "--out", str(out), *flags,
    ]  # fmt: skip
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    summary = json.loads((out / "summary.json").read_text())
    return summary["steps"] * batch / summary["train_time_s"]


def start_busy(n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(n)]


def stop_busy(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="lenet5,resnet18")
    parser.add_argument("--settings", default="libgomp default,cnnbench,passive,1 thread")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--busy", type=int, default=2, help="busy processes for the loaded condition")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_FASHION)
    args = parser.parse_args()
    models = args.models.split(",")
    settings = args.settings.split(",")
    import torch

    results: dict[tuple[str, str, str], list[float]] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            # alternate the order of conditions between rounds so that drift hits both
            for cond in ("quiet", "busy") if r % 2 == 0 else ("busy", "quiet"):
                busy = start_busy(args.busy) if cond == "busy" else []
                try:
                    time.sleep(1.0 if busy else 0.0)
                    for model in models:
                        for setting in settings:
                            out = Path(tmp) / f"{model}-{setting.replace(' ', '_')}-{cond}-{r}"
                            ips = run_train(model, setting, args.data_dir, out)
                            results.setdefault((model, setting, cond), []).append(ips)
                            print(f"  round {r + 1} {cond:5s} {model:9s} {setting:16s} {ips:9.0f} img/s", flush=True)
                finally:
                    stop_busy(busy)
    load_after = os.getloadavg()

    print()
    print(f"device: CPU {platform.processor() or platform.machine()}, {usable_cores()} usable cores")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}; cnnbench SPIN_COUNT={SPIN_COUNT}")
    print(f"load average (1/5/15 min): before {load_before}, after {load_after} (busy runs add {args.busy})")
    print(f"{args.rounds} rounds, medians; busy = {args.busy} × `yes > /dev/null` on the same cores")
    print()
    print("| model | setting | quiet img/s | busy img/s | busy / quiet | quiet vs libgomp default |")
    print("|---|---|---|---|---|---|")
    for model in models:
        base = (
            statistics.median(results[(model, "libgomp default", "quiet")]) if "libgomp default" in settings else None
        )
        for setting in settings:
            q = statistics.median(results[(model, setting, "quiet")])
            b = statistics.median(results[(model, setting, "busy")])
            vs = f"{q / base - 1:+.1%}" if base else "—"
            print(f"| {model} | {setting} | {q:,.0f} | {b:,.0f} | {b / q:.0%} | {vs} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
