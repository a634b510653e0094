"""Studies end to end on the CPU: planning, skipping, resuming, sharding, locking, validation."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnnbench.errors import ConfigError
from cnnbench.study import resolve_spec
from cnnbench.study.plan import plan_runs, shard_runs
from conftest import run_cli

TINY = [
    "--preset",
    "none",  # a plain study: train's defaults and these flags (no preset narrowed by them)
    "--data",
    "synthetic",
    "--models",
    "lenet5,mobilenet_v3_small",
    "--schedules",
    "cosine,plateau",
    "--epochs",
    "2",
    "--batch-size",
    "64",
    "--lr",
    "3e-3",
    "--max-train-samples",
    "320",
    "--no-progress",
]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_tiny_study_writes_every_file_and_a_rerun_skips_everything(tmp_path, isolated_cache):
    out = tmp_path / "study"
    run_cli("run", *TINY, "--seeds", "2", "--epochs", "1", "--no-embed", "--no-speed", "--out", str(out))
    rows = _rows(out / "results.csv")
    assert len(rows) == 8
    assert {(r["model"], r["schedule"], r["seed"]) for r in rows} == {
        (m, s, str(seed)) for m in ("lenet5", "mobilenet_v3_small") for s in ("cosine", "plateau") for seed in (0, 1)
    }
    assert {r["dataset"] for r in rows} == {"synthetic"} and {r["status"] for r in rows} == {"completed"}
    assert all(0 <= float(r["test_accuracy"]) <= 1 and float(r["train_time_s"]) > 0 for r in rows)
    aggregate = _rows(out / "aggregate.csv")
    assert len(aggregate) == 4  # model × schedule, mean ± std over the 2 seeds
    for name in ("study.yaml", "samples.npz", "report.html", "report.md"):
        assert (out / name).is_file(), name
    for r in rows:
        run = out / "runs" / r["run_id"]
        assert (run / "summary.json").is_file() and (run / "metrics.csv").is_file()
        assert (run / "checkpoint" / "best.pt").is_file()
        assert not (run / "checkpoint" / "last.pt").exists()  # finished: the optimiser state is not kept
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/summary.json")}

    again = run_cli("run", *TINY, "--seeds", "2", "--epochs", "1", "--no-embed", "--no-speed", "--out", str(out))
    assert "8 of 8 runs already finished; skipping them" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing retrained
    assert len(_rows(out / "results.csv")) == 8

    # a damaged summary.json: that run is trained again, its old directory kept aside (it was trained
    # again over its own files before, as a resume that found no last.pt)
    damaged = out / "runs" / rows[0]["run_id"] / "summary.json"
    damaged.write_bytes(damaged.read_bytes()[:40])
    third = run_cli("run", *TINY, "--seeds", "2", "--epochs", "1", "--no-embed", "--no-speed", "--out", str(out))
    assert f"{damaged}: unreadable; that run is trained again" in third.stderr
    assert "7 of 8 runs already finished" in third.stderr
    (kept,) = (out / "runs" / ".replaced").iterdir()
    assert kept.name.startswith(rows[0]["run_id"]) and (kept / "checkpoint" / "best.pt").is_file()
    summary = json.loads(damaged.read_text())
    assert summary["status"] == "completed" and any("summary.json was unreadable" in n for n in summary["notes"])


@pytest.mark.slow
def test_shards_merged_equal_the_unsharded_study(tmp_path, isolated_cache):
    args = [*TINY, "--models", "lenet5", "--seeds", "2", "--epochs", "1", "--no-embed", "--no-speed"]
    planned = json.loads(run_cli("run", *args, "--dry-run", "--json").stdout)
    expected = {Path(r["run_id"]).name for r in planned["runs"]}
    assert len(expected) == 4
    run_cli("run", *args, "--shard", "0/2", "--out", str(tmp_path / "a"))
    run_cli("run", *args, "--shard", "1/2", "--out", str(tmp_path / "b"))
    a = {r["run_id"] for r in _rows(tmp_path / "a" / "results.csv")}
    b = {r["run_id"] for r in _rows(tmp_path / "b" / "results.csv")}
    assert a and b and not (a & b)  # disjoint slices
    merged = tmp_path / "merged"
    run_cli("report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(merged))
    rows = _rows(merged / "results.csv")
    assert {r["run_id"] for r in rows} == expected and len(rows) == 4
    assert (merged / "report.html").is_file()


@pytest.mark.slow
def test_study_killed_mid_run_resumes_and_does_each_run_once(tmp_path, isolated_cache):
    out = tmp_path / "study"
    cmd = [
        sys.executable,
        "-m",
        "cnnbench",
        "run",
        *TINY,
        "--epochs",
        "3",
        "--no-embed",
        "--no-speed",
        "--out",
        str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    runs = out / "runs"
    deadline = time.time() + 240
    # kill once the first run is finished and the second has checkpointed an epoch
    while time.time() < deadline:
        done = list(runs.glob("*/summary.json")) if runs.exists() else []
        started = [p for p in runs.glob("*/checkpoint/last.pt") if not (p.parents[1] / "summary.json").exists()]
        if len(done) >= 1 and started:
            break
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/summary.json")}
    assert 1 <= len(first) < 4
    assert (out / ".lock").exists()  # left behind by the killed process; the next run takes it over

    resumed = run_cli("run", *TINY, "--epochs", "3", "--no-embed", "--no-speed", "--out", str(out))
    assert f"{len(first)} of 4 runs already finished" in resumed.stderr
    for name, stamp in first.items():
        assert (runs / name / "summary.json").stat().st_mtime_ns == stamp  # finished runs not redone
    rows = _rows(out / "results.csv")
    assert len(rows) == 4 and len({r["run_id"] for r in rows}) == 4
    assert {r["status"] for r in rows} == {"completed"}
    for run in runs.iterdir():
        epochs = [int(r["epoch"]) for r in _rows(run / "metrics.csv")]
        assert epochs == [1, 2, 3], (run.name, epochs)  # no epoch done twice or lost
    assert not (out / ".lock").exists()


@pytest.mark.slow
def test_a_second_study_on_the_same_directory_is_refused_naming_the_first(tmp_path, isolated_cache):
    out = tmp_path / "study"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lock").write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename, "started": "now"}))
        proc = run_cli("run", *TINY, "--out", str(out), check=False)
        assert proc.returncode == 2
        assert f"in use by process {holder.pid}" in proc.stderr and "Traceback" not in proc.stderr
        assert not (out / "runs").exists()
    finally:
        holder.kill()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "name: x\nmodelz: [lenet5]\n",
            "unknown key 'modelz' (did you mean models?); allowed keys: name, preset, data",
        ),
        ("models: [lenet5, resnet19]\n", "resnet19"),
        ("data: [mnistt]\nmodels: [lenet5]\n", "unknown dataset 'mnistt' (did you mean mnist?)"),
        ("models: [lenet5]\nschedules: [cosine, linear]\n", "schedules: 'linear' is not a schedule"),
        ("models: [lenet5]\nrecipe: {epochs: -3}\n", "study.yaml: recipe: epochs -3: expected a whole number"),
        ("models: [lenet5]\nrecipe: {epoch: 3}\n", "recipe: unknown key 'epoch'"),
        ("models: [lenet5]\nseeds: 0\n", "seeds: 0: expected a count ≥ 1"),
        ("models: [lenet5\n  data: x", "is not valid YAML at line"),
        (
            "models: [lenet5]\nmodel_recipes:\n  resnet18:\n    lrr: 0.1\n",
            "study.yaml: model_recipes.resnet18: unknown key 'lrr' (did you mean lr?); allowed keys: data_dir, epochs,",
        ),
        (
            "data: [synthetic]\nmodels: [lenet5]\ntargets: {mnist-sampl: 0.9}\n",
            "study.yaml: targets: unknown dataset 'mnist-sampl' (did you mean mnist-sample?); expected a dataset name, "
            "one of mnist, fashion-mnist, cifar10, mnist-sample, caltech256, imagefolder:PATH, synthetic",
        ),
    ],
)
def test_a_bad_study_file_is_rejected_before_any_work(tmp_path, content, message):
    study = tmp_path / "study.yaml"
    study.write_text(content)
    proc = run_cli("run", str(study), "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_recipes_and_targets_may_name_models_and_datasets_the_study_does_not_train_but_not_unknown_keys(tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text(
        "data: [synthetic]\nmodels: [lenet5]\n"
        "model_recipes: {resnet18: {lr: 0.1}}\n"  # a model the study drops: allowed, as presets do
        "targets: {fashion-mnist: 0.9, 'imagefolder:/data/x': 0.5, synthetic: 0.8}\n"
    )
    spec = resolve_spec(None, study, {})
    assert spec.model_recipes == {"resnet18": {"lr": 0.1}} and spec.targets["fashion-mnist"] == 0.9
    assert spec.run_config("synthetic", "lenet5", "cosine", 0).target_accuracy == 0.8
    study.write_text("models: [lenet5]\ntargets: {fmnist: 0.9}\n")  # an alias never matches a study's dataset
    with pytest.raises(
        ConfigError, match=r"study.yaml: targets: unknown dataset 'fmnist' \(did you mean fashion-mnist\?\)"
    ):
        resolve_spec(None, study, {})
    study.write_text("models: [lenet5]\nmodel_recipes: {lenet5: {pateince: 3}}\n")
    with pytest.raises(ConfigError, match=r"model_recipes.lenet5: unknown key 'pateince' \(did you mean patience\?\)"):
        resolve_spec(None, study, {})


def test_flags_override_the_preset_key_by_key():
    spec = resolve_spec("mnist-study", None, {"recipe": {"epochs": 3}, "data": "fashion-mnist"})
    cfg = spec.run_config("fashion-mnist", "resnet18", "plateau", 1)
    assert cfg.epochs == 3 and cfg.warmup_epochs == 5  # the rest of the preset stays
    assert cfg.target_accuracy == pytest.approx(0.90)  # fashion-mnist's own target
    assert cfg.batch_size == 64 and cfg.patience == 7 and cfg.seed == 1


def test_flags_also_override_per_model_recipes_and_scratch_models_train_fully():
    spec = resolve_spec("caltech-transfer", None, {"recipe": {"epochs": 1, "finetune": "head", "image_size": 64}})
    vgg = spec.run_config("caltech256", "vgg19", "cosine", 0)  # the preset trains vgg19 from scratch for 30 epochs
    assert vgg.epochs == 1 and vgg.pretrained is None and vgg.finetune == "full"
    mobile = spec.run_config("caltech256", "mobilenet_v2", "cosine", 0)
    assert mobile.finetune == "head" and mobile.pretrained == "true" and mobile.image_size == 64
    assert mobile.data_image_size == 74  # decode-once cache at 8/7 of the input side


def test_plan_and_shard_are_deterministic_and_cover_every_run():
    spec = resolve_spec(
        None, None, {"data": "synthetic", "models": "lenet5,alexnet,vgg11", "seeds": 3, "schedules": "cosine,plateau"}
    )
    runs = plan_runs(spec, ["lenet5", "alexnet", "vgg11"])
    assert len(runs) == 18 and len({r.run_id for r in runs}) == 18
    shards = [{r.run_id for r in shard_runs(runs, (i, 4))} for i in range(4)]
    assert set().union(*shards) == {r.run_id for r in runs}
    assert sum(len(s) for s in shards) == 18
    assert shards == [{r.run_id for r in shard_runs(runs, (i, 4))} for i in range(4)]


def test_unknown_preset_names_the_allowed_ones():
    with pytest.raises(
        ConfigError,
        match="--preset .mnist.: expected one of mnist-study, mnist-study-fast, caltech-transfer, quick, or none",
    ):
        resolve_spec("mnist", None, {})
