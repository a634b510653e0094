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
    python benchmarks/cpu_contention.py --data mnist-sample --json result.json   # no Fashion-MNIST here

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

from benchio import add_data_flags, add_json_flag, emit_json, log
from cnnbench.utils.threads import SPIN_COUNT, usable_cores

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


def run_train(model: str, setting: str, args: argparse.Namespace, out: Path) -> float:
    """Images/s of one `cnnbench train` run, from its summary."""
    steps, batch = WORK[model]
    steps = args.steps or steps
    env_extra, flags = SETTINGS[setting]
    data = ["--data", args.data] + (["--data-dir", str(args.data_dir)] if args.data_dir else [])
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env.update(env_extra)
    cmd = [
        sys.executable, "-m", "cnnbench", "train", "--model", model, *data,
        "--max-steps", str(steps), "--batch-size", str(batch), "--epochs", "100",
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


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_flags(parser)
    parser.add_argument("--models", default="lenet5,resnet18")
    parser.add_argument("--settings", default="libgomp default,cnnbench,passive,1 thread")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--busy", type=int, default=2, help="busy processes for the loaded condition")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps per run (default: per model)")
    add_json_flag(parser)
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> dict[tuple[str, str, str], list[float]]:
    """Images/s per (model, setting, quiet|busy), one entry per round."""
    results: dict[tuple[str, str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            # alternate the order of conditions between rounds so that drift hits both
            for cond in ("quiet", "busy") if r % 2 == 0 else ("busy", "quiet"):
                busy = start_busy(args.busy) if cond == "busy" else []
                try:
                    time.sleep(1.0 if busy else 0.0)
                    for model in args.models.split(","):
                        for setting in args.settings.split(","):
                            out = Path(tmp) / f"{model}-{setting.replace(' ', '_')}-{cond}-{r}"
                            ips = run_train(model, setting, args, out)
                            results.setdefault((model, setting, cond), []).append(ips)
                            log(f"  round {r + 1} {cond:5s} {model:9s} {setting:16s} {ips:9.0f} img/s")
                finally:
                    stop_busy(busy)
    return results


def table_rows(results: dict, models: list[str], settings: list[str]) -> list[dict]:
    """Per model and setting: median img/s quiet and busy, busy / quiet, quiet against libgomp's default."""
    rows = []
    for model in models:
        base = results.get((model, "libgomp default", "quiet"))
        for setting in settings:
            q = statistics.median(results[(model, setting, "quiet")])
            b = statistics.median(results[(model, setting, "busy")])
            vs = q / statistics.median(base) - 1 if base else None
            rows.append({"model": model, "setting": setting, "quiet_img_s": q, "busy_img_s": b,
                         "busy_share": b / q, "quiet_vs_default": vs})  # fmt: skip
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    load_before = os.getloadavg()
    rows = table_rows(measure(args), args.models.split(","), args.settings.split(","))
    result = {
        "benchmark": "cpu_contention",
        "device": f"CPU {platform.processor() or platform.machine()}, {usable_cores()} usable cores",
        "data": args.data,
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "spin_count": SPIN_COUNT,
        "rounds": args.rounds,
        "busy": args.busy,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "rows": rows,
    }
    emit_json(result, args.json)
    if args.json != "-":
        print_table(result, args)
    return 0


def print_table(result: dict, args: argparse.Namespace) -> None:
    load_before, rows = result["load_before"], result["rows"]
    print()
    print(f"device: {result['device']}")
    v = result["versions"]
    print(f"versions: python {v['python']}, torch {v['torch']}; cnnbench SPIN_COUNT={SPIN_COUNT}")
    print(f"load average (1/5/15 min): before {load_before}, after {result['load_after']} (busy runs add {args.busy})")
    print(f"{args.rounds} rounds, medians; busy = {args.busy} × `yes > /dev/null` on the same cores")
    print()
    print("| model | setting | quiet img/s | busy img/s | busy / quiet | quiet vs libgomp default |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        vs = f"{r['quiet_vs_default']:+.1%}" if r["quiet_vs_default"] is not None else "—"
        print(
            f"| {r['model']} | {r['setting']} | {r['quiet_img_s']:,.0f} | {r['busy_img_s']:,.0f} | "
            f"{r['busy_share']:.0%} | {vs} |"
        )


if __name__ == "__main__":
    sys.exit(main())
