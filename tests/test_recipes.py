"""Trustworthy numbers: fixed work, the seed's recipe, recipes never mixed in a report."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from cnnbench.engine.config import TrainConfig
from cnnbench.engine.schedules import PlateauState
from cnnbench.errors import ConfigError
from cnnbench.rundir import recipe_differences, recipe_hash
from conftest import run_cli

TINY_RUN = [
    "--preset",
    "none",
    "--data",
    "synthetic",
    "--models",
    "lenet5",
    "--schedules",
    "cosine",
    "--epochs",
    "1",
    "--batch-size",
    "64",
    "--max-train-samples",
    "256",
    "--no-embed",
    "--no-speed",
    "--no-progress",
]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_recipe_hash_ignores_model_seed_and_runtime_settings_only():
    a = TrainConfig(model="lenet5", seed=0, lr=1e-3, warmup_epochs=5).to_dict()
    b = TrainConfig(model="resnet18", seed=3, lr=0.001, warmup_epochs=5.0, device="cpu", progress=False).to_dict()
    b["notes"] = ["anything a runner noted"]
    assert recipe_hash(a) == recipe_hash(b)
    c = TrainConfig(model="lenet5", seed=0, lr=2e-3, warmup_epochs=5).to_dict()
    assert recipe_hash(a) != recipe_hash(c)
    assert recipe_differences([a, c]) == ["lr"]
    # a YAML study file that spells a number as a string is the same recipe
    assert recipe_hash({**a, "lr": "1e-3"}) == recipe_hash(a)


def test_plateau_follows_the_monitored_figure():
    loss = PlateauState(factor=0.1, patience=1, max_reductions=3, mode="min")
    assert [loss.update(v) for v in (1.0, 0.9, 0.95, 0.91, 0.92)] == [False, False, False, True, False]
    assert loss.reductions == 1 and math.isclose(loss.scale, 0.1)
    # torch's default relative threshold: 0.89991 is not better than 0.9 × (1 - 1e-4)
    tiny = PlateauState(factor=0.5, patience=0, max_reductions=3, mode="min")
    tiny.update(0.9)
    assert tiny.update(0.89995) is True
    acc = PlateauState(factor=0.1, patience=1, max_reductions=3)
    assert [acc.update(v) for v in (0.5, 0.6, 0.55, 0.58)] == [False, False, False, True]
    # a checkpoint from before the rule had a mode resumes as it ran: on accuracy
    restored = PlateauState(mode="min")
    restored.load_state_dict(
        {"factor": 0.1, "patience": 3, "max_reductions": 3, "best": 0.7, "bad_epochs": 1, "reductions": 0}
    )
    assert restored.mode == "max"


def test_max_steps_and_time_budget_exclude_each_other():
    with pytest.raises(ConfigError, match="--max-steps and --time-budget"):
        TrainConfig(max_steps=10, time_budget_s=5.0)
    with pytest.raises(ConfigError, match="--max-steps 0"):
        TrainConfig(max_steps=0)


@pytest.mark.slow
def test_mnist_study_dry_run_shows_the_seed_recipe(isolated_cache):
    proc = run_cli("run", "--preset", "mnist-study", "--dry-run", "--json")
    plan = json.loads(proc.stdout)
    assert len(plan["runs"]) == 10 * 2 * 3
    cfg = plan["runs"][0]["config"]
    expected = {
        "batch_size": 64,
        "lr": 1e-3,
        "optimizer": "adamw",
        "weight_decay": 1e-4,
        "drop_rate": 0.5,
        "warmup_epochs": 5,
        "warmup_start_lr": 1e-6,
        "min_lr": 1e-6,
        "plateau_factor": 0.1,
        "plateau_patience": 3,
        "monitor": "val_loss",
        "patience": 7,
        "epochs": 50,
        "val_fraction": 0.2,
        "target_accuracy": 0.99,
    }
    assert {k: cfg[k] for k in expected} == expected
    assert {r["config"]["schedule"] for r in plan["runs"]} == {"cosine", "plateau"}
    assert plan["recipe_hashes"] == [recipe_hash(cfg)]  # one recipe for all 60 runs
    assert any("disjoint" in d for d in plan["deviations"])
    fast = json.loads(run_cli("run", "--preset", "mnist-study-fast", "--dry-run", "--json").stdout)
    assert fast["runs"][0]["config"]["batch_size"] == 512
    assert any("Batch 512" in d for d in fast["deviations"])


@pytest.mark.slow
def test_quick_dry_run_shows_the_tuned_train_to_target_recipe_and_narrowing_keeps_it(isolated_cache):
    from cnnbench.study.presets import QUICK_CAP, QUICK_LR_FIND_STEPS, QUICK_VAL_EVERY, QUICK_WARMUP_EPOCHS

    plan = json.loads(run_cli("run", "--preset", "quick", "--data", "mnist-sample", "--dry-run", "--json").stdout)
    assert len(plan["runs"]) == 10 and plan["recipe_hashes"] == [recipe_hash(plan["runs"][0]["config"])]
    cfg = plan["runs"][0]["config"]
    expected = {
        "lr": "auto",
        "lr_find_steps": QUICK_LR_FIND_STEPS,
        "schedule": "cosine",
        "warmup_epochs": QUICK_WARMUP_EPOCHS,
        "max_steps": QUICK_CAP,
        "val_every_steps": QUICK_VAL_EVERY,
        "stop_at_target": True,
        "target_accuracy": 0.95,
        "batch_size": 64,
        "drop_rate": 0.0,
        "augment": "none",
    }
    assert {k: cfg[k] for k in expected} == expected
    assert any("range test" in d for d in plan["deviations"])
    # any flag without --preset narrows the default study (on a CPU: quick), never drops it
    narrowed = json.loads(run_cli("run", "--models", "lenet5,squeezenet1_1", "--dry-run", "--json").stdout)
    assert narrowed["preset"] == "quick" and [r["config"]["model"] for r in narrowed["runs"]] == [
        "lenet5",
        "squeezenet1_1",
    ]
    assert {k: narrowed["runs"][0]["config"][k] for k in expected} == expected
    # --preset none: train's defaults, one schedule
    plain = json.loads(run_cli("run", "--preset", "none", "--models", "lenet5", "--dry-run", "--json").stdout)
    assert plain["preset"] is None and plain["runs"][0]["config"]["max_steps"] is None
    assert plain["runs"][0]["config"]["schedule"] == "onecycle" and plain["runs"][0]["config"]["lr"] == "auto"


@pytest.mark.slow
def test_report_of_two_studies_with_different_lr_shows_two_rows(tmp_path, isolated_cache):
    a, b, merged = tmp_path / "a", tmp_path / "b", tmp_path / "merged"
    run_cli("run", *TINY_RUN, "--lr", "1e-3", "--out", str(a))
    run_cli("run", *TINY_RUN, "--lr", "5e-3", "--out", str(b))
    run_cli("report", str(a), str(b), "--out", str(merged))
    rows = [r for r in _rows(merged / "aggregate.csv") if r["model"] == "lenet5"]
    assert len(rows) == 2
    assert len({r["recipe_hash"] for r in rows}) == 2
    assert sorted(r["recipe"] for r in rows) == ["a; lr=0.001", "b; lr=0.005"]
    assert all(r["ok"] == "1" and r["seeds"] == "0" for r in rows)
    results = _rows(merged / "results.csv")
    assert len(results) == 2 and len({r["run_id"] for r in results}) == 1  # same run id, two recipes
    markdown = (merged / "report.md").read_text()
    assert "lenet5 [a; lr=0.001]" in markdown and "lenet5 [b; lr=0.005]" in markdown


@pytest.mark.slow
def test_duplicated_seed_is_flagged_and_counted_once(tmp_path, isolated_cache):
    runs = tmp_path / "runs"
    common = [
        "--data",
        "synthetic",
        "--model",
        "lenet5",
        "--epochs",
        "1",
        "--max-train-samples",
        "256",
        "--batch-size",
        "64",
        "--no-progress",
        "--seed",
        "0",
    ]
    run_cli("train", *common, "--out", str(runs / "first"))
    run_cli("train", *common, "--out", str(runs / "again"))
    run_cli("report", str(runs), "--out", str(tmp_path / "report"))
    (row,) = _rows(tmp_path / "report" / "aggregate.csv")
    assert row["runs"] == "2" and row["ok"] == "1" and row["seeds"] == "0"
    assert row["duplicates"] == "first"  # "again" sorts first and is counted; "first" repeats its seed
    assert "same recipe and the same seed" in (tmp_path / "report" / "report.md").read_text()


BUSY = "import time\nend = time.time() + 120\nwhile time.time() < end:\n    pass\n"


@pytest.mark.slow
def test_default_preset_gives_equal_accuracies_on_a_busy_machine(tmp_path, isolated_cache):
    """Fixed work: the same study, once quiet and once beside two CPU-bound processes, ends equal."""
    args = [
        "run",
        "--preset",
        "quick",
        "--models",
        "lenet5",
        "--schedules",
        "cosine,plateau",
        "--max-steps",
        "40",
        "--deterministic",
        "--no-embed",
        "--no-speed",
    ]
    run_cli(*args, "--out", str(tmp_path / "quiet"))
    busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(2)]
    try:
        run_cli(*args, "--out", str(tmp_path / "busy"))
    finally:
        for p in busy:
            p.kill()
            p.wait()
    quiet = {r["run_id"]: r for r in _rows(tmp_path / "quiet" / "results.csv")}
    loaded = {r["run_id"]: r for r in _rows(tmp_path / "busy" / "results.csv")}
    assert quiet.keys() == loaded.keys() and len(quiet) == 2
    for run_id, row in quiet.items():
        assert row["status"] == "completed"
        assert row["test_accuracy"] == loaded[run_id]["test_accuracy"]  # to the last digit
        assert row["recipe_hash"] == loaded[run_id]["recipe_hash"]
        summary = json.loads((tmp_path / "busy" / "runs" / run_id / "summary.json").read_text())
        assert summary["steps"] == 40


def test_planned_work_follows_the_recipe_not_the_clock():
    from cnnbench.study.estimate import describe, run_work

    quick = run_work("r", TrainConfig(model="resnet18", batch_size=64, max_steps=40), 3600, 400, 1000, 28)
    assert (quick.steps, quick.images, quick.evaluated) == (40, 2560, 400 + 1000)
    full = run_work("r", TrainConfig(model="lenet5", batch_size=64, epochs=3), 3600, 400, 1000, 28)
    assert full.steps == 3 * 57 and full.evaluated == 3 * 400 + 1000
    assert run_work("r", TrainConfig(time_budget_s=6.0), 3600, 400, 1000, 28) is None  # the machine decides
    line = describe([quick, full], cpu=True)
    assert "2 run(s) × 40–171 optimiser steps" in line and "min on a 2-core CPU" in line
    assert "min on" not in describe([quick], cpu=False)
    tiny = run_work("r", TrainConfig(model="lenet5", batch_size=64, max_steps=20), 3600, 400, 1000, 28)
    assert "; under a minute on a 2-core CPU" in describe([tiny], cpu=True)  # not "about 0 min"


def test_a_flag_that_changes_a_preset_value_replaces_the_deviation_that_described_it(tmp_path):
    from cnnbench.study import resolve_spec

    quick = resolve_spec("quick", None, {"data": ["synthetic"]})
    assert any(d.startswith("No augmentation") for d in quick.deviations)
    assert not any(d.startswith("Changed from") for d in quick.deviations)

    changed = resolve_spec("quick", None, {"data": ["synthetic"], "recipe": {"augment": "digits", "lr": "auto"}})
    assert not any(d.startswith("No augmentation") for d in changed.deviations)  # it would be false now
    assert any(d.startswith("Each model trains until") for d in changed.deviations)  # untouched ones stay
    # lr was given but equals the preset's value: not a change
    assert [d for d in changed.deviations if d.startswith("Changed from")] == [
        "Changed from the quick preset by a study file or flags: augment 'none' → 'digits'."
    ]
    # a study.yaml written by that study and read back with its preset: the line is not repeated
    import yaml

    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({"preset": "quick", **changed.to_dict()}))
    again = resolve_spec(None, path, {})
    assert sum(d.startswith("Changed from") for d in again.deviations) == 1


@pytest.mark.slow
def test_a_tuned_train_to_target_study_is_ranked_by_cost_and_shows_its_tuning(tmp_path, isolated_cache):
    """The quick preset's procedure on two models: the report ranks by images to the target, shows each
    pick and range-test curve, and stars no column whose values are all equal."""
    out = tmp_path / "study"
    proc = run_cli(
        "run", "--preset", "quick", "--data", "synthetic", "--models", "squeezenet1_1,lenet5",
        "--max-train-samples", "640", "--lr-find-steps", "20", "--max-steps", "80", "--val-every-steps", "5",
        "--no-embed", "--no-speed", "--out", str(out),
    )  # fmt: skip
    rows = {r["model"]: r for r in _rows(out / "results.csv")}
    for row in rows.values():  # the progress line says where a run met its target, not only "early_stopped"
        if row["steps_to_target"]:
            assert f"{row['run_id']}: reached 90% validation accuracy at step {row['steps_to_target']}" in proc.stderr
    assert set(rows) == {"lenet5", "squeezenet1_1"}
    for row in rows.values():
        assert row["status"] in ("early_stopped", "completed")
    reached = {m: int(r["images_to_target"]) for m, r in rows.items() if r["images_to_target"]}
    assert reached, rows  # at least one model reaches synthetic's 90 % within 80 steps
    assert len(list((out / "lr_find").glob("*.json"))) == 2  # one range test per model, cached in the study
    md = (out / "report.md").read_text()
    table = md.split("## Results", 1)[1].split("\n\n")[2]
    header, _, *body = table.splitlines()
    assert header.split("|")[3].strip().startswith("Images to 90")
    ranked = [line.split("|")[1].strip().replace("\\_", "_") for line in body]
    order = sorted(rows, key=lambda m: (m not in reached, reached.get(m, 0)))
    assert ranked == order
    seeds_col = [line.split("|")[2] for line in body]
    assert all("★" not in c for c in seeds_col)  # "Seeds 1/1" everywhere: equal, so no star
    tuning = md.split("## Tuning", 1)[1].split("\n## ", 1)[0]
    assert "range test of 20 optimiser steps" in tuning and "figures/lr-find.png" in tuning
    study = md.split("## Study", 1)[1].split("\n## ", 1)[0]  # the procedure and its fairness rule, up front
    assert "Procedure, the same for every model of a comparison (its fairness rule" in study
    assert "every run took its learning rate from a range test of 20 optimiser steps" in study
    assert "first reached 90% (validated every 5 steps, at most 80 steps)" in study
    for model in rows:
        summary = json.loads((out / "runs" / rows[model]["run_id"] / "summary.json").read_text())
        assert f"{summary['lr_find']['lr']:.2g}" in tuning
    assert (out / "figures" / "lr-find.png").read_bytes().startswith(b"\x89PNG")
    # a damaged lr_find.csv is said in the report, not silently dropped from the figure
    damaged = out / "runs" / rows["lenet5"]["run_id"] / "lr_find.csv"
    damaged.write_text("\n".join(damaged.read_text().splitlines()[:2]) + "\n")
    run_cli("report", str(out))
    tuning = (out / "report.md").read_text().split("## Tuning", 1)[1].split("\n## ", 1)[0]
    taken = json.loads((damaged.parent / "summary.json").read_text())["lr_find"]["steps_taken"]
    assert f"{damaged} holds 1 readable rows of the {taken} steps" in tuning.replace("\\_", "_")
    # a run that read its range test from the study's cache says so, not "0.0" seconds
    path = out / "runs" / rows["squeezenet1_1"]["run_id"] / "summary.json"
    summary = json.loads(path.read_text())
    summary["lr_find"]["cached"] = True
    path.write_text(json.dumps(summary))
    run_cli("report", str(out))
    tuning = (out / "report.md").read_text().split("## Tuning", 1)[1].split("\n## ", 1)[0]
    (line,) = [ln for ln in tuning.splitlines() if ln.startswith("| squeezenet1\\_1 |")]
    assert line.rstrip(" |").endswith("| cached"), line


@pytest.mark.slow
def test_target_accuracy_flag_wins_over_the_presets_per_dataset_target(isolated_cache):
    """`cnnbench run --models lenet5 --target-accuracy 0.9` ran to the preset's 95 % while study.yaml and
    the report said 0.9: a preset's per-dataset target now yields to the flag, as every other value does."""
    from cnnbench.study import resolve_spec

    flags = {"data": ["mnist-sample"], "models": "lenet5"}
    assert resolve_spec("quick", None, flags).run_config("mnist-sample", "lenet5", "cosine", 0).target_accuracy == 0.95
    given = resolve_spec("quick", None, {**flags, "recipe": {"target_accuracy": 0.9}})
    assert given.run_config("mnist-sample", "lenet5", "cosine", 0).target_accuracy == 0.9
    plan = json.loads(run_cli("run", "--models", "lenet5", "--target-accuracy", "90", "--dry-run", "--json").stdout)
    assert plan["runs"][0]["config"]["target_accuracy"] == 0.9
    # an impossible target is refused by its flag, alone, not after the default study's data paragraph
    bad = run_cli("run", "--models", "lenet5", "--target-accuracy", "1.5", "--dry-run", check=False)
    assert bad.returncode == 2 and "--target-accuracy 1.5" in bad.stderr and "MNIST" not in bad.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seeds", "0,x"], "--seeds: '0,x': expected a count ≥ 1"),
        (["--schedules", "cosin"], "--schedules: 'cosin' is not a schedule"),
        (["--embed-max-points", "2"], "--embed-max-points 2: expected a number ≥ 10"),
    ],
)
def test_study_flag_errors_name_the_flag(capsys, tmp_path, monkeypatch, flags, message):
    from cnnbench.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["run", *flags, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and "flags:" not in err and "MNIST" not in err


def test_a_plain_dry_run_states_the_recipe_in_a_line(capsys, tmp_path, monkeypatch):
    from cnnbench.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["run", "--models", "lenet5,squeezenet1_1", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "recipe: batch 64, adamw lr auto (60-step range test), 0.2-epoch warm-up, then cosine, at most 300 " in err
    assert "stops at 95% validation accuracy (checked every 10 steps)" in err and not (tmp_path / "studies").exists()
