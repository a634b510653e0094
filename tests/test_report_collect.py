"""collect / write_results: study directories → one row per run, results.csv and aggregate.csv."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import socket
import statistics
from pathlib import Path

import numpy as np
import pytest
import yaml

from cnnbench.errors import ResultsError
from cnnbench.report import RESULT_COLUMNS, collect, write_results
from cnnbench.report.records import SUMMARY_FIGURES
from cnnbench.report.results_csv import aggregate_columns
from cnnbench.rundir import PREDICTIONS_FILE, STATUS_OK, RunSummary
from support.synthetic_study import SyntheticStudy, write_synthetic_study

FAILED = "mnist__vgg11__cosine__s1"
KILLED = "mnist__resnet18__plateau__s1"  # run directory without summary.json
ABSENT = "mnist__lenet5__plateau__s1"  # in study.yaml, no directory
SPEC = SyntheticStudy(
    models=("lenet5", "resnet18", "vgg11"),
    schedules=("cosine", "plateau"),
    seeds=(0, 1),
    failed=(FAILED,),
    missing=(KILLED,),
    absent=(ABSENT,),
    analysis=False,
    samples=False,
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return write_synthetic_study(tmp_path_factory.mktemp("collect") / "study", SPEC)


def _copy(study, tmp_path):
    dest = tmp_path / "copy"
    shutil.copytree(study, dest)
    return dest


def _csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_every_defined_run_is_listed_once_with_its_status(study):
    results = collect(study)
    ids = [r.run_id for r in results.runs]
    assert sorted(ids) == sorted(SPEC.run_ids())
    by_id = {r.run_id: r for r in results.runs}
    assert by_id[FAILED].status == "diverged"
    assert "NaN" in by_id[FAILED].error
    assert by_id[KILLED].status == "missing"
    assert "no summary.json" in by_id[KILLED].error and "metrics.csv" in by_id[KILLED].error
    assert by_id[ABSENT].status == "missing" and by_id[ABSENT].path is None
    others = set(ids) - {FAILED, KILLED, ABSENT}
    assert all(by_id[i].status in STATUS_OK for i in others)
    assert results.models() == ["lenet5", "resnet18", "vgg11"]
    assert results.schedules() == ["cosine", "plateau"]


def test_figures_are_the_summary_values_joined_with_the_speed_file(study):
    with_summary = [run for run in collect(study).runs if run.summary]
    # every run but the killed one (no summary.json) and the absent one (no directory)
    assert sorted(r.run_id for r in with_summary) == sorted(set(SPEC.run_ids()) - {KILLED, ABSENT})
    for run in with_summary:
        speed = json.loads((study / "speed" / f"{run.model}.json").read_text())
        for key in SUMMARY_FIGURES:
            if run.summary.get(key) is not None:
                assert run.figures[key] == run.summary[key], (run.run_id, key)
            elif key == "test_time_s":  # the speed file's test pass stands in for finished runs only
                assert run.figures[key] == (speed[key] if run.ok else None)
            else:
                assert run.figures[key] is None, (run.run_id, key)
        assert run.figures["gpu_throughput"] == speed["gpu_throughput"]
        assert run.figures["cpu_latency_ms"] == speed["cpu_latency_ms"]
        assert run.figures["onnx_latency_ms"] is None


def test_results_csv_has_the_documented_columns_and_one_row_per_run(study, tmp_path):
    results = collect(study)
    files = write_results(results, tmp_path)
    header, rows = _csv(files.results_csv)
    assert header == list(RESULT_COLUMNS)
    assert [r["run_id"] for r in rows] == [r.run_id for r in results.runs]
    assert len({r["run_id"] for r in rows}) == len(SPEC.run_ids())
    row = next(r for r in rows if r["run_id"] == "mnist__resnet18__cosine__s0")
    summary = json.loads((study / "runs" / "mnist__resnet18__cosine__s0" / "summary.json").read_text())
    assert float(row["test_accuracy"]) == summary["test_accuracy"]  # exact round trip
    assert int(row["epochs_run"]) == summary["epochs_run"]
    failed = next(r for r in rows if r["run_id"] == FAILED)
    assert failed["status"] == "diverged" and failed["test_accuracy"] == "" and "NaN" in failed["error"]
    first = files.results_csv.read_bytes()
    write_results(collect(study), tmp_path)  # after every run: rewritten, never appended
    assert files.results_csv.read_bytes() == first


def test_aggregate_is_mean_and_sample_std_over_finished_seeds(study, tmp_path):
    files = write_results(collect(study), tmp_path)
    header, rows = _csv(files.aggregate_csv)
    assert header == aggregate_columns()
    by_key = {(r["model"], r["schedule"]): r for r in rows}
    assert len(rows) == 6
    accs = [
        json.loads((study / "runs" / f"mnist__resnet18__cosine__s{s}" / "summary.json").read_text())["test_accuracy"]
        for s in (0, 1)
    ]
    row = by_key[("resnet18", "cosine")]
    assert float(row["test_accuracy_mean"]) == pytest.approx(statistics.mean(accs), abs=1e-12)
    assert float(row["test_accuracy_std"]) == pytest.approx(statistics.stdev(accs), abs=1e-12)
    assert row["ok"] == "2" and row["seeds"] == "0 1"
    diverged = by_key[("vgg11", "cosine")]  # seed 1 diverged: one finished seed, no std
    assert diverged["runs"] == "2" and diverged["ok"] == "1" and diverged["test_accuracy_std"] == ""
    assert "diverged=1" in diverged["statuses"]


def test_a_live_lock_marks_unfinished_runs_as_running(study, tmp_path):
    copy = _copy(study, tmp_path)
    lock = {"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}
    (copy / ".lock").write_text(json.dumps(lock))
    assert {r.run_id: r.status for r in collect(copy).runs}[KILLED] == "running"
    dead = dict(lock, pid=2**22 + 12345)  # above pid_max on Linux: never a live process
    (copy / ".lock").write_text(json.dumps(dead))
    assert {r.run_id: r.status for r in collect(copy).runs}[KILLED] == "missing"


def test_shards_merge_into_the_same_rows_as_one_directory(study, tmp_path):
    shards = [tmp_path / "a", tmp_path / "b"]
    run_dirs = sorted((study / "runs").iterdir())
    for i, shard in enumerate(shards):
        shutil.copytree(study / "speed", shard / "speed")
        mine = run_dirs[i::2]
        for d in mine:
            shutil.copytree(d, shard / "runs" / d.name)
        definition = yaml.safe_load((study / "study.yaml").read_text())
        definition.update(runs=[d.name for d in mine], shard=[i, 2])
        (shard / "study.yaml").write_text(yaml.safe_dump(definition))
    single = {r.run_id: r.row() for r in collect(study).runs}
    merged = {r.run_id: r.row() for r in collect(shards).runs}
    single.pop(ABSENT), merged.pop(ABSENT, None)  # absent runs are named by study.yaml, not by a directory
    assert merged == single


def test_a_run_in_two_shards_is_kept_once_preferring_the_finished_one(study, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    run = "mnist__lenet5__cosine__s0"
    shutil.copytree(study / "runs" / run, a / "runs" / run)
    shutil.copytree(study / "runs" / run, b / "runs" / run)
    (a / "runs" / run / "summary.json").unlink()  # shard a was killed mid-run
    results = collect([a, b])
    assert [r.run_id for r in results.runs] == [run]
    assert results.runs[0].status in STATUS_OK and results.runs[0].study_dir == b
    assert any(run in p and str(b) in p for p in results.problems)


def test_an_unreadable_summary_is_listed_or_with_strict_an_error_naming_it(study, tmp_path):
    copy = _copy(study, tmp_path)
    bad = copy / "runs" / "mnist__lenet5__cosine__s1" / "summary.json"
    bad.write_text('{"status": "completed", "test_acc')  # truncated
    results = collect(copy)
    record = {r.run_id: r for r in results.runs}["mnist__lenet5__cosine__s1"]
    assert record.status == "unreadable" and str(bad) in record.error
    assert any(str(bad) in p for p in results.problems)
    with pytest.raises(ResultsError, match="summary.json is not valid JSON"):
        collect(copy, strict=True)


@pytest.mark.parametrize(
    ("value", "message"),
    [('"0.95"', "test_accuracy '0.95': expected a number"), ("95.0", "expected a fraction between 0 and 1")],
)
def test_a_hand_edited_accuracy_is_listed_as_unreadable_not_averaged(study, tmp_path, value, message):
    copy = _copy(study, tmp_path)
    path = copy / "runs" / "mnist__lenet5__cosine__s1" / "summary.json"
    path.write_text(re.sub(r'"test_accuracy": [0-9.e-]+', f'"test_accuracy": {value}', path.read_text()))
    record = {r.run_id: r for r in collect(copy).runs}["mnist__lenet5__cosine__s1"]
    assert record.status == "unreadable" and str(path) in record.error and message in record.error
    with pytest.raises(ResultsError, match=re.escape(message)):
        RunSummary.read(path.parent)


@pytest.mark.parametrize(
    ("lr_find", "message"),
    [
        ({"lr": None}, "lr_find.lr None: expected a number"),
        ({"lr": "zz"}, "lr_find.lr 'zz': expected a number"),
        ({"lr": [1]}, "lr_find.lr [1]: expected a number"),
        ({"lr": 0}, "lr_find.lr 0: expected a learning rate > 0"),
        ({"seconds": "x"}, "lr_find.seconds 'x': expected a number"),
        ({"steps_taken": 2.5}, "lr_find.steps_taken 2.5: expected a whole number"),
        ({"cached": "yes"}, "lr_find.cached 'yes': expected true or false"),
    ],
)
def test_a_hand_edited_range_test_record_is_named_not_a_traceback(study, tmp_path, lr_find, message):
    """`"lr_find": {"lr": null}` failed the report's Tuning table with a TypeError."""
    copy = _copy(study, tmp_path)
    path = copy / "runs" / "mnist__lenet5__cosine__s1" / "summary.json"
    summary = json.loads(path.read_text())
    record = {"lr": 1e-3, "rule": "min/3.2", "steps": 60, "steps_taken": 60, "start_lr": 1e-5, "end_lr": 1.0,
              "seconds": 1.0, "cached": False}  # fmt: skip
    summary["lr_find"] = {**record, **lr_find}
    path.write_text(json.dumps(summary))
    run = {r.run_id: r for r in collect(copy).runs}["mnist__lenet5__cosine__s1"]
    assert run.status == "unreadable" and str(path) in run.error and message in run.error
    summary["lr_find"] = record
    path.write_text(json.dumps(summary))
    assert {r.run_id: r for r in collect(copy).runs}["mnist__lenet5__cosine__s1"].ok  # the record as written


