"""``cnnbench data list | info | samples`` as a user runs them (subprocess)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from conftest import run_cli

pytestmark = pytest.mark.slow  # every test spawns the CLI


def _env(tmp_path):
    return {
        "CNNBENCH_CACHE": str(tmp_path / "cache"),
        "CNNBENCH_DATA": str(tmp_path / "data"),
        "HOME": str(tmp_path / "home"),
    }


def test_list_json(tmp_path):
    proc = run_cli("data", "list", "--json", env=_env(tmp_path))
    rows = json.loads(proc.stdout)["datasets"]
    found = {r["name"]: r["found"] for r in rows}
    assert found["mnist-sample"] == "built in" and found["mnist"] == "not found locally (downloadable)"


def test_info_json_is_one_object_and_notes_go_to_stderr(tmp_path):
    proc = run_cli("data", "info", "synthetic", "--val-fraction", "0.2", "--json", env=_env(tmp_path))
    info = json.loads(proc.stdout)
    assert (info["train_size"], info["val_size"], info["test_size"]) == (1600, 400, 500)
    assert info["image_shape"] == [1, 28, 28] and len(info["mean"]) == 1 and info["skipped"] == []
    assert "split:" in proc.stderr


def test_info_of_missing_dataset_lists_places_and_exits_2(tmp_path):
    proc = run_cli(
        "data",
        "info",
        "fashion-mnist",
        "--data-dir",
        str(tmp_path / "nope"),
        "--no-download",
        env=_env(tmp_path),
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert f"--data-dir {tmp_path / 'nope'}: does not exist" in proc.stderr
    assert "train-images-idx3-ubyte.gz" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_flag_value_names_the_flag(tmp_path):
    proc = run_cli("data", "info", "synthetic", "--val-fraction", "1.5", env=_env(tmp_path), check=False)
    assert proc.returncode == 2 and "--val-fraction 1.5" in proc.stderr


def test_samples_writes_the_grid(tmp_path):
    out = tmp_path / "figs" / "grid.png"
    proc = run_cli(
        "data", "samples", "synthetic", "-o", str(out), "--samples-per-class", "4", "--json", env=_env(tmp_path)
    )
    assert json.loads(proc.stdout)["path"] == str(out)
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] > 200 and img.size[1] > 300


def test_samples_into_a_directory_is_refused_before_loading_and_never_mentions_a_previous_version(tmp_path):
    figs = tmp_path / "figs"
    figs.mkdir()
    proc = run_cli("data", "samples", "synthetic", "-o", str(figs), env=_env(tmp_path), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    # was: cannot write DIR: Is a directory; the previous version is kept
    assert f"--out {figs}: is a directory; expected the PNG file to write, e.g. {figs / 'samples.png'}" in proc.stderr
    assert "previous version" not in proc.stderr and "split:" not in proc.stderr  # the data was not loaded
    proc = run_cli("data", "samples", "synthetic", "-o", f"{tmp_path / 'new'}/", env=_env(tmp_path), check=False)
    assert proc.returncode == 2 and f"--out {tmp_path / 'new'}/: names a directory (it ends with '/')" in proc.stderr
    assert not (tmp_path / "new").exists() and list(figs.iterdir()) == []
