"""Reliability, round 2: a study stops when told, a run directory never mixes two runs, bad input is one line."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cnnbench.engine.config import TrainConfig
from cnnbench.engine.trainer import _check_splits
from cnnbench.errors import CnnbenchError, ConfigError, DataError
from cnnbench.rundir.tables import MetricsLog
from cnnbench.study import resolve_spec
from cnnbench.utils.io import atomic_write_text
from conftest import run_cli

TINY_TRAIN = ["--data", "synthetic", "--model", "lenet5", "--epochs", "1", "--max-train-samples", "256",
              "--batch-size", "64", "--no-progress"]  # fmt: skip


def _study_file(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "study.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


# ------------------------------------------------------------------------------------ run directories
@pytest.mark.slow
def test_train_into_a_directory_holding_another_run_is_refused_then_overwrite_moves_it_aside(tmp_path, isolated_cache):
    out = tmp_path / "runs" / "r"
    run_cli("train", *TINY_TRAIN, "--out", str(out))
    before = (out / "summary.json").read_bytes()
    proc = run_cli("train", *TINY_TRAIN, "--lr", "0.5", "--seed", "7", "--out", str(out), check=False)
    assert proc.returncode == 2
    assert f"--out {out} already holds a run of lenet5 (seed 0) with another recipe" in proc.stderr
    assert "--resume" in proc.stderr and "--overwrite" in proc.stderr and "Traceback" not in proc.stderr
    assert (out / "summary.json").read_bytes() == before  # nothing of the old run touched
    # another model cannot continue the run's checkpoint
    proc = run_cli("train", *TINY_TRAIN, "--model", "resnet18", "--resume", str(out), check=False)
    assert proc.returncode == 2 and "that run has model 'lenet5', not 'resnet18'" in proc.stderr
    run_cli("train", *TINY_TRAIN, "--seed", "7", "--out", str(out), "--overwrite")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 7 and summary["status"] == "completed"
    (moved,) = (tmp_path / "runs" / ".replaced").iterdir()
    assert (moved / "summary.json").read_bytes() == before
    assert any("--overwrite" in n for n in summary["notes"])


@pytest.mark.slow
def test_an_unknown_model_fails_before_any_directory_is_made(tmp_path, isolated_cache):
    out = tmp_path / "never"
    proc = run_cli("train", "--data", "synthetic", "--model", "resnet181", "--out", str(out), check=False)
    assert proc.returncode == 2 and "unknown model 'resnet181'" in proc.stderr
    assert not out.exists()


def test_an_empty_split_is_an_error_and_missing_classes_a_warning():
    class Split:
        def __init__(self, labels):
            self.labels = np.asarray(labels)

        def __len__(self):
            return len(self.labels)

    cfg = TrainConfig(data="imagefolder:/x", batch_size=4)
    ds = SimpleNamespace(train=Split([]), val=Split([0, 1]), test=Split([0, 1]), num_classes=2)
    with pytest.raises(DataError, match="the train split has no images"):
        _check_splits(ds, cfg)
    ds = SimpleNamespace(train=Split([0, 0, 0, 0, 0]), val=Split([0, 1]), test=Split([0, 1]), num_classes=2)
    (note,) = _check_splits(ds, cfg)
    assert "the train split holds 1 of 2 classes" in note
    big = _check_splits(SimpleNamespace(train=Split([0, 1]), val=Split([0, 1]), test=Split([0, 1]), num_classes=2),
                        TrainConfig(batch_size=100_000_000))  # fmt: skip
    assert "larger than the 2 training images" in big[0]


@pytest.mark.slow
def test_resume_of_a_finished_run_writes_nothing_unless_it_extends_it(tmp_path, isolated_cache):
    """`train --resume` on a run stopped at its target trained on past it and replaced its result."""
    out = tmp_path / "r"
    stop = ["--val-every-steps", "2", "--stop-at-target", "--target-accuracy", "0.05"]  # met at the first pass
    run_cli("train", *TINY_TRAIN, *stop, "--out", str(out))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert json.loads(before[out / "summary.json"])["status"] == "early_stopped"
    proc = run_cli("train", "--resume", str(out))
    assert "already finished (early_stopped" in proc.stderr and "nothing written" in proc.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    # a new target would count its steps from the resume: refused, as other fixed values are
    proc = run_cli("train", "--resume", str(out), "--target-accuracy", "0.5", check=False)
    assert proc.returncode == 2 and "--target-accuracy 0.5 cannot change a run in progress" in proc.stderr
    # nothing to continue: refused, not a new run started under --resume
    proc = run_cli("train", *TINY_TRAIN, "--resume", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "does not exist, so there is no run to continue" in proc.stderr
    assert not (tmp_path / "runs").exists()
    # a damaged config.yaml is named, not a flag nobody typed
    config = out / "config.yaml"
    config.write_text(re.sub(r"(?m)^lr: .*$", "lr: aut", config.read_text()))
    proc = run_cli("train", "--resume", str(out), check=False)
    assert proc.returncode == 2 and f"{config}: lr 'aut': expected a number" in proc.stderr, proc.stderr


@pytest.mark.slow
def test_resume_refuses_a_flag_that_the_checkpoint_already_fixed(tmp_path, isolated_cache):
    """--resume with another --lr was accepted: config.yaml then named an lr the run never trained with."""
    out = tmp_path / "r"
    args = ["train", *TINY_TRAIN, "--lr", "auto", "--lr-find-steps", "20", "--out", str(out)]
    run_cli(*args)
    for flag, value in (("--lr", "0.05"), ("--lr-find-steps", "30"), ("--batch-size", "32")):
        proc = run_cli("train", "--resume", str(out), flag, value, check=False)
        assert proc.returncode == 2 and f"{flag} " in proc.stderr and "cannot change a run in progress" in proc.stderr
    before = (out / "config.yaml").read_text()
    assert run_cli("train", "--resume", str(out), "--lr", "Auto").returncode == 0  # the same value, spelt another way
    assert run_cli("train", "--resume", str(out), "--epochs", "2").returncode == 0  # more work is a legitimate change
    assert "lr_find_steps: 20" in before and "lr_find_steps: 20" in (out / "config.yaml").read_text()


def test_metrics_csv_with_a_garbage_row_resumes_from_the_rows_that_parse(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,train_loss,val_acc\n1,0.5,0.9\n#garbage!!,x\n2,0.4,0.95\n3,0.3,0.96\n")
    log = MetricsLog.resume(path, upto_epoch=2)
    assert [r["epoch"] for r in log.rows] == [1, 2] and log.skipped_rows == 1


# ------------------------------------------------------------------------------------ study files
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: ../../../x\n", "name: '../../../x': expected one directory name"),
        ("name: /abs/path\n", "name: '/abs/path': expected one directory name"),
        ("name: 123\n", "name: 123: expected text"),
        ("recipe: {lr: fast}\n", "recipe: lr 'fast': expected a number"),
        ("recipe: {epochs: 2.5}\n", "recipe: epochs 2.5: expected a whole number"),
        # a value out of range is named as the file's key, not as a flag nobody typed
        ("recipe: {val_fraction: 2}\n", "study.yaml: recipe: val_fraction 2: expected a number ≥ 0 and < 1"),
        ("recipe: {time_budget_s: -5}\n", "recipe: time_budget_s -5"),
        ("targets: [1, 2]\n", "targets: expected a mapping of dataset to accuracy"),
        ("model_recipes: {lenet5: [1]}\n", "model_recipes.lenet5: expected a mapping of training options"),
        # a typo in a model name was accepted and its override silently never applied
        ("model_recipes: {nosuchnet: {lr: 0.1}}\n", "model_recipes.nosuchnet: unknown model 'nosuchnet'"),
        ("targets: {synthetic: 1.5}\n", "targets.synthetic 1.5: ambiguous"),
        ("embed_max_points: lots\n", "embed_max_points 'lots': expected a whole number"),
        ("seeds: [-1]\n", "seeds: [-1]: expected a count"),
        ("", "is empty: expected keys such as name, data, models"),
    ],
)
def test_bad_study_files_name_the_key_and_the_type(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        resolve_spec(None, _study_file(tmp_path, text), {})
    assert message in str(err.value)


def test_a_study_file_may_say_preset_none_and_a_bad_preset_names_the_file(tmp_path):
    spec = resolve_spec(None, _study_file(tmp_path, "preset: none\nmodels: [lenet5]\n"), {})
    assert spec.models == ["lenet5"] and spec.preset in (None, "", "none")  # no preset's values
    path = _study_file(tmp_path, "preset: quik\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: preset 'quik': expected one of")):
        resolve_spec(None, path, {})


def test_a_model_recipe_under_an_alias_applies_to_the_model(tmp_path):
    spec = resolve_spec(None, _study_file(tmp_path, "models: [lenet5]\nmodel_recipes: {lenet: {lr: 0.1}}\n"), {})
    assert spec.model_recipes == {"lenet5": {"lr": 0.1}}


def test_a_non_utf8_study_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        resolve_spec(None, _study_file(tmp_path, b"name: caf\xe9\n"), {})


def test_numeric_strings_are_numbers_and_repeats_are_run_once(tmp_path):
    path = _study_file(tmp_path, "recipe: {lr: 1e-3, epochs: '2'}\nseeds: [1, 1]\nschedules: [cosine, cosine]\n")
    spec = resolve_spec(None, path, {})
    cfg = spec.run_config("synthetic", "lenet5", "cosine", 1)
    assert cfg.lr == 1e-3 and cfg.epochs == 2
    assert spec.seeds == [1] and spec.schedules == ["cosine"]
    assert any("seeds: 1 listed more than once" in n for n in spec.notes)


@pytest.mark.slow
def test_a_negative_seed_is_refused_by_train_and_run_alike(tmp_path, isolated_cache):
    with pytest.raises(ConfigError, match="--seed -1: expected a whole number ≥ 0"):
        TrainConfig(seed=-1)
    proc = run_cli("run", "--data", "synthetic", "--models", "lenet5", "--seeds", "-1", "--dry-run", check=False)
    assert proc.returncode == 2 and "seeds" in proc.stderr


def test_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644


# ------------------------------------------------------------------------------------ signals
def _wait_for(predicate, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT])  # Ctrl-C; SIGTERM to a study: the two-workers test below
def test_a_signal_stops_the_whole_study_and_the_same_command_resumes(tmp_path, isolated_cache, sig):
    out = tmp_path / "study"
    args = ["run", "--preset", "none", "--data", "synthetic", "--models", "lenet5", "--schedules", "cosine,plateau",
            "--epochs", "25",
            "--batch-size", "32", "--max-train-samples", "512", "--no-embed", "--no-speed",
            "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "cnnbench", *args], env=env, stderr=subprocess.PIPE, text=True)
    first = out / "runs" / "synthetic__lenet5__cosine__s0"
    assert _wait_for(lambda: (first / "metrics.csv").exists(), 120), "the first run never finished an epoch"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)  # a hang fails here; "stopped, not finished" is checked below
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130), stderr
    assert f"study stopped by {signal.Signals(sig).name}" in stderr
    summary = json.loads((first / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["error"].endswith("run the same command to resume")
    assert not (out / "runs" / "synthetic__lenet5__plateau__s0").exists()  # no new run started
    assert not (out / ".lock").exists()
    with (out / "results.csv").open() as f:
        assert [r["status"] for r in csv.DictReader(f)] == ["interrupted", "missing"]  # the other: not started
    # the same command resumes: the interrupted run continues from its checkpoint, the other one starts
    run_cli(*args, timeout=600)
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["completed", "completed"]
    with (first / "metrics.csv").open() as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == list(range(1, 26))  # each epoch once


# ------------------------------------------------------------------------------------ data files
def test_dangling_and_looping_symlinks_are_listed_as_skips(tmp_path, isolated_cache):
    from PIL import Image

    from cnnbench.data import DataConfig, load_dataset

    root = tmp_path / "tree"
    for c in ("a", "b"):
        for i in range(4):
            (root / c).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (20, 20), (i * 40, 10, 200)).save(root / c / f"{i}.png")
    (root / "a" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (root / "b" / "loop.png").symlink_to(root / "b" / "loop.png")
    ds = load_dataset(
        DataConfig(f"imagefolder:{root}", image_size=16, max_skip_fraction=0.5, val_fraction=0.0, split_ratio=0.5)
    )
    assert {Path(s["path"]).name for s in ds.skipped} == {"gone.png", "loop.png"}
    assert len(ds.train) + len(ds.test) == 8


def test_an_image_of_too_many_pixels_is_skipped_before_it_is_decoded(tmp_path):
    from PIL import Image

    from cnnbench.data.decode import MAX_PIXELS, decode_image

    side = int(MAX_PIXELS**0.5) + 100
    path = tmp_path / "huge.png"
    Image.new("I;16", (side, side), 0).save(path)  # compresses to a few hundred KB
    assert path.stat().st_size < 5 * 2**20
    reason = decode_image(str(path), 16)
    assert isinstance(reason, str) and "megapixel limit" in reason


@pytest.mark.slow
def test_a_read_only_cache_is_one_line_naming_it(tmp_path):
    """CNNBENCH_CACHE on a read-only mount (a real bind mount, remounted read-only)."""
    from PIL import Image

    tree = tmp_path / "tree"
    for c in ("a", "b"):
        (tree / c).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (20, 20), (i * 40, 10, 200)).save(tree / c / f"{i}.png")
    cache = tmp_path / "ro-cache"
    cache.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(cache), str(cache)], capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("needs root to bind-mount a read-only directory (CI and the dev machines run as root)")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(cache)], check=True, capture_output=True)
        proc = run_cli("data", "info", f"imagefolder:{tree}", env={"CNNBENCH_CACHE": str(cache)}, check=False)
    finally:
        subprocess.run(["umount", str(cache)], capture_output=True)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "read-only" in proc.stderr and str(cache) in proc.stderr


def test_the_torch_writer_failing_on_a_full_disk_is_said_plainly(tmp_path, monkeypatch):
    import torch

    from cnnbench import checkpoints as ckpt_mod
    from cnnbench.errors import OutputError

    def full(obj, f, *a, **k):
        f.write(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4096 vs 4032")

    monkeypatch.setattr(ckpt_mod.torch, "save", full)
    monkeypatch.setattr("shutil.disk_usage", lambda p: SimpleNamespace(total=1, used=1, free=0))
    # the first last.pt: there is no previous version to keep, and the message does not claim one
    with pytest.raises(OutputError, match=r"last\.pt: the disk is full$"):
        ckpt_mod.save_checkpoint(tmp_path, "last", {"model": {"w": torch.ones(1)}})
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------------ command output
@pytest.mark.slow
def test_a_run_that_diverges_in_its_first_epoch_says_so_on_stderr_and_exits_3(tmp_path, isolated_cache):
    out = tmp_path / "r"
    proc = run_cli("train", *TINY_TRAIN, "--lr", "inf", "--out", str(out), check=False)
    assert proc.returncode == 2 and "--lr inf: expected a finite number" in proc.stderr
    proc = run_cli("train", *TINY_TRAIN, "--lr", "1e30", "--out", str(out), "--json", check=False)
    assert proc.returncode == 3, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "diverged"
    assert "no checkpoint exists (it diverged in its first epoch)" in summary["error"]
    assert "lenet5: diverged: " in proc.stderr and "NaN/Inf" in proc.stderr and str(out) in proc.stderr
    # one step whose update leaves non-finite weights: the finite training loss hid it, validation does not
    one = tmp_path / "one"
    args = ["--max-train-samples", "64", "--max-steps", "1", "--lr", "1e30", "--out", str(one), "--json"]
    proc = run_cli("train", *TINY_TRAIN, *args, check=False)
    assert proc.returncode == 3 and "validation loss is NaN/Inf after step 1" in json.loads(proc.stdout)["error"]


@pytest.mark.slow
def test_eval_and_summary_refuse_empty_or_zero_values(tmp_path):
    proc = run_cli("summary", "lenet5", "--input", "", check=False)
    assert proc.returncode == 2 and "--input ''" in proc.stderr
    proc = run_cli("eval", str(tmp_path), "--batch-size", "0", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--lr-find-steps", "abc"], "argument --lr-find-steps: expected a whole number, got 'abc'"),
        (["train", "--lr-find-step", "3"], "--lr-find-step: did you mean --lr-find-steps?"),
        (["trian"], "invalid choice: 'trian'"),
    ],
)
def test_a_flag_argparse_refuses_is_a_short_error_without_the_usage_dump(args, message):
    proc = run_cli(*args, check=False)
    assert proc.returncode == 2 and message in proc.stderr and "--help" in proc.stderr
    assert "usage:" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2  # it was ~50 lines


@pytest.mark.slow
def test_bare_cnnbench_prints_help_and_starts_nothing(tmp_path):
    proc = run_cli(cwd=tmp_path)
    assert "usage: cnnbench" in proc.stdout and not (tmp_path / "studies").exists()


@pytest.mark.slow
def test_study_workers_die_with_a_killed_study(tmp_path, isolated_cache):
    out = tmp_path / "study"
    args = ["run", "--preset", "none", "--data", "synthetic", "--models", "lenet5", "--schedules", "cosine,plateau",
            "--epochs", "40",
            "--batch-size", "32", "--max-train-samples", "512", "--no-embed", "--no-speed", "--workers", "2",
            "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "cnnbench", *args], stderr=subprocess.DEVNULL)
    runs = out / "runs"
    assert _wait_for(lambda: len(list(runs.glob("*/metrics.csv"))) == 2, 180), "the workers never started training"
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert children
    proc.kill()
    proc.wait()

    def all_gone() -> bool:
        return not any(Path(f"/proc/{pid}").exists() and "Z" not in _state(pid) for pid in children)

    assert _wait_for(all_gone, 30), "worker processes kept running after their study was killed"


def _state(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return "Z"


@pytest.mark.slow
def test_train_without_a_terminal_prints_a_line_per_epoch(tmp_path, isolated_cache):
    proc = run_cli("train", *TINY_TRAIN, "--epochs", "3", "--out", str(tmp_path / "r"))  # stderr is a pipe here
    epochs = [line for line in proc.stderr.splitlines() if line.startswith("lenet5 epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["lenet5 epoch 1", "lenet5 epoch 2", "lenet5 epoch 3"]
    assert all("val loss" in line and "[" not in line for line in epochs)  # plain text, no rich markup
    final = [line for line in proc.stderr.splitlines() if line.startswith("lenet5: test accuracy")]
    assert len(final) == 1 and final[0].rstrip().endswith(str(tmp_path / "r"))  # one whole line, not folded


@pytest.mark.slow
@pytest.mark.parametrize("size_kb", [64, 400, 700, 1200])
def test_a_full_disk_at_any_fill_level_is_one_line(tmp_path, isolated_cache, size_kb):
    """`train --out` on a small real tmpfs: whichever write finds it full (config, metrics, a checkpoint
    through torch's zip writer, the summary), the message says the disk is full — never torch's
    "[enforce fail at inline_container.cc] unexpected pos"."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "cnnbench-full", str(disk)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN, as CI and the dev machines have)")
    try:
        proc = run_cli("train", *TINY_TRAIN, "--epochs", "3", "--out", str(disk / "run"), check=False)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
    assert "Traceback" not in proc.stderr and "enforce fail" not in proc.stderr, proc.stderr
    assert proc.returncode == 2 and "the disk is full" in proc.stderr, proc.stderr  # 3 epochs never fit