def test_missing_or_empty_directories_raise_errors_naming_them(tmp_path):
    with pytest.raises(ResultsError, match=f"study directory {tmp_path / 'nope'} does not exist"):
        collect(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="holds no run directories"):
        collect(tmp_path / "empty")
    with pytest.raises(ResultsError, match="at least one"):
        collect([])


def test_speed_file_is_matched_by_the_runs_input_size(study, tmp_path):
    copy = _copy(study, tmp_path)
    speed = json.loads((copy / "speed" / "lenet5.json").read_text())
    bigger = dict(speed, input=[1, 32, 32], gpu_throughput=1.0)
    (copy / "speed" / "lenet5_32.json").write_text(json.dumps(bigger))
    (copy / "speed" / "lenet5.json").rename(copy / "speed" / "lenet5_28.json")
    runs = [r for r in collect(copy).runs if r.model == "lenet5" and r.path is not None]
    assert runs and all(r.figures["gpu_throughput"] == speed["gpu_throughput"] for r in runs)


def test_a_folder_of_run_directories_and_a_product_definition(tmp_path):
    spec = SyntheticStudy(models=("lenet5",), schedules=("cosine",), seeds=(0, 1), analysis=False, samples=False)
    root = write_synthetic_study(tmp_path / "s", spec)
    flat = tmp_path / "flat"
    shutil.copytree(root / "runs", flat)  # cnnbench train outputs side by side, no study.yaml
    assert [r.run_id for r in collect(flat).runs] == spec.run_ids()
    (root / "study.yaml").write_text(
        yaml.safe_dump({"datasets": ["mnist"], "models": ["lenet5"], "schedules": ["cosine"], "seeds": [0, 1, 2]})
    )
    statuses = {r.run_id: r.status for r in collect(root).runs}
    assert statuses["mnist__lenet5__cosine__s2"] == "missing"


