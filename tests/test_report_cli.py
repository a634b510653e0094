"""``cnnbench report``: one JSON object with --json, tables without, clear errors with exit status 2."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from support.synthetic_study import SyntheticStudy, write_synthetic_study

SPEC = SyntheticStudy(
    models=("lenet5", "resnet18"),
    schedules=("cosine",),
    seeds=(0,),
    failed=("mnist__resnet18__cosine__s0",),
    analysis=False,
    samples=False,
)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return write_synthetic_study(tmp_path_factory.mktemp("cli") / "study", SPEC)


@pytest.mark.slow
def test_json_prints_exactly_one_object_naming_the_files(study, tmp_path):
    proc = run_cli("report", str(study), "--out", str(tmp_path / "out"), "--json")
    out = json.loads(proc.stdout)  # the whole of stdout is one JSON object
    assert out["html"] == str(tmp_path / "out" / "report.html")
    assert (tmp_path / "out" / "report.html").is_file() and (tmp_path / "out" / "results.csv").is_file()
    assert out["runs"]["diverged"] == 1 and sum(out["runs"].values()) == 2
    assert all(p.endswith(".png") for p in out["figures"])


@pytest.mark.slow
def test_tables_without_json(study, tmp_path):
    proc = run_cli("report", str(study), "--out", str(tmp_path / "out"), env={"COLUMNS": "200"})
    assert "lenet5" in proc.stdout and "test acc (%)" in proc.stdout
    assert "1 runs did not finish" in proc.stdout and "diverged" in proc.stdout
    assert "report.html" in proc.stdout


@pytest.mark.slow
def test_errors_exit_2_with_a_message_naming_the_problem(study, tmp_path):
    proc = run_cli("report", str(tmp_path / "missing"), check=False)
    assert proc.returncode == 2
    assert f"study directory {tmp_path / 'missing'} does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_cli("report", str(study), str(study), check=False)
    assert proc.returncode == 2 and "--out is required" in proc.stderr