@pytest.mark.slow
def test_sigterm_to_a_study_with_two_workers_stops_both_and_they_exit(tmp_path, isolated_cache):
    out = tmp_path / "study"
    args = ["run", "--preset", "none", "--data", "synthetic", "--models", "lenet5", "--schedules", "cosine,plateau",
            "--epochs", "40",
            "--batch-size", "32", "--max-train-samples", "512", "--no-embed", "--no-speed", "--workers", "2",
            "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "cnnbench", *args], stderr=subprocess.PIPE, text=True)
    runs = out / "runs"
    assert _wait_for(lambda: len(list(runs.glob("*/metrics.csv"))) == 2, 180), "the workers never started training"
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "study stopped by SIGTERM" in stderr
    # a study resumes by the same command, not by train's --resume: on the console, and in the runs'
    # summaries (the report and results.csv show their errors)
    assert "run the same command to resume" in stderr and "--resume" not in stderr, stderr
    summaries = [json.loads((d / "summary.json").read_text()) for d in sorted(runs.iterdir())]
    assert [s["status"] for s in summaries] == ["interrupted", "interrupted"]  # each worker checkpointed its run
    assert all(s["error"].endswith("; run the same command to resume") for s in summaries), summaries
    assert not any("--resume" in s["error"] for s in summaries)
    assert not (out / ".lock").exists()
    assert _wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), 30)