@pytest.mark.slow  # trains the session's engine run once
def test_the_synthetic_study_writes_the_files_and_keys_the_engine_writes(study, engine_run):
    """The report tests' synthetic study stays in the engine's formats: same files, same keys, same columns."""
    synthetic = study / "runs" / "mnist__lenet5__cosine__s0"
    names = ("config.yaml", "summary.json", "metrics.csv", "steps.csv", "model.json", "data.json", "test_metrics.json")
    for name in names:
        real, made = engine_run / name, synthetic / name
        assert made.is_file() and real.is_file(), name
        if name.endswith(".csv"):
            assert made.read_text().splitlines()[0] == real.read_text().splitlines()[0], name
            continue
        load = yaml.safe_load if name.endswith(".yaml") else json.loads
        real_obj, made_obj = load(real.read_text()), load(made.read_text())
        assert set(made_obj) == set(real_obj), name
        for section in ("model_args", "data_config", "resolved") if name == "config.yaml" else ():
            assert set(made_obj[section]) == set(real_obj[section]), f"{name}: {section}"
    assert RunSummary.read(synthetic).extra == {} and RunSummary.read(engine_run).extra == {}
    with np.load(engine_run / PREDICTIONS_FILE) as real, np.load(synthetic / PREDICTIONS_FILE) as made:
        assert sorted(made.files) == sorted(real.files)
        assert all(made[k].dtype == real[k].dtype and made[k].ndim == real[k].ndim for k in real.files)


def test_the_docs_list_the_columns_results_csv_has():
    docs = Path(__file__).resolve().parents[1] / "docs"
    listed = (docs / "architecture.md").read_text().split("`results.csv` columns", 1)[1].split("`aggregate.csv`", 1)[0]
    assert set(RESULT_COLUMNS) <= set(re.findall(r"`([a-z0-9_]+)`", listed))
    report = (docs / "report.md").read_text().split("`results.csv` columns", 1)[1].split("Floats are", 1)[0]
    assert set(RESULT_COLUMNS) <= set(re.findall(r"[a-z0-9_]+", report))
