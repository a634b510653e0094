"""cnnbench.rundir: the run directory's names, statuses and splits, shared by every layer."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cnnbench.errors import ConfigError
from cnnbench.rundir import SPLITS, STATUS_FINISHED, STATUS_OK, RunId, check_split
from conftest import run_cli


def test_run_id_formats_sanitises_and_parses_back():
    assert RunId.parse("mnist__resnet18__plateau__s12") == RunId("mnist", "resnet18", "plateau", 12)
    assert str(RunId("imagefolder:/x/y", "vgg11", "cosine", 0)) == "imagefolder_x_y__vgg11__cosine__s0"
    assert RunId.parse("imagefolder_x_y__vgg11__cosine__s0") == RunId("imagefolder_x_y", "vgg11", "cosine", 0)
    assert RunId.parse("my__set__lenet5__none__s1") == RunId("my__set", "lenet5", "none", 1)  # from the right
    assert RunId.parse("resnet18-run") is None
    assert RunId.parse("a__b__c__sX") is None
    assert RunId.parse("__b__c__s1") is None


@pytest.mark.slow  # imports torch and spawns the CLI
def test_a_study_and_cnnbench_train_name_a_run_alike():
    from cnnbench.study import resolve_spec
    from cnnbench.study.plan import plan_runs

    spec = resolve_spec(None, None, {"data": "imagefolder:/x/y", "models": "lenet5", "schedules": "cosine"})
    planned = plan_runs(spec, ["lenet5"])[0]
    assert planned.run_id == "imagefolder_x_y__lenet5__cosine__s0"
    dry = run_cli(
        "train", "--data", "imagefolder:/x/y", "--model", "lenet5", "--schedule", "cosine", "--dry-run", "--json"
    )
    assert json.loads(dry.stdout)["out_dir"] == f"runs/{planned.run_id}"


def test_statuses_ok_are_finished_and_splits_are_checked():
    assert set(STATUS_OK) < set(STATUS_FINISHED) and "diverged" in STATUS_FINISHED
    assert check_split("val") == "val" and SPLITS[0] == "test"
    with pytest.raises(ConfigError, match="--split 'dev': expected one of test, val, train"):
        check_split("dev")


@pytest.mark.slow
def test_rundir_is_torch_free():
    code = "import sys, cnnbench.rundir; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
