"""Reliability, round 3 (issue 29): every wait bounded, every worker and temporary file gone with its
process, streams and resource limits that never turn a finished command into a failed one."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from cnnbench.data.cache import cache_dir_for, decode_folder
from cnnbench.data.imagefolder import scan_folder
from cnnbench.errors import LockedError
from cnnbench.utils.io import atomic_write_json, remove_dead_temp_files
from cnnbench.utils.lock import DirectoryLock, LockOwner, lock_is_live, pid_alive, read_owner
from conftest import run_cli

TINY_TRAIN = ["--data", "synthetic", "--model", "lenet5", "--epochs", "1", "--max-train-samples", "256",
              "--max-test-samples", "100", "--batch-size", "64", "--no-progress"]  # fmt: skip
DEAD_PID = 2**22 + 12345  # above pid_max on Linux: never a live process


def _folder(root: Path, per_class: int = 12, side: int = 16) -> Path:
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


# ------------------------------------------------------------------------------ the decode-cache lock
@pytest.mark.parametrize(
    "lock",
    [
        pytest.param(lambda: "", id="empty"),
        pytest.param(lambda: "garbage{", id="garbage"),
        pytest.param(lambda: json.dumps({"pid": DEAD_PID, "host": socket.gethostname(), "started": "x"}), id="dead"),
        pytest.param(lambda: json.dumps({"pid": -1, "host": socket.gethostname(), "started": "x"}), id="pid-1"),
        pytest.param(
            lambda: json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "x", "pid_start": 1}),
            id="pid-reused",
        ),
        pytest.param(
            lambda: json.dumps({"pid": 4242, "host": "another-host", "started": "x", "heartbeat_s": 10}),
            id="other-host-silent",
        ),
    ],
)
def test_a_decode_cache_lock_whose_holder_is_gone_is_taken_over(tmp_path, lock):
    scan = scan_folder(_folder(tmp_path / "imgs"))
    directory = cache_dir_for(scan, 16, "RGB", tmp_path / "cache", "imgs")
    directory.mkdir(parents=True)
    (directory / ".lock").write_text(lock())
    _age(directory / ".lock", 300)  # older than the garbage grace and the heartbeat limit
    decoded = decode_folder(scan, 16, "RGB", tmp_path / "cache", "imgs", workers=1)
    assert decoded.built and decoded.images.shape == (24, 3, 16, 16)
    assert not (directory / ".lock").exists()


def test_a_live_holder_on_another_host_is_waited_for_then_the_file_to_delete_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNBENCH_LOCK_WAIT", "1")
    scan = scan_folder(_folder(tmp_path / "imgs"))
    directory = cache_dir_for(scan, 16, "RGB", tmp_path / "cache", "imgs")
    directory.mkdir(parents=True)
    lock = directory / ".lock"
    lock.write_text(json.dumps({"pid": 4242, "host": "another-host", "started": "then", "heartbeat_s": 10}))
    with pytest.raises(LockedError) as exc:
        decode_folder(scan, 16, "RGB", tmp_path / "cache", "imgs", workers=1)
    message = str(exc.value)
    assert "process 4242 on another-host" in message and f"delete {lock}" in message and "after waiting 1 s" in message
    assert lock.exists()  # a live holder's lock is never removed


@pytest.mark.slow
def test_a_decode_cache_lock_held_by_a_live_process_is_waited_for(tmp_path):
    scan = scan_folder(_folder(tmp_path / "imgs"))
    directory = cache_dir_for(scan, 16, "RGB", tmp_path / "cache", "imgs")
    directory.mkdir(parents=True)
    code = (
        "import sys, time; from cnnbench.utils.lock import DirectoryLock; "
        "lock = DirectoryLock(sys.argv[1], heartbeat_s=0.2, stale_after_s=60); lock.acquire(); "
        "print('held', flush=True); time.sleep(3); open(sys.argv[2], 'w').close(); lock.release()"
    )
    released = tmp_path / "released"
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(directory), str(released)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lock_is_live(directory / ".lock")
        decoded = decode_folder(scan, 16, "RGB", tmp_path / "cache", "imgs", workers=1)
        assert released.exists()  # it waited for the holder to finish, then decoded
        assert decoded.images.shape[0] == 24
    finally:
        holder.kill()
        holder.wait()


def test_a_takeover_never_removes_a_lock_another_waiter_just_created(tmp_path):
    path = tmp_path / ".lock"
    path.write_text("")
    _age(path, 60)
    stale = read_owner(path)
    assert stale is not None and not stale.readable
    # between this waiter's judgement and its takeover, another waiter took over and holds a fresh lock
    path.unlink()
    fresh = DirectoryLock(tmp_path)
    fresh.acquire()
    DirectoryLock(tmp_path)._take_over(stale, "test")
    assert read_owner(path).pid == os.getpid()  # still there: put back
    fresh.release()
    assert not path.exists()


def test_pids_that_name_no_single_process_are_not_alive():
    assert not pid_alive(0) and not pid_alive(-1) and not pid_alive(2**40)
    assert pid_alive(os.getpid())
    owner = LockOwner(Path("x"), True, pid=-1, host=socket.gethostname(), started="x")
    from cnnbench.utils.lock import stale_reason

    assert stale_reason(owner) == "process -1 is gone"


# ------------------------------------------------------------------ workers and temporary files
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigkill_during_a_decode_leaves_no_worker_and_the_next_run_removes_the_temporary_file(tmp_path, isolated_cache):
    root = tmp_path / "big"
    for c, color in (("a", (200, 100, 50)), ("b", (50, 100, 200))):
        (root / c).mkdir(parents=True)
        Image.new("RGB", (1500, 1500), color).save(root / c / "0.png")
        png = (root / c / "0.png").read_bytes()  # a few KB on disk, 2 megapixels to decode: seconds in all
        for i in range(1, 120):
            (root / c / f"{i}.png").write_bytes(png)
    args = [sys.executable, "-m", "cnnbench", "data", "info", f"imagefolder:{root}", "--decode-workers", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = isolated_cache / "cache"
    try:
        assert _wait_for(lambda: any(cache.glob("*/.images.npy.*.tmp")), 120), "the decode never started"
        assert _wait_for(lambda: len(_children(proc.pid)) >= 2, 30), "no decode workers"
        workers = _children(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert _wait_for(lambda: all(_state(p) in ("gone", "Z") for p in workers), 30), "decode workers outlived it"
    (temp,) = cache.glob("*/.images.npy.*.tmp")
    run = subprocess.run(args[:-2], capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr
    assert not temp.exists() and not list(cache.glob("*/*.tmp")) and not list(cache.glob("*/.lock"))
    assert (temp.parent / "images.npy").is_file()


def test_the_next_writer_removes_the_temporary_files_of_dead_writers(tmp_path):
    from cnnbench.utils.io import _host_tag

    target = tmp_path / "summary.json"
    dead = tmp_path / f".summary.json.{_host_tag()}-{DEAD_PID}.abcd1234.tmp"
    live = tmp_path / f".summary.json.{_host_tag()}-{os.getpid()}.efgh5678.tmp"  # a writer at work
    old = tmp_path / ".summary.json.ijkl9012.tmp"  # an earlier version's name, a day old
    other = tmp_path / ".other.json.mnop3456.tmp"
    for p in (dead, live, old, other):
        p.write_text("partial")
    _age(old, 2 * 86_400)
    atomic_write_json(target, {"ok": True})
    assert json.loads(target.read_text()) == {"ok": True}
    assert not dead.exists() and not old.exists()
    assert live.exists() and other.exists()  # a live writer's file, and another file's, are left alone
    assert remove_dead_temp_files(tmp_path, every=True) == 2


# ------------------------------------------------------------------------------ the study lock
@pytest.mark.slow
def test_the_study_lock_is_held_until_the_report_is_written(tmp_path, isolated_cache):
    from cnnbench.study import resolve_spec, run_study

    out = tmp_path / "study"
    spec = resolve_spec(
        None,
        None,
        {"data": "synthetic", "models": "lenet5", "embed": False, "speed": False,
         "recipe": {"epochs": 1, "max_train_samples": 128, "max_test_samples": 64, "batch_size": 64}},
    )  # fmt: skip
    seen = {}

    def finished(result) -> None:
        seen["holder"] = read_owner(out / ".lock").pid
        try:
            DirectoryLock(out).acquire()  # what a second `cnnbench run` on the directory does first
        except LockedError as exc:
            seen["second"] = str(exc)
        (out / "report.html").write_text("the report")

    run_study(spec, out, log=lambda m: None, on_finished=finished)
    assert seen["holder"] == os.getpid() and "is in use by process" in seen["second"]
    assert (out / "report.html").is_file() and not (out / ".lock").exists()
    # a key added by hand to a run's config.yaml is said by the next `run` (which skips the finished run)
    config = next((out / "runs").glob("*/config.yaml"))
    config.write_text(config.read_text() + "my_comment: hello\n")
    lines: list[str] = []
    run_study(spec, out, log=lines.append)
    assert any("unknown key 'my_comment'" in line and "ignored" in line for line in lines)


def test_a_report_removes_the_figures_and_scratch_of_earlier_reports(tmp_path):
    from cnnbench.report import build_report
    from support.synthetic_study import SyntheticStudy, write_synthetic_study

    study = write_synthetic_study(tmp_path / "s", SyntheticStudy(models=("lenet5", "resnet18"), seeds=(0,)))
    first = build_report(study)
    stale = first.figures_dir / "curves-vgg11.png"  # a model of an earlier version of the study
    stale.write_bytes(next(iter(first.figures)).read_bytes())
    (study / ".report-tmp-abc123").mkdir()  # a report build killed while it drew the sample grid
    notes = first.figures_dir / "notes.txt"  # not the report's: kept
    notes.write_text("mine")
    second = build_report(study)
    assert not stale.exists() and not (study / ".report-tmp-abc123").exists() and notes.exists()
    assert sorted(p.name for p in first.figures_dir.glob("*.png")) == sorted(p.name for p in second.figures)


def test_two_report_builds_of_one_directory_take_turns(tmp_path, monkeypatch):
    from cnnbench.report import build_report
    from support.synthetic_study import SyntheticStudy, write_synthetic_study

    study = write_synthetic_study(tmp_path / "s", SyntheticStudy(models=("lenet5",), seeds=(0,)))
    monkeypatch.setenv("CNNBENCH_LOCK_WAIT", "1")
    # another build (this process: alive) is writing
    with DirectoryLock(study, ".report.lock"), pytest.raises(LockedError, match=r"\.report\.lock"):
        build_report(study)
    assert build_report(study).html.is_file()


# ------------------------------------------------------------------------------ train's --out
@pytest.mark.slow
@pytest.mark.parametrize("content", [b"", b"hello weights\n"], ids=["empty", "text"])
def test_a_bad_pretrained_file_is_named_and_leaves_no_empty_out(tmp_path, isolated_cache, content):
    weights = tmp_path / "weights.pt"
    weights.write_bytes(content)
    out = tmp_path / "new" / "run"
    proc = run_cli("train", *TINY_TRAIN, "--pretrained", str(weights), "--out", str(out), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"weights file {weights}: it is {'empty' if not content else 'text'}" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()


# ------------------------------------------------------------------------------ streams and limits
def _closed(fd: int):
    return lambda: os.close(fd)


@pytest.mark.slow
def test_a_closed_or_full_stderr_never_fails_a_completed_run(tmp_path, isolated_cache):
    base = [sys.executable, "-m", "cnnbench", "train", *TINY_TRAIN]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    closed = subprocess.run([*base, "--out", str(tmp_path / "a")], preexec_fn=_closed(2), env=env, timeout=300)
    assert closed.returncode == 0
    assert json.loads((tmp_path / "a" / "summary.json").read_text())["status"] == "completed"
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [*base, "--json", "--out", str(tmp_path / "b")], stdout=subprocess.PIPE, stderr=full, env=env, timeout=300
        )
    assert proc.returncode == 0 and json.loads(proc.stdout)["status"] == "completed"


@pytest.mark.slow
def test_lost_output_is_one_line_and_a_closed_pipe_is_quiet():
    cmd = [sys.executable, "-m", "cnnbench", "models", "--json"]
    with open("/dev/full", "w") as full:
        proc = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr == "cnnbench models: error: cannot write the output: the disk is full\n"
    proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, preexec_fn=_closed(1), timeout=120)
    assert proc.returncode == 2 and "standard output is closed" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_an_address_space_limit_too_small_for_torch_is_one_line():
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2_000_000 * 1024, 2_000_000 * 1024))  # ulimit -v 2000000

    proc = subprocess.run(
        [sys.executable, "-m", "cnnbench", "train", *TINY_TRAIN, "--out", "/nonexistent/never"],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        timeout=120,
    )
    if proc.returncode == 0:  # pragma: no cover - a build of torch that fits
        pytest.skip("torch loads within 2 GB of address space here")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "could not be loaded" in lines[0] and "ulimit -v 2000000" in lines[0]


def test_more_workers_than_cores_on_a_cpu_gets_a_note():
    from cnnbench.study.workers import choose_workers
    from cnnbench.utils.threads import usable_cores

    runs = [SimpleNamespace(config=SimpleNamespace(device="cpu", image_size=None))]
    n, _, why = choose_workers(usable_cores() + 6, runs)
    assert n == usable_cores() + 6 and "oversubscribe" in why and f"{usable_cores()} CPU core(s)" in why
    assert "note" not in choose_workers(1, runs)[2]


def test_numpy_runtime_warnings_never_reach_the_user(tmp_path):
    import warnings

    from cnnbench.report import build_report
    from cnnbench.utils.quiet import quiet_numeric_warnings
    from support.synthetic_study import SyntheticStudy, write_synthetic_study

    study = write_synthetic_study(tmp_path / "s", SyntheticStudy(models=("lenet5",), seeds=(0,)))
    for metrics in study.glob("runs/*/test_metrics.json"):  # class "3" absent from every test split
        data = json.loads(metrics.read_text())
        data["per_class_accuracy"][3] = None
        metrics.write_text(json.dumps(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_report(study)
        quiet_numeric_warnings()
        np.nanmean(np.array([np.nan]))
        np.array([1.0]) / 0


def test_lock_heartbeat_keeps_a_held_lock_fresh(tmp_path):
    lock = DirectoryLock(tmp_path, heartbeat_s=0.05, stale_after_s=0.2)
    lock.acquire()
    try:
        _age(lock.path, 100)
        assert _wait_for(lambda: read_owner(lock.path).age_s < 1, 5)
    finally:
        lock.release()
