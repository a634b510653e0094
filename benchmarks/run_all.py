"""Every benchmark of docs/benchmarks.md for one device, in one command, each part under its own time limit.

    python benchmarks/run_all.py --device cuda --out benchmarks/results/cuda     # ≤ 480 s by default
    python benchmarks/run_all.py --device cpu --out benchmarks/results/cpu       # ≤ 900 s by default
    python benchmarks/run_all.py --device cpu --smoke --out /tmp/smoke           # every part, tiny, seconds
    python benchmarks/render.py                                                  # the docs' table from OUT

The parts (``parts_cpu.py``, ``parts_gpu.py``) run in the order that matters most; each is a
subprocess killed at its limit, and none starts once the budget (``--budget-s``) is nearly spent.
Each writes OUT/<part>.json: the figure of every goal it measures, its baseline and ratio, the goal,
met or not, and where it ran (device, GPU, CPU model and vector ISA, versions, load, git commit,
date). A part that fails, runs out of time or is skipped never replaces an earlier measured result.
The run ends with one table. ``--smoke`` runs every part of the device's list on the CPU in this
process at tiny sizes (the test suite does), so the GPU script cannot rot between GPU loans.

Data: Fashion-MNIST where cnnbench looks for it ($CNNBENCH_DATA/fashion-mnist, ~/.cache/cnnbench/
fashion-mnist, /usr/share/datasets/fashion-mnist), else the bundled mnist-sample (the goals that name
Fashion-MNIST are then not judged). Nothing is downloaded (CNNBENCH_OFFLINE=1 for every part).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _path in (str(ROOT / "src"), str(BENCH)):  # this checkout's cnnbench, and the scripts beside this one
    if _path not in sys.path:
        sys.path.insert(0, _path)

from parts import Context, Part  # noqa: E402
from parts_cpu import CPU_PARTS  # noqa: E402
from parts_gpu import GPU_PARTS  # noqa: E402
from runenv import environment, missing_line, pick_data  # noqa: E402

BUDGET_S = {"cuda": 480.0, "cpu": 900.0}
MEASURED = ("ok", "partial")  # statuses whose figures a later failure must not replace
SCHEMA = 1


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", required=True, choices=("cuda", "cpu"), help="whose benchmarks to run")
    p.add_argument("--budget-s", type=float, default=None, help="seconds for all parts (default: cuda 480, cpu 900)")
    p.add_argument("--out", default=None, help="result folder (default: benchmarks/results/<device>)")
    p.add_argument("--parts", default=None, help="only these parts, comma-separated (default: all, in order)")
    p.add_argument("--smoke", action="store_true", help="every part on the CPU at tiny sizes, in this process")
    p.add_argument("--list", action="store_true", help="print the parts, their limits and commands; run nothing")
    p.add_argument("--commit", default=None, help="the git commit to record where the tree has no .git")
    return p.parse_args(argv)


def select(device: str, names: str | None) -> tuple[Part, ...]:
    parts = GPU_PARTS if device == "cuda" else CPU_PARTS
    if names is None:
        return parts
    wanted = names.split(",")
    unknown = sorted(set(wanted) - {p.name for p in parts})
    if unknown:
        raise SystemExit(f"--parts {names}: unknown {unknown}; {device} has {', '.join(p.name for p in parts)}")
    return tuple(p for p in parts if p.name in wanted)


def command_line(part: Part, argv: list[str], ctx: Context) -> str:
    """The part's command as a person would type it (the scratch folder shown as WORK)."""
    text = " ".join(a if a and " " not in a else repr(a) for a in argv)
    return f"python benchmarks/{part.script} {text}".strip().replace(str(ctx.work), "WORK")


def run_subprocess(part: Part, argv: list[str], timeout: float, log: Path) -> tuple[str, str]:
    """Run the script in its own process group; at the limit the whole group is ended. (status, output tail)."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(BENCH / part.script), *argv], stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=ROOT, env=os.environ,
        )  # fmt: skip
        try:
            status = "ok" if proc.wait(timeout) == 0 else "failed"
        except subprocess.TimeoutExpired:
            status = "timeout"
        except BaseException:
            _end_group(proc)
            raise
        if status == "timeout":
            _end_group(proc)
    return status, _tail(log.read_text(errors="replace"))


def _end_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the part's process group (its workers, busy loops and studies too), SIGKILL after 15 s."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_in_process(part: Part, argv: list[str]) -> tuple[str, str]:
    """A smoke run: the script's ``main(argv)`` in this process (one import of torch for every part)."""
    module = importlib.import_module(Path(part.script).stem)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            code = module.main(argv) or 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception:
            traceback.print_exc(file=buffer)
            code = 1
    return ("ok" if code == 0 else "failed"), _tail(buffer.getvalue())


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_part(part: Part, ctx: Context, timeout: float, env: dict) -> dict:
    """Run one part and read its result: a record with its goal entries (or why there are none)."""
    result_path = ctx.work / "json" / f"{part.name}.json"
    argv = [*(part.smoke if ctx.smoke else part.args)(ctx), "--json", str(result_path)]
    record = {"schema": SCHEMA, "part": part.name, "script": part.script, "command": command_line(part, argv, ctx)}
    record.update(date=_now(), limit_s=round(timeout), load_before=_load(), env=env)
    start = time.perf_counter()
    if ctx.smoke:
        status, tail = run_in_process(part, argv)
    else:
        status, tail = run_subprocess(part, argv, timeout, ctx.work / f"{part.name}.log")
    record.update(seconds=round(time.perf_counter() - start, 1), load_after=_load(), status=status)
    if status == "ok" and result_path.is_file():
        raw = json.loads(result_path.read_text())
        record.update(goals=part.goals(raw, ctx), result=raw)
    elif status == "timeout" and part.on_timeout is not None:
        record.update(status="partial", goals=part.on_timeout(ctx, timeout), reason=f"stopped at its {timeout:.0f} s")
    else:
        reason = "no result file" if status == "ok" else status
        record.update(status="failed" if status == "ok" else status, reason=reason, goals=[], output_tail=tail)
    return record


