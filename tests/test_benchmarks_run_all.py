"""benchmarks/run_all.py: every part of both device lists still runs (``--smoke``), its result names the
goals of benchmarks/goals.py, and a part's time limit, the budget, a missing module and a failure are
handled without losing an earlier measurement."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import parts_cpu  # noqa: E402
import parts_gpu  # noqa: E402
import run_all  # noqa: E402
from goals import BY_KEY, GOALS  # noqa: E402
from parts import Context, Part, entry  # noqa: E402


def _goals(key: str) -> callable:
    return lambda raw, ctx: [entry(key, raw["value"], f"value {raw['value']}")]


def _record(status: str, part: str = "study") -> dict:
    return {"part": part, "status": status, "goals": [], "env": {"smoke": False}}


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_smoke_runs_every_part_of_the_device_and_measures_each_of_its_goals(device, tmp_path, isolated_cache):
    out = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--device", device, "--smoke", "--out", str(out)],
        capture_output=True, text=True, timeout=280, cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    parts = run_all.select(device, None)
    records = {p.name: json.loads((out / f"{p.name}.json").read_text()) for p in parts}
    assert all(r["status"] == "ok" for r in records.values()), {k: r.get("output_tail") for k, r in records.items()}
    produced = {g["goal"] for r in records.values() for g in r["goals"]}
    assert produced == {g.key for g in GOALS if g.device == device and not g.by_hand}
    for r in records.values():
        assert r["env"]["smoke"] is True and r["env"]["device"] == device and r["env"]["cpu_model"]
        assert r["env"]["versions"]["torch"] and r["date"].endswith("Z") and r["command"].startswith("python ")
        for g in r["goals"]:
            assert g["text"] and len(g["text"]) <= 250 and g["met"] in (True, False, None), g
    table = proc.stdout[proc.stdout.index("| part | status |") :]
    assert all(f"| {p.name} | ok |" in table for p in parts)
    assert "missing:" in proc.stdout or "every dependency is installed" in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_part_past_its_limit_is_stopped_with_the_processes_it_started(tmp_path):
    script = tmp_path / "sleeper.py"
    pid_file = tmp_path / "child.pid"
    script.write_text(
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen(['sleep', '120'])\nopen({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(120)\n"
    )
    part = Part("sleeper", str(script), 2, lambda c: [], lambda c: [], _goals("compile-cpu"))
    status, _ = run_all.run_subprocess(part, [], timeout=2.0, log=tmp_path / "log")
    assert status == "timeout"
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and Path(f"/proc/{child}").exists():
        time.sleep(0.2)
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split()[2]


def test_with_the_budget_spent_or_a_module_missing_parts_are_skipped_and_say_why(tmp_path):
    ctx = Context("cpu", False, "mnist-sample", tmp_path / "work")
    parts = run_all.select("cpu", "study,embed")
    records = run_all.run(parts, ctx, 0.0, tmp_path / "out", {"smoke": False}, absent={"openTSNE"})
    assert [r["status"] for r in records] == ["skipped", "skipped"]
    assert records[0]["reason"].startswith("openTSNE not installed")
    records = run_all.run(run_all.select("cpu", "data_pipeline"), ctx, 0.0, tmp_path / "out", {}, absent=set())
    assert records[0]["reason"].startswith("budget spent (")
    assert json.loads((tmp_path / "out" / "data_pipeline.json").read_text())["status"] == "skipped"


def test_a_failed_or_skipped_part_never_replaces_an_earlier_measurement(tmp_path):
    assert run_all.save({**_record("ok"), "goals": [{"goal": "default-study-time"}]}, tmp_path).endswith("study.json")
    assert run_all.save(_record("failed"), tmp_path).startswith("kept the earlier result")
    assert run_all.save(_record("skipped"), tmp_path).startswith("kept the earlier result")
    assert json.loads((tmp_path / "study.json").read_text())["status"] == "ok"
    run_all.save(_record("partial"), tmp_path)  # a partial measurement is newer news than the last full one
    assert json.loads((tmp_path / "study.json").read_text())["status"] == "partial"


def test_smoke_refuses_a_folder_of_measured_results(tmp_path):
    run_all.save(_record("ok"), tmp_path)
    with pytest.raises(SystemExit, match="holds measured results"):
        run_all.check_smoke_out(tmp_path)
    run_all.check_smoke_out(tmp_path / "empty")


def test_parts_are_named_once_per_device_and_unknown_ones_are_refused():
    for device in ("cpu", "cuda"):
        names = [p.name for p in run_all.select(device, None)]
        assert len(names) == len(set(names)) and all((BENCH / p.script).is_file() for p in run_all.select(device, None))
    with pytest.raises(SystemExit, match="unknown"):
        run_all.select("cpu", "study,nope")


def test_a_goal_measured_on_another_dataset_is_kept_but_not_judged():
    e = entry("data-loader-cpu", 15.8, "0.57 s vs 8.92 s", data="mnist-sample")
    assert e["met"] is None and "not judged" in e["text"]
    assert entry("data-loader-cpu", 15.8, "x", data="fashion-mnist")["met"] is True
    assert entry("default-study-time", 700.0, "x")["met"] is False  # lower is better, 600 s
    assert set(BY_KEY) == {g.key for g in GOALS}


def test_the_table_has_a_row_per_goal_entry_and_one_for_a_part_without_any():
    records = [
        {"part": "study", "status": "ok", "seconds": 300.0, "goals": [entry("default-study-time", 300.0, "300 s")]},
        {"part": "embed", "status": "skipped", "reason": "openTSNE not installed", "goals": []},
    ]
    lines = run_all.table(records)
    assert lines[2] == "| study | ok | 300 | default-study-time | 300 s | met |"
    assert lines[3] == "| embed | skipped | — | — | openTSNE not installed | — |"


def test_a_study_stopped_at_its_limit_says_how_far_it_got(tmp_path):
    study = tmp_path / "study" / "study"
    study.mkdir(parents=True)
    rows = ["run_id,model,status", "a,lenet5,early_stopped", "b,vgg11,completed", "c,alexnet,missing"]
    (study / "results.csv").write_text("\n".join(rows) + "\n")
    ctx = Context("cpu", False, "mnist-sample", tmp_path)
    (cpu,) = parts_cpu.study_timeout(ctx, 600.0)
    assert cpu["goal"] == "default-study-time" and cpu["met"] is False
    assert cpu["text"] == "not finished within 600 s (2 of 3 runs finished)"
    (gpu,) = parts_gpu.study_timeout(Context("cuda", False, "fashion-mnist", tmp_path), 150.0)
    assert gpu["met"] is None and "2 of 3 runs finished" in gpu["text"]  # 150 s × 3 seeds < 600 s: not judged
    assert parts_gpu.study_timeout(Context("cuda", False, "fashion-mnist", tmp_path), 240.0)[0]["met"] is False


def test_one_seed_of_the_mnist_study_is_judged_as_three():
    raw = {"seeds": [0], "wall_s": 180.0, "runs": 20, "preset": "mnist-study", "data": "fashion-mnist"}
    (e,) = parts_gpu.study_goals(raw, Context("cuda", False, "fashion-mnist", Path(".")))
    assert e["value"] == 540.0 and e["met"] is True and "≈ 540 s for 3 seeds" in e["text"]
    (e,) = parts_gpu.study_goals({**raw, "seeds": [0, 1, 2], "wall_s": 650.0}, Context("cuda", False, "x", Path(".")))
    assert e["value"] == 650.0 and e["met"] is False and "≈" not in e["text"]
