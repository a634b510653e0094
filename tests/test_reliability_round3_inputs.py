"""Reliability, round 3 (issue 29): input that expands or lies, analysis of a moving target, paths
and environment variables that point at the wrong thing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from cnnbench.errors import CnnbenchError, ConfigError, DataError, DataNotFoundError, ResultsError
from cnnbench.report import collect
from cnnbench.rundir import RunSummary
from cnnbench.rundir.config import TRAIN_CONFIG_KEYS
from cnnbench.study import resolve_spec
from cnnbench.utils.yamlfile import MAX_VALUES, load_yaml
from conftest import run_cli
from test_data_download import _mnist_files, _point_mnist_at, server  # noqa: F401 - server is a fixture

BOMB = "\n".join(
    [
        "a: &a [lenet5, lenet5, lenet5, lenet5, lenet5, lenet5, lenet5, lenet5, lenet5]",
        *[
            f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]"
            for p, n in zip("abcdefgh", "bcdefghi", strict=True)  # 9 ** 9: 387 million names
        ],
    ]
)


def _study_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------ YAML
@pytest.mark.parametrize(
    "text",
    [
        f"{BOMB}\nname: bomb\nmodels: *i\n",
        f"{BOMB}\nname: bomb\ntargets: {{synthetic: *i}}\n",
        "name: loop\nmodels: &m [lenet5, *m]\n",
    ],
    ids=["models", "targets", "recursive"],
)
def test_an_alias_bomb_is_refused_before_anything_expands_it(tmp_path, text):
    with pytest.raises(ConfigError) as err:
        resolve_spec(None, _study_file(tmp_path, text), {})
    message = str(err.value)
    assert "study.yaml is not valid YAML at line" in message and "\n" not in message
    assert f"more than {MAX_VALUES:,} values" in message or "recursive anchor" in message


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_alias_bomb_is_one_line_from_the_command_line(tmp_path, isolated_cache):
    path = _study_file(tmp_path, f"{BOMB}\nname: bomb\nmodels: *i\n")
    proc = run_cli("run", str(path), "--dry-run", check=False, timeout=90)
    assert proc.returncode == 2 and "alias bomb" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "key", "line", "first"),
    [
        ("name: d\nmodels: [lenet5]\nseeds: 1\nmodels: [resnet18]\n", "models", 4, 2),
        ("name: d\nseeds: 1\nseeds: 3\n", "seeds", 3, 2),
        ("name: d\nrecipe:\n  lr: 0.1\n  epochs: 2\n  lr: 0.01\n", "lr", 5, 3),
    ],
)
def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path, text, key, line, first):
    with pytest.raises(ConfigError) as err:
        resolve_spec(None, _study_file(tmp_path, text), {})
    assert f"at line {line}, column" in str(err.value)
    assert f"found duplicate key '{key}' (first at line {first})" in str(err.value)


def test_ordinary_anchors_and_merge_keys_stay_allowed():
    text = "base: &b {lr: 0.1, epochs: 2}\nrecipe: {<<: *b, lr: 0.01}\nmodel_recipes: {lenet5: *b, vgg11: *b}\n"
    for fast in (False, True):
        data = load_yaml(text, fast=fast)
        assert data["recipe"] == {"lr": 0.01, "epochs": 2} and data["model_recipes"]["vgg11"]["epochs"] == 2


def test_a_list_inside_a_list_of_names_is_refused_in_one_short_line(tmp_path):
    with pytest.raises(ConfigError, match=r"models: expected a list of names, found a list among them"):
        resolve_spec(None, _study_file(tmp_path, "models: [[lenet5, vgg11], resnet18]\n"), {})
    long = "[" + ", ".join(["0.1"] * 5000) + "]"
    with pytest.raises(ConfigError) as err:
        resolve_spec(None, _study_file(tmp_path, f"recipe: {{lr: {long}}}\n"), {})
    assert len(str(err.value)) < 300


def test_a_damaged_run_config_yaml_is_named_by_every_reader(tmp_path):
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("model: lenet5\nmodel: vgg11\nmodel_args: {}\n")
    (run / "summary.json").write_text(json.dumps({"model": "lenet5", "dataset": "synthetic", "status": "completed"}))
    results = collect(tmp_path)
    assert any("duplicate key 'model'" in p for p in results.problems)
    from cnnbench.checkpoints import open_run

    with pytest.raises(CnnbenchError, match="config.yaml is not valid YAML"):
        open_run(run)


# ------------------------------------------------------------------------------------ numbers
def _run_dir(root: Path, **figures) -> Path:
    run = root / "runs" / "synthetic__lenet5__cosine__s0"
    run.mkdir(parents=True, exist_ok=True)
    summary = {"model": "lenet5", "dataset": "synthetic", "status": "completed", "test_accuracy": 0.9, **figures}
    (run / "summary.json").write_text(json.dumps(summary, allow_nan=True))
    return run


@pytest.mark.parametrize("key", ["test_accuracy", "params", "train_time_s", "test_loss"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 1e308])
def test_nan_infinity_and_huge_numbers_in_a_summary_are_unreadable(tmp_path, key, value):
    run = _run_dir(tmp_path, **{key: value})
    (record,) = collect(tmp_path).runs
    assert record.status == "unreadable" and "summary.json" in record.error
    assert all(v is None for v in record.figures.values())  # nothing of it enters a mean
    with pytest.raises(ResultsError, match="summary.json"):
        RunSummary.read(run)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [("params", -5, "whole number ≥ 0"), ("params", 2.5, "whole number ≥ 0"), ("test_time_s", -1.0, "≥ 0")],
)
def test_numbers_out_of_their_range_are_named(tmp_path, key, value, expected):
    _run_dir(tmp_path, **{key: value})
    (record,) = collect(tmp_path).runs
    assert record.status == "unreadable" and f"{key} {value!r}: expected" in record.error and expected in record.error


def test_every_other_result_file_checks_its_numbers(tmp_path):
    from cnnbench.rundir.analysis import read_analysis
    from cnnbench.rundir.files import read_test_metrics
    from cnnbench.rundir.tables import read_metrics

    run = _run_dir(tmp_path)
    (tmp_path / "speed").mkdir()
    (tmp_path / "speed" / "lenet5.json").write_text('{"model": "lenet5", "cpu_latency_ms": NaN}')
    results = collect(tmp_path)
    assert any("speed/lenet5.json" in p and "NaN is not a number JSON allows" in p for p in results.problems)
    (tmp_path / "speed" / "lenet5.json").write_text('{"model": "lenet5", "cpu_latency_ms": -3}')
    assert any("cpu_latency_ms -3: expected" in p for p in collect(tmp_path).problems)
    (run / "metrics.csv").write_text("epoch,train_loss,val_acc\n1,0.5,0.9\n2,nan,0.95\n")
    with pytest.raises(ResultsError, match=r"line 3: train_loss 'nan': expected a finite number"):
        read_metrics(run)
    (run / "metrics.csv").write_text("epoch,train_loss,val_acc\n1,0.5,7\n")
    with pytest.raises(ResultsError, match=r"val_acc '7': expected a fraction"):
        read_metrics(run)
    (run / "analysis.json").write_text('{"tsne": {"kmeans": {"ari": 4.5}}}')
    with pytest.raises(ResultsError, match=r"kmeans.ari 4.5: expected a number between -1 and 1"):
        read_analysis(run)
    (run / "analysis.json").write_text('{"knn_accuracy": Infinity}')
    with pytest.raises(ResultsError, match="Infinity is not a number JSON allows"):
        read_analysis(run)
    (run / "test_metrics.json").write_text('{"confusion_matrix": [[1, -2], [0, 3]]}')
    with pytest.raises(ResultsError, match="not a whole count"):
        read_test_metrics(run)


def test_a_hand_edited_split_file_is_redrawn_not_trusted(isolated_cache):
    from cnnbench.data import DataConfig, load_dataset

    cfg = DataConfig("synthetic", max_train_samples=200, synthetic_train=300, synthetic_test=100)
    first = load_dataset(cfg)
    path = Path(first.split_file)
    saved = json.loads(path.read_text())
    leaked = dict(saved, val=saved["val"] + saved["train"][:5])  # five training images also in val
    path.write_text(json.dumps(leaked))
    again = load_dataset(cfg)
    assert any("puts one image in two splits" in n and "new split was drawn" in n for n in again.notes)
    assert len(again.val) == len(first.val)
    saved = json.loads(path.read_text())
    saved["extra"]["std"] = [0.0]
    path.write_text(json.dumps(saved))
    again = load_dataset(cfg)
    assert any("standard deviation" in n for n in again.notes) and all(s > 0 for s in again.std)


# ------------------------------------------------------------------------------------ config.yaml
def test_the_torch_free_list_of_config_keys_is_the_train_config():
    from cnnbench.engine.config import train_config_fields

    assert sorted(TRAIN_CONFIG_KEYS) == sorted(train_config_fields())


def _copy_run(engine_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "runs" / engine_run.name
    shutil.copytree(engine_run, run)
    return run


def _add_unknown_keys(run: Path) -> None:
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["my_comment"] = "tried lr 0.01"
    config["data_config"]["colour"] = "blue"
    (run / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.slow
def test_unknown_config_keys_are_named_by_open_run_and_the_report(engine_run, tmp_path):
    from cnnbench.checkpoints import open_run, run_data_config

    run = _copy_run(engine_run, tmp_path)
    _add_unknown_keys(run)
    opened = open_run(run)
    assert "my_comment" not in opened.config and "colour" not in opened.config["data_config"]
    assert any("unknown key 'my_comment' (not a cnnbench setting; ignored)" in n for n in opened.notes)
    assert any("unknown key 'colour' in data_config" in n for n in opened.notes)
    assert run_data_config(opened).name == "synthetic"  # the extra key never reaches DataConfig(**)
    assert any("unknown key 'my_comment'" in p for p in collect(tmp_path).problems)


@pytest.mark.slow
def test_unknown_config_keys_are_named_by_eval_and_resume(engine_run, tmp_path, isolated_cache):
    run = _copy_run(engine_run, tmp_path)
    _add_unknown_keys(run)
    proc = run_cli("eval", str(run), "--json")
    assert "unknown key 'my_comment'" in proc.stderr and json.loads(proc.stdout)["notes"]
    proc = run_cli("train", "--resume", str(run), "--epochs", "11", "--no-progress")
    assert "unknown key 'my_comment'" in proc.stderr and "unknown key 'colour' in data_config" in proc.stderr


# ------------------------------------------------------------------------------------ a moving target
@pytest.mark.slow
def test_embed_of_a_run_still_training_is_refused_then_recorded_and_the_report_says_when_it_is_older(
    engine_run, tmp_path, isolated_cache
):
    from cnnbench.analysis import embed_run
    from cnnbench.report import build_report

    run = _copy_run(engine_run, tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock = {"pid": holder.pid, "host": os.uname().nodename, "started": "now"}
        (run / ".train.lock").write_text(json.dumps(lock))
        with pytest.raises(CnnbenchError) as err:
            embed_run(run, max_points=200)
        assert "is still training" in str(err.value) and "--force" in str(err.value) and ".train.lock" in str(err.value)
        assert not (run / "analysis.json").exists()
        embed_run(run, max_points=200, force=True)
    finally:
        holder.kill()
        holder.wait()
    analysis = json.loads((run / "analysis.json").read_text())
    best = run / "checkpoint" / "best.pt"
    assert analysis["checkpoint_sha256"] == hashlib.sha256(best.read_bytes()).hexdigest()
    assert analysis["checkpoint_sha256"] == (run / "checkpoint" / "best.pt.sha256").read_text().split()[0]
    assert analysis["checkpoint_epoch"] == json.loads((run / "summary.json").read_text())["best_epoch"]
    assert any("still training (--force)" in n for n in analysis["notes"])
    (run / ".train.lock").unlink()
    html = build_report(tmp_path).html.read_text()
    assert "older than the run&#x27;s best checkpoint" not in html
    # the run trained on and saved a better checkpoint after the analysis
    (run / "checkpoint" / "best.pt.sha256").write_text(f"{'0' * 64}  best.pt\n")
    html = build_report(tmp_path).html.read_text()
    assert "older than the run&#x27;s best checkpoint now" in html and "cnnbench embed" in html


def test_a_checkpoint_being_replaced_is_read_whole_and_verified(tmp_path):
    import torch

    from cnnbench.checkpoints import read_checkpoint, save_checkpoint

    save_checkpoint(tmp_path, "best", {"model": {"w": torch.zeros(3)}, "epoch": 1})
    first = (tmp_path / "best.pt.sha256").read_text().split()[0]
    save_checkpoint(tmp_path, "best", {"model": {"w": torch.ones(3)}, "epoch": 2})
    side = tmp_path / "best.pt.sha256"
    assert len(side.read_text().splitlines()) == 1
    # killed between the two renames: the checksum file lists both hashes, and either file verifies
    side.write_text(f"{side.read_text().split()[0]}  best.pt\n{first}  best.pt\n")
    ckpt, info = read_checkpoint(tmp_path / "best.pt")
    assert info.epoch == 2 and info.sha256 == hashlib.sha256((tmp_path / "best.pt").read_bytes()).hexdigest()
    side.write_text(f"{first}  best.pt\n")  # only another file's hash: the contents changed
    with pytest.raises(CnnbenchError, match="does not match its checksum"):
        read_checkpoint(tmp_path / "best.pt")


@pytest.mark.slow
def test_a_failed_analysis_in_run_names_flags_run_has(engine_run, tmp_path, isolated_cache):
    from cnnbench.study.artefacts import embed_best_runs

    run = _copy_run(engine_run, tmp_path)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data_config"]["max_test_samples"] = 6  # a test split too small to analyse
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    lines: list[str] = []
    embed_best_runs(type("Spec", (), {"embed_max_points": 1000})(), tmp_path, lines.append)
    (line,) = lines
    assert "feature analysis of" in line and "holds 6 image(s)" in line
    assert "--embed-max-points" in line and "--max-test-samples" in line and "raise --max-points" not in line


# ------------------------------------------------------------------------------------ paths
def test_file_names_that_are_not_utf8_are_decoded_and_shown(tmp_path, isolated_cache):
    from cnnbench.data import DataConfig, load_dataset

    root = os.fsencode(tmp_path / "ds")
    rng = np.random.default_rng(0)
    for cls in (b"cat", b"caf\xe9"):
        os.makedirs(os.path.join(root, cls))
        for i in range(8):
            name = os.path.join(root, cls, b"\xff\xfe%d.png" % i if i == 0 else b"%d.png" % i)
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(os.fsdecode(name))
    ds = load_dataset(DataConfig(f"imagefolder:{tmp_path / 'ds'}", image_size=16))
    assert len(ds.train) + len(ds.val) + len(ds.test) == 16
    assert ds.classes == ["caf\\xe9", "cat"]  # printable, drawable, writable as UTF-8
    json.dumps(ds.info()).encode("utf-8")


def test_cnnbench_data_naming_a_file_is_an_error_before_any_download(server, tmp_path, monkeypatch):  # noqa: F811
    handler, url = server
    files = _mnist_files()
    for name, data in files.items():
        handler.files[f"/mnist/{name}"] = data
    _point_mnist_at(monkeypatch, [f"{url}/mnist/"], files)
    monkeypatch.delenv("CNNBENCH_OFFLINE", raising=False)
    not_a_dir = tmp_path / "data.txt"
    not_a_dir.write_text("x")
    monkeypatch.setenv("CNNBENCH_DATA", str(not_a_dir))
    monkeypatch.setenv("CNNBENCH_CACHE", str(tmp_path / "cache"))
    from cnnbench.data import DataConfig, load_dataset

    with pytest.raises(DataError, match=rf"CNNBENCH_DATA={not_a_dir} is not a directory"):
        load_dataset(DataConfig("mnist", download_timeout=5))
    assert not_a_dir.read_text() == "x" and not list(tmp_path.glob("data.txt*/*"))


def test_cnnbench_offline_stops_dataset_downloads_too(server, tmp_path, monkeypatch):  # noqa: F811
    from cnnbench.data import DataConfig, load_dataset, resolve_default_digits

    handler, url = server
    requests: list[str] = []
    handler.log_message = lambda self, fmt, *args: requests.append(fmt % args)
    files = _mnist_files()
    for name, data in files.items():
        handler.files[f"/mnist/{name}"] = data
    _point_mnist_at(monkeypatch, [f"{url}/mnist/"], files)
    monkeypatch.setenv("CNNBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("CNNBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("CNNBENCH_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv("CNNBENCH_OFFLINE", raising=False)
        monkeypatch.setenv(var, "1")
        with pytest.raises(DataNotFoundError, match=rf"download: off \({var}=1 is set; unset it to download"):
            load_dataset(DataConfig("mnist", download_timeout=5))
        name, note = resolve_default_digits(timeout=2.0)
        assert name == "mnist-sample" and f"downloads are off ({var}=1 is set)" in note
        monkeypatch.delenv(var)
    assert requests == [] and not (tmp_path / "data").exists()
    load_dataset(DataConfig("mnist", download_timeout=5))  # downloads allowed again: it downloads
    assert requests


def test_lock_files_from_the_last_boot_or_a_reused_pid_are_stale(tmp_path):
    from cnnbench.utils.lock import process_start, read_owner, stale_reason

    host = os.uname().nodename
    path = tmp_path / ".lock"
    path.write_text(json.dumps({"pid": os.getpid(), "host": host, "started": "x", "boot": "another-boot"}))
    assert "restarted" in stale_reason(read_owner(path))
    path.write_text(json.dumps({"pid": os.getpid(), "host": host, "started": "x", "pid_start": process_start(1)}))
    assert "another process" in stale_reason(read_owner(path))
    path.write_text(
        json.dumps({"pid": os.getpid(), "host": host, "started": "x", "pid_start": process_start(os.getpid())})
    )
    assert stale_reason(read_owner(path)) is None


# ------------------------------------------------------------------------------------ the stranger pass
def test_paths_too_long_or_looping_are_one_line(tmp_path, capsys):
    from cnnbench.cli import main

    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    deep = tmp_path.joinpath(*["b" * 250] * 20)  # each name fits, the whole path (5,000 bytes) does not
    for out in (tmp_path / ("a" * 300), deep / "run", loop / "run"):
        assert main(["train", "--model", "lenet5", "--data", "synthetic", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "too long" in err or "symbolic links" in err
    assert main(["data", "info", f"imagefolder:{tmp_path / ('d' * 300)}"]) == 2
    assert "too long" in capsys.readouterr().err


def test_cnnbench_cache_naming_a_file_is_refused(tmp_path, monkeypatch):
    from cnnbench.data import DataConfig, load_dataset

    cache = tmp_path / "cache.txt"
    cache.write_text("x")
    monkeypatch.setenv("CNNBENCH_CACHE", str(cache / "sub"))
    with pytest.raises(DataError, match=rf"CNNBENCH_CACHE={cache / 'sub'} is not a directory \({cache} is a file\)"):
        load_dataset(DataConfig("synthetic"))


@pytest.mark.slow
def test_a_full_cache_disk_during_a_decode_is_an_error_not_a_crash(tmp_path):
    from cnnbench.data.cache import decode_folder
    from cnnbench.data.imagefolder import scan_folder
    from cnnbench.errors import OutputError

    root = tmp_path / "imgs"
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(20):
            Image.new("RGB", (64, 64), (i, 3, 100)).save(root / c / f"{i}.png")
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(tiny)]).returncode != 0:
        pytest.skip("needs root to mount a tmpfs (CI and the dev machines run as root)")
    try:
        # 40 images at 256 px are 7.5 MB: the disk fills while they are written (a memory map here died of SIGBUS)
        with pytest.raises(OutputError, match="images.npy: the disk is full"):
            decode_folder(scan_folder(root), 256, "RGB", tiny, "imgs", workers=1)
        assert not [p for p in tiny.rglob("*") if p.is_file()]  # no temporary file, no lock left
    finally:
        subprocess.run(["umount", str(tiny)])


@pytest.mark.slow
def test_running_out_of_memory_or_file_size_mid_command_is_one_line(tmp_path, isolated_cache):
    import resource

    def file_size_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100 * 1024, 100 * 1024))  # ulimit -f 100

    train = [sys.executable, "-m", "cnnbench", "train", "--model", "lenet5", "--data", "synthetic", "--epochs", "1",
             "--max-train-samples", "128", "--no-progress"]  # fmt: skip
    big = subprocess.run([*train, "--image-size", "100000", "--out", str(tmp_path / "a")], capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert big.returncode == 1 and "Traceback" not in big.stderr
    assert big.stderr.strip().splitlines()[-1].startswith("cnnbench train: error: out of memory (an allocation of")
    capped = subprocess.run([*train, "--out", str(tmp_path / "b")], capture_output=True, text=True,
                            preexec_fn=file_size_limit, timeout=300)  # fmt: skip
    assert capped.returncode == 2 and "Traceback" not in capped.stderr
    assert "the file is larger than this process may write (ulimit -f 100)" in capped.stderr
    threads = subprocess.run([*train, "--threads", "64", "--out", str(tmp_path / "c")], capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert threads.returncode == 0 and "note: --threads 64 on" in threads.stderr


@pytest.mark.slow
def test_hand_edited_run_configs_are_notes_or_one_line(engine_run, tmp_path, isolated_cache):
    from cnnbench.analysis import embed_run
    from cnnbench.engine.evaluate_run import evaluate_run

    run = _copy_run(engine_run, tmp_path)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["model_args"]["input_size"] = 100_000  # would allocate terabytes; the checkpoint knows better
    config["model_args"]["num_classes"] = -1
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    result = evaluate_run(run)
    assert result["accuracy"] == json.loads((run / "summary.json").read_text())["test_accuracy"]
    assert any("input_size 100000 differs from the checkpoint's 28" in n for n in result["notes"])
    config["eval_batch_size"] = "big"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(CnnbenchError, match=r"config.yaml: eval_batch_size 'big': expected a whole number"):
        embed_run(run, max_points=100)
    del config["data_config"]
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(CnnbenchError, match="has no data_config section"):
        evaluate_run(run)


@pytest.mark.slow
def test_eval_of_a_run_still_training_says_which_epoch(engine_run, tmp_path, isolated_cache):
    from cnnbench.engine.evaluate_run import evaluate_run

    run = _copy_run(engine_run, tmp_path)
    (run / ".train.lock").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "started": "x"}))
    best = json.loads((run / "summary.json").read_text())["best_epoch"]
    (note,) = [n for n in evaluate_run(run)["notes"] if "still training" in n]
    assert f"best checkpoint of epoch {best}" in note


@pytest.mark.parametrize(
    "summary",
    [
        {"notes": "one string"},
        {"versions": 5},
        {"device": "cpu"},
        {"model": ["lenet5"]},
        {"seed": "zero"},
    ],
)
def test_summary_fields_of_the_wrong_type_make_the_run_unreadable(tmp_path, summary):
    _run_dir(tmp_path, **summary)
    (record,) = collect(tmp_path).runs
    assert record.status == "unreadable" and next(iter(summary)) in record.error


def test_damaged_sample_and_augmentation_files_are_warnings_in_the_report(tmp_path):
    from cnnbench.report import build_report
    from support.synthetic_study import SyntheticStudy, write_synthetic_study

    study = write_synthetic_study(tmp_path / "s", SyntheticStudy(models=("lenet5",), seeds=(0,)))
    for name in ("samples.npz", "augmented.npz"):
        (study / name).write_bytes((study / name).read_bytes()[:300])  # cut short: not a zip archive any more
    html = build_report(study).html.read_text()
    assert "could not draw the sample grid" in html and "not a readable augmentation preview" in html


def test_counts_that_would_expand_are_capped():
    with pytest.raises(ConfigError, match=r"seeds: 1000000000000: expected a count ≤ 10,000"):
        resolve_spec(None, None, {"seeds": "1000000000000"})


def test_a_lock_that_cannot_be_read_is_named_as_such(tmp_path):
    from cnnbench.errors import LockedError
    from cnnbench.utils.lock import DirectoryLock

    (tmp_path / ".lock").mkdir()
    with pytest.raises(LockedError, match=r"an unknown process \(the lock file is unreadable \(it is a directory"):
        DirectoryLock(tmp_path).acquire()
    (tmp_path / ".lock").rmdir()
    (tmp_path / ".lock").write_text("")  # fresh: a process may be between creating and writing it
    with pytest.raises(LockedError, match=r"the lock file is empty"):
        DirectoryLock(tmp_path).acquire()


@pytest.mark.slow
def test_eval_of_a_run_without_its_best_checkpoint_says_which_weights_it_used(engine_run, tmp_path, isolated_cache):
    """With best.pt deleted, eval silently tested last.pt: the last step's weights, not the selected ones."""
    run = _copy_run(engine_run, tmp_path)
    for path in (run / "checkpoint").glob("best.pt*"):
        path.unlink()
    proc = run_cli("eval", str(run), "--json")
    assert f"{run / 'checkpoint' / 'best.pt'} is missing: evaluated last.pt" in proc.stderr
    assert json.loads(proc.stdout)["checkpoint"].endswith("last.pt")