def skipped(part: Part, reason: str, env: dict) -> dict:
    return {"schema": SCHEMA, "part": part.name, "script": part.script, "date": _now(), "env": env,
            "status": "skipped", "reason": reason, "goals": []}  # fmt: skip


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def save(record: dict, out: Path) -> str:
    """Write OUT/<part>.json, unless this run measured nothing and the file holds an earlier measurement."""
    path = out / f"{record['part']}.json"
    if record["status"] not in MEASURED and path.is_file():
        with contextlib.suppress(ValueError, OSError):
            if json.loads(path.read_text()).get("status") in MEASURED:
                return f"kept the earlier result in {path}"
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return str(path)


def check_smoke_out(out: Path) -> None:
    """A smoke run never overwrites measured results."""
    for path in out.glob("*.json"):
        with contextlib.suppress(ValueError, OSError):
            if not json.loads(path.read_text()).get("env", {}).get("smoke", True):
                raise SystemExit(f"--smoke: {out} holds measured results ({path.name}); give another --out")


def table(records: list[dict]) -> list[str]:
    """One table for the whole run: per part and goal, status, seconds, the figure's line and the verdict."""
    lines = ["| part | status | s | goal | result | met |", "|---|---|---|---|---|---|"]
    for r in records:
        seconds = f"{r.get('seconds', 0):.0f}" if "seconds" in r else "—"
        for g in r["goals"] or [{"goal": "—", "text": r.get("reason", ""), "met": None}]:
            met = {True: "met", False: "**not met**", None: "—"}[g["met"]]
            lines.append(f"| {r['part']} | {r['status']} | {seconds} | {g['goal']} | {g['text']} | {met} |")
    return lines


def plan(parts: tuple[Part, ...], ctx: Context, budget: float) -> list[str]:
    total = sum(p.limit_s for p in parts)
    lines = [f"{ctx.device}: {len(parts)} parts, limits {total:.0f} s in all, budget {budget:.0f} s"]
    for p in parts:
        argv = (p.smoke if ctx.smoke else p.args)(ctx)
        lines.append(f"  {p.name:16s} ≤ {p.limit_s:4.0f} s (not started under {p.min_s:.0f} s left)")
        lines.append(f"      {command_line(p, argv, ctx)}")
    return lines


def run(parts: tuple[Part, ...], ctx: Context, budget: float, out: Path, env: dict, absent: set[str]) -> list[dict]:
    """Each part in order, under min(its limit, what is left of the budget); each record saved at once."""
    deadline = time.monotonic() + budget
    records = []
    for part in parts:
        left = deadline - time.monotonic()
        missing = [m for m in part.needs if m in absent]
        if missing:
            record = skipped(part, f"{', '.join(missing)} not installed", env)
        elif not ctx.smoke and left < part.min_s:
            record = skipped(part, f"budget spent ({left:.0f} s left, it needs {part.min_s:.0f} s)", env)
        else:
            print(f"[{part.name}] up to {min(part.limit_s, left):.0f} s ...", flush=True)
            record = run_part(part, ctx, min(part.limit_s, max(left, 1.0)), env)
        where = save(record, out)
        print(f"[{part.name}] {record['status']} {record.get('seconds', '')} → {where}", flush=True)
        if record["status"] in ("failed", "timeout") and record.get("output_tail"):
            print("  " + record["output_tail"].replace("\n", "\n  "), flush=True)
        records.append(record)
    return records


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("CNNBENCH_OFFLINE", "1")  # a benchmark never waits on the network
    # the parts (and the `cnnbench train` processes some start) import this checkout's cnnbench
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    from cnnbench.utils.threads import configure_cpu_threads

    configure_cpu_threads()  # as the CLI does, before torch loads (smoke parts run in this process)
    parts = select(args.device, args.parts)
    budget = args.budget_s or BUDGET_S[args.device]
    out = Path(args.out or BENCH / "results" / args.device)
    work = Path(tempfile.mkdtemp(prefix="cnnbench-run-all-"))
    try:
        data, data_line = pick_data(args.smoke)
        ctx = Context(args.device, args.smoke, data, work)
        if args.list:
            print("\n".join(plan(parts, ctx, budget)))
            return 0
        if args.smoke:
            check_smoke_out(out)
        env = environment(ctx, args.commit)
        missing = missing_line(parts)
        print(missing.text)
        print(data_line)
        print(f"{args.device}{' smoke' if args.smoke else ''}: {len(parts)} parts, budget {budget:.0f} s, → {out}")
        records = run(parts, ctx, budget, out, env, missing.absent)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(table(records)))
    bad = [r["part"] for r in records if r["status"] != "ok" and (args.smoke or r["status"] == "failed")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