@pytest.mark.slow
def test_a_second_ctrl_c_stops_at_once(tmp_path, isolated_cache):
    out = tmp_path / "study"
    args = ["run", "--preset", "none", "--data", "synthetic", "--models", "lenet5", "--schedules", "cosine",
            "--epochs", "40",
            "--batch-size", "32", "--max-train-samples", "512", "--no-embed", "--no-speed",
            "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "cnnbench", *args], stderr=subprocess.PIPE, text=True)
    assert _wait_for(lambda: (out / "runs" / "synthetic__lenet5__cosine__s0" / "metrics.csv").exists(), 120)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and not (out / ".lock").exists()


def test_a_path_of_the_wrong_kind_is_named_as_such_not_as_missing(tmp_path):
    from cnnbench.checkpoints import open_run
    from cnnbench.report import collect
    from cnnbench.study.spec import load_study_file

    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(CnnbenchError, match="notes.txt is a file, not a run directory"):
        open_run(a_file)
    with pytest.raises(CnnbenchError, match="notes.txt is a file, not a directory"):
        collect(a_file)
    with pytest.raises(ConfigError, match=f"study file {tmp_path} is a directory, not a YAML file"):
        load_study_file(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: lenet5\ndata: mnist\nepochs: 3\n")  # cut off before model_args
    with pytest.raises(CnnbenchError, match="has no model_args section: it is truncated or damaged"):
        open_run(run)


@pytest.mark.slow
def test_a_file_as_out_is_refused_by_the_dry_run_as_by_the_run(tmp_path, isolated_cache):
    from cnnbench.utils.io import check_dir_path, check_writable_dir

    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    message = f"--out {a_file}: is a file, not a directory"  # was "cannot write there (File exists)", run only
    for check in (check_dir_path, check_writable_dir):
        with pytest.raises(CnnbenchError) as err:
            check(a_file)
        assert str(err.value) == message
    with pytest.raises(CnnbenchError) as err:
        check_dir_path(a_file / "study")
    assert str(err.value) == f"--out {a_file / 'study'}: {a_file} is a file, not a directory"
    study = [
        "run",
        "--preset",
        "none",
        "--data",
        "synthetic",
        "--models",
        "lenet5",
        "--no-embed",
        "--no-speed",
        "--out",
        str(a_file),
    ]
    for args in ([*study, "--dry-run"], study, [*TINY_TRAIN, "--dry-run", "--out", str(a_file)]):
        proc = run_cli(*(args if args[0] == "run" else ["train", *args]), check=False)
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr
    assert a_file.read_text() == "x"
    check_dir_path(tmp_path / "new" / "study")  # a directory still to make: fine, and nothing is made
    assert not (tmp_path / "new").exists()


def test_data_info_names_its_argument_not_a_flag(capsys):
    from cnnbench.cli import main

    assert main(["data", "info", "mnist-sampel"]) == 2
    err = capsys.readouterr().err
    assert "NAME 'mnist-sampel': unknown dataset (did you mean mnist-sample?)" in err and "--data" not in err
