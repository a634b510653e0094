"""The MNIST study's own command lines (its test.sh, with `python main.py` → `cnnbench train`) and timm's spellings."""

from __future__ import annotations

import json

import pytest

from cnnbench.models import canonical_model_name, resolve_model_names
from conftest import run_cli

# (the seed's arguments, what cnnbench resolves them to)
SEED_LINES = [
    (
        "--model shufflenetv2 --lr_scheduler cosine --batch_size 64 --dropout 0.5",
        {"model": "shufflenet_v2_x1_0", "schedule": "cosine", "batch_size": 64, "drop_rate": 0.5},
    ),
    (
        "--model lenet --lr_scheduler plateau --factor 0.1 --lr_patience 3 --min_lr 1e-6",
        {"model": "lenet5", "schedule": "plateau", "plateau_factor": 0.1, "plateau_patience": 3, "min_lr": 1e-6},
    ),
    (
        "--model mobilenetv3 --weight_decay 1e-4 --warmup_epochs 5 --warmup_start_lr 1e-6",
        {"model": "mobilenet_v3_small", "weight_decay": 1e-4, "warmup_epochs": 5.0, "warmup_start_lr": 1e-6},
    ),
    ("--model squeezenet", {"model": "squeezenet1_1"}),
    ("--model mnasnet", {"model": "mnasnet1_0"}),
    ("--model efficientnet", {"model": "efficientnet_b0"}),
    # timm's train.py spellings
    (
        "--model resnet18 -b 32 --opt sgd --sched step --wd 5e-5 --warmup-lr 1e-5 --drop 0.2",
        {
            "batch_size": 32,
            "optimizer": "sgd",
            "schedule": "step",
            "weight_decay": 5e-5,
            "warmup_start_lr": 1e-5,
            "drop_rate": 0.2,
        },
    ),  # fmt: skip
]


@pytest.mark.slow
@pytest.mark.parametrize(("line", "expected"), SEED_LINES)
def test_each_seed_line_resolves_to_the_same_recipe(line, expected, tmp_path):
    proc = run_cli("train", *line.split(), "--output", str(tmp_path / "r"), "--dry-run", "--json")
    plan = json.loads(proc.stdout)
    assert {k: plan["config"][k] for k in expected} == expected
    assert plan["out_dir"] == str(tmp_path / "r") and not (tmp_path / "r").exists()


def test_seed_model_names_are_aliases_everywhere():
    assert canonical_model_name("shufflenetv2") == "shufflenet_v2_x1_0"
    assert canonical_model_name("resnet18") == "resnet18"
    assert resolve_model_names("lenet,mobilenetv3") == ["lenet5", "mobilenet_v3_small"]


@pytest.mark.slow
def test_an_unknown_underscore_flag_is_still_an_error():
    proc = run_cli("train", "--model", "lenet", "--batch_sizes", "64", "--dry-run", check=False)
    assert proc.returncode == 2 and "--batch_sizes" in proc.stderr


@pytest.mark.slow
def test_a_seed_line_trains_one_epoch_on_tiny_data(tmp_path, isolated_cache):
    out = tmp_path / "run"
    run_cli("train", *SEED_LINES[0][0].split(), "--data", "synthetic", "--epochs", "1", "--max-train-samples", "128",
            "--no-progress", "--output", str(out))  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "shufflenet_v2_x1_0" and summary["status"] == "completed"
