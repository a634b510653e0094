"""Fault injection and bad input, end to end: nothing already written is lost.

Cases proven elsewhere are listed in docs/reliability.md with the test that proves them; this file
holds the ones that cross layers (engine + study + report) or need a real process to die.
"""

from __future__ import annotations

import csv
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnbench.checkpoints import load_checkpoint
from cnnbench.engine import TrainConfig, fit
from cnnbench.errors import OutputError
from cnnbench.utils import io as cio
from conftest import run_cli

SYNTH = {"data": "synthetic", "model": "lenet5", "batch_size": 64, "lr": 3e-3, "progress": False}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_full_disk_never_leaves_a_half_written_summary(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    cio.atomic_write_json(target, {"status": "completed", "test_accuracy": 0.9})
    real_fsync = os.fsync

    def fsync_enospc(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cio.os, "fsync", fsync_enospc)
    with pytest.raises(
        OutputError, match=r"cannot write .*summary\.json: the disk is full; the previous version is kept"
    ):
        cio.atomic_write_json(target, {"status": "completed", "test_accuracy": 0.95})
    monkeypatch.setattr(cio.os, "fsync", real_fsync)
    assert json.loads(target.read_text())["test_accuracy"] == 0.9  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temp file left behind


def test_a_failed_write_says_the_previous_version_is_kept_only_when_there_was_one(tmp_path, monkeypatch):
    def fsync_enospc(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(cio.os, "fsync", fsync_enospc)
        with pytest.raises(OutputError) as err:
            cio.atomic_write_json(tmp_path / "new.json", {"a": 1})
    assert str(err.value) == f"cannot write {tmp_path / 'new.json'}: the disk is full"
    assert list(tmp_path.iterdir()) == []  # no temp file left behind
    (tmp_path / "figs").mkdir()
    with pytest.raises(OutputError) as err:  # a directory where the file goes: nothing was there to keep
        cio.atomic_write_bytes(tmp_path / "figs", b"png")
    assert str(err.value) == f"cannot write {tmp_path / 'figs'}: it is a directory, not a file"


@pytest.mark.slow
def test_full_disk_during_training_stops_with_a_clear_error_and_keeps_the_last_checkpoint(
    tmp_path, isolated_cache, monkeypatch
):
    import cnnbench.checkpoints as ckpt_mod

    calls = {"n": 0}
    real_save = ckpt_mod.atomic_save

    def save_then_disk_full(path, write):
        calls["n"] += 1
        if calls["n"] > 2:  # epoch 1's `best` and `last` succeed; epoch 2's first save finds the disk full
            raise OutputError(f"cannot write {path}: the disk is full; the previous version is kept")
        return real_save(path, write)

    monkeypatch.setattr(ckpt_mod, "atomic_save", save_then_disk_full)
    cfg = TrainConfig(**{**SYNTH, "epochs": 3, "max_train_samples": 256})
    with pytest.raises(OutputError, match="the disk is full"):
        fit(cfg, tmp_path / "run", quiet=True)
    monkeypatch.undo()
    last = torch.load(tmp_path / "run/checkpoint/last.pt", weights_only=True)
    assert last["epoch"] == 1  # the last good one is loadable
    assert not list((tmp_path / "run" / "checkpoint").glob("*.tmp"))


@pytest.fixture
def read_only_dir(tmp_path):
    """A directory the kernel refuses writes to: a read-only tmpfs as root (root ignores a 0555 mode),
    a 0555 directory otherwise."""
    path = tmp_path / "readonly"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "cnnbench-ro", str(path)], capture_output=True
        ).returncode
        == 0
    )
    if not mounted:
        pytest.skip("cannot mount a read-only tmpfs here (root in a container without CAP_SYS_ADMIN)")
    yield path
    subprocess.run(["umount", str(path)], capture_output=True)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "run"])
def test_read_only_output_directory_is_a_clear_error_before_any_work(read_only_dir, isolated_cache, command):
    out = read_only_dir / "out"
    args = ["--data", "synthetic", "--out", str(out)] + (["--models", "lenet5"] if command == "run" else [])
    proc = run_cli(command, *args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert f"--out {out}: cannot write there (the file system is read-only)" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


@pytest.mark.slow
def test_corrupted_last_checkpoint_resume_falls_back_to_the_previous_one(tmp_path, isolated_cache):
    out = tmp_path / "run"
    args = [
        "train",
        "--data",
        "mnist-sample",
        "--model",
        "lenet5",
        "--batch-size",
        "16",
        "--lr",
        "3e-3",
        "--deterministic",
        "--no-progress",
        "--out",
        str(out),
        "--epochs",
        "3",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnbench", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    deadline = time.time() + 120
    while not ((out / "metrics.csv").exists() and len(_rows(out / "metrics.csv")) >= 1):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)  # saves `last` inside a later epoch; the one before becomes last.prev.pt
    assert proc.wait(timeout=60) == 143  # 128 + SIGTERM
    last = out / "checkpoint" / "last.pt"
    assert (out / "checkpoint" / "last.prev.pt").is_file()
    # how far the machine got in 0.5 s varies (epoch 1 or 2 on a 2-core CI machine): the fallback must
    # resume from exactly what last.prev.pt holds
    previous = load_checkpoint(out / "checkpoint" / "last.prev.pt")["epoch"]
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 3])  # a copy cut short
    proc = run_cli(*args, "--resume", "--json")
    summary = json.loads(proc.stdout)
    assert summary["status"] == "completed" and summary["epochs_run"] == 3
    notes = " ".join(summary["notes"])
    assert f"{last} could not be loaded" in notes and f"resumed after epoch {previous} " in notes
    assert f"{last} could not be loaded" in proc.stderr  # said when it happens, not only in summary.json
    assert [int(r["epoch"]) for r in _rows(out / "metrics.csv")] == [1, 2, 3]


