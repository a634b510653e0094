"""``cnnbench train`` with its defaults on LeNet-5 and the bundled digits, timed as a user runs it (issue [1/5]).

Each run is ``cnnbench train --model lenet5 --data mnist-sample --epochs N`` in a fresh process (the
wall time counts the process start, the data, the range test of ``--lr auto``, training and the test
pass), and its test accuracy comes from the run's summary.json. Goals: 15 epochs ≥ 97.5 % test
accuracy in ≤ 60 s; 2 epochs ≥ 90 %.

    python benchmarks/train_defaults.py                  # --epochs 15, then --epochs 2
    python benchmarks/train_defaults.py --epochs 1 --data synthetic --json result.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchio import DATASETS, add_json_flag, emit_json, log

GOALS = {15: (0.975, 60.0), 2: (0.90, None)}  # epochs: (test accuracy at least, wall seconds at most)


def train(model: str, data: str, epochs: int, out: Path) -> dict:
    """One ``cnnbench train`` with its defaults: wall seconds, test accuracy, training seconds, the lr picked."""
    cmd = [sys.executable, "-m", "cnnbench", "train", "--model", model, "--data", data, "--epochs", str(epochs),
           "--no-progress", "--out", str(out)]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:])} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {
        "epochs": epochs,
        "wall_s": wall,
        "test_accuracy": summary["test_accuracy"],
        "train_time_s": summary["train_time_s"],
        "lr": summary.get("lr"),
    }


def judge(row: dict) -> bool | None:
    goal = GOALS.get(row["epochs"])
    if goal is None:
        return None
    accuracy, seconds = goal
    return row["test_accuracy"] >= accuracy and (seconds is None or row["wall_s"] <= seconds)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="lenet5")
    p.add_argument("--data", default="mnist-sample", choices=DATASETS)
    p.add_argument("--epochs", default="15,2", help="one run per epoch count, comma-separated")
    add_json_flag(p)
    args = p.parse_args(argv)
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(e) for e in args.epochs.split(",")):
            rows.append({**train(args.model, args.data, n, Path(tmp) / f"e{n}"), "met": None})
            rows[-1]["met"] = judge(rows[-1])
            r = rows[-1]
            log(f"  --epochs {n}: {r['test_accuracy']:.1%} test accuracy in {r['wall_s']:.1f} s of wall time")
    result = {"benchmark": "train_defaults", "model": args.model, "data": args.data, "rows": rows,
              "load_before": load_before, "load_after": os.getloadavg()}  # fmt: skip
    emit_json(result, args.json)
    if args.json != "-":
        for r in rows:
            verdict = {True: "met", False: "not met", None: "no goal"}[r["met"]]
            print(f"{args.model} --epochs {r['epochs']}: {r['test_accuracy']:.1%} in {r['wall_s']:.1f} s ({verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