@pytest.mark.slow
def test_evaluating_a_corrupted_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    proc = run_cli("eval", str(bad), check=False)
    assert proc.returncode == 2 and f"checkpoint {bad} is damaged or truncated" in proc.stderr
    assert "Traceback" not in proc.stderr
    text = tmp_path / "notes.pt"
    text.write_text("hello world, not a checkpoint\n")  # was "damaged or truncated (KeyError: 101)"
    proc = run_cli("eval", str(text), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        f"{text} is not a cnnbench checkpoint: it is not a file written by torch.save; expected a .pt file "
        "written by cnnbench train: a torch.save dict with the keys 'format' ('cnnbench-checkpoint-v1') and 'model'"
    ) in proc.stderr


@pytest.mark.slow
def test_a_diverging_and_a_failing_run_do_not_stop_the_study_and_the_report_shows_them(tmp_path, isolated_cache):
    study = tmp_path / "study.yaml"
    weights = tmp_path / "squeezenet_weights.pth"
    weights.write_bytes(b"\x80\x02 not a checkpoint")  # a damaged weights file: found, but unreadable
    study.write_text(
        "name: faults\n"
        "data: [synthetic]\n"
        "models: [lenet5, mobilenet_v3_small, squeezenet1_1]\n"
        "schedules: [cosine]\n"
        "recipe: {epochs: 2, batch_size: 64, lr: 0.003, max_train_samples: 256}\n"
        "model_recipes:\n"
        "  lenet5: {lr: 1000000.0, optimizer: sgd}\n"  # diverges
        f"  squeezenet1_1: {{pretrained: {weights}}}\n"  # fails when its weights are loaded
        "embed: false\nspeed: false\n"
    )
    out = tmp_path / "out"
    proc = run_cli("run", str(study), "--out", str(out), "--no-progress", check=False)
    assert proc.returncode == 0, proc.stderr
    rows = {r["model"]: r for r in _rows(out / "results.csv")}
    assert rows["lenet5"]["status"] == "diverged" and "NaN/Inf" in rows["lenet5"]["error"]
    assert rows["squeezenet1_1"]["status"] == "failed" and str(weights) in rows["squeezenet1_1"]["error"]
    assert rows["mobilenet_v3_small"]["status"] == "completed"
    html = (out / "report.html").read_text()
    assert "diverged" in html and "NaN/Inf" in html and weights.name in html


@pytest.mark.slow
@pytest.mark.parametrize(
    "lr, expected",
    [
        (1e-3, "out of memory at batch size 1"),  # training halves the batch 4 → 2 → 1, then gives up
        ("auto", "out of memory in the learning-rate range test at batch size 4 (model mobilenet_v3_small"),
    ],
)
def test_out_of_memory_at_batch_one_fails_that_run_and_the_study_goes_on(
    tmp_path, isolated_cache, monkeypatch, lr, expected
):
    import cnnbench.models as models
    from cnnbench.report import update_results
    from cnnbench.study import resolve_spec, run_study

    real = models.create_model

    def oom_for_mobilenet(name, *args, **kwargs):
        model = real(name, *args, **kwargs)
        if name == "mobilenet_v3_small":

            def forward(x):
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

            model.forward = forward
        return model

    monkeypatch.setattr(models, "create_model", oom_for_mobilenet)
    spec = resolve_spec(
        None,
        None,
        {
            "data": "synthetic",
            "models": "lenet5,mobilenet_v3_small",
            "embed": False,
            "speed": False,
            "recipe": {"epochs": 1, "batch_size": 4, "lr": lr, "max_train_samples": 64, "progress": False},
        },
    )
    result = run_study(spec, tmp_path / "out", log=lambda m: None, on_results=update_results)
    by_model = {r["model"]: r for r in _rows(tmp_path / "out" / "results.csv")}
    assert by_model["mobilenet_v3_small"]["status"] == "failed"
    assert expected in by_model["mobilenet_v3_small"]["error"]
    assert by_model["lenet5"]["status"] == "completed"
    assert len(result.runs) == 2


@pytest.mark.slow
def test_ddp_rank_killed_then_torchrun_restarts_and_the_run_resumes_to_completion(tmp_path, isolated_cache):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "--max-restarts",
        "1",
        "-m",
        "cnnbench",
        "train",
        "--model",
        "lenet5",
        "--data",
        "mnist-sample",
        "--epochs",
        "3",
        "--batch-size",
        "16",
        "--lr",
        "3e-3",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if (out / "metrics.csv").exists() and len(_rows(out / "metrics.csv")) >= 1:
                break
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            time.sleep(0.1)
        time.sleep(0.3)
        workers = _children(proc.pid)
        assert len(workers) == 2, workers
        os.kill(workers[-1], signal.SIGKILL)  # one rank dies mid-epoch
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:  # never leave torchrun and its workers behind
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 3 and summary["world_size"] == 2
    assert any("resumed after epoch" in n for n in summary["notes"]), summary["notes"]
    assert [int(r["epoch"]) for r in _rows(out / "metrics.csv")] == [1, 2, 3]


def _children(pid: int) -> list[int]:
    """Worker processes torchrun started (its direct children that run cnnbench)."""
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"cnnbench" in cmdline:
            kids.append(int(entry.name))
    return sorted(kids)
