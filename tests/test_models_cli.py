"""`cnnbench models` and `cnnbench summary`, in process (the commands import torch lazily)."""

from __future__ import annotations

import json
import sys

import pytest

from cnnbench.cli import main


@pytest.fixture(autouse=True)
def _restore_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["cnnbench"])  # main(argv) rewrites sys.argv


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(list(argv)) == 0
    out = capsys.readouterr().out
    return json.loads(out)  # exactly one JSON object on stdout


def test_models_json_filters_by_pattern_and_group(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "models", "mobilenet_v3*", "--json")
    assert [m["name"] for m in data["models"]] == ["mobilenet_v3_large", "mobilenet_v3_small"]
    small = data["models"][1]
    assert small["params"] == 2_542_856 and small["default_input"] == [3, 224, 224] and small["source"] == "torchvision"
    assert small["groups"] == ["seed-mnist", "lightweight"] and "seed-caltech" in data["groups"]
    data = _json(capsys, "models", "seed-caltech", "--json")
    assert [m["name"] for m in data["models"]] == ["vgg19", "inception_resnet_v2", "mobilenet_v2", "efficientnet_b4"]


def test_models_table_and_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "resnet1*"]) == 0
    out = capsys.readouterr().out
    assert "resnet18" in out and "11.69M" in out and "resnet34" not in out
    assert main(["models", "resnt"]) == 2
    assert "unknown model 'resnt'" in capsys.readouterr().err
    assert main(["models", "resnet"]) == 0  # the MNIST study's name for resnet18
    assert "resnet18" in capsys.readouterr().out


def test_summary_json(capsys: pytest.CaptureFixture[str]) -> None:
    data = _json(capsys, "summary", "lenet5", "--input", "1x28x28", "--num-classes", "10", "--json")
    assert (data["params"], data["flops"], data["final_feature_map"]) == (44_426, 563_280, [16, 4, 4])
    assert data["adaptation"] == [] and data["layers"][0]["name"] == "features"
    data = _json(capsys, "summary", "vgg11", "--input", "1x28x28", "--num-classes", "10", "--no-layers", "--json")
    assert data["final_feature_map"] == [512, 3, 3] and data["layers"] == []
    assert data["adaptation"][:2] == ["features.20 (MaxPool2d) removed", "features.15 (MaxPool2d) removed"]
    assert data["adaptation"][2].startswith("global_pool 7×7→3×3 and pre_logits.0 25088→4608 inputs")
    assert data["params"] == 44_920_074  # fc6 takes the 3×3 map, not a 7×7 copy of it (129 M → 45 M)


def test_summary_table_and_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", "resnet18", "--input", "1x28x28", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "features.maxpool (MaxPool2d) removed" in out and "512x2x2" in out
    assert main(["summary", "resnet18", "--input", "28x28"]) == 2
    assert "--input '28x28': expected CxHxW" in capsys.readouterr().err


def test_a_mistyped_flag_names_the_flag_it_was_probably_meant_to_be(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--stop-at-targt", "--modle", "lenet5", "--zzz"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "cnnbench train: error: unrecognized arguments: --stop-at-targt --modle lenet5 --zzz" in err
    assert "--stop-at-targt: did you mean --stop-at-target?" in err and "--modle: did you mean --model?" in err
    assert "--zzz: did you mean" not in err  # nothing close: no guess
    with pytest.raises(SystemExit) as exc:
        main(["--bogus"])
    assert exc.value.code == 2 and "cnnbench: error: unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["run", "--dry-run", "--seed", "3"], "--seed: did you mean --seeds?"),  # never a silent --seeds 3
        (["train", "--dry-run", "--epoch", "3"], "--epoch: did you mean --epochs?"),
        (["train", "--dry-run", "--val-frac", "0.2"], "--val-frac: did you mean --val-fraction?"),
    ],
)
def test_a_cut_off_flag_is_an_error_not_a_prefix_match(argv, hint, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "unrecognized arguments" in err and hint in err


def test_a_word_for_a_whole_number_names_the_flag_in_plain_words(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--batch-size", "abc"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "--batch-size/--batch_size/-b: expected a whole number, got 'abc'" in err
    assert "_int" not in err


def test_run_names_a_model_typo_before_looking_for_data(capsys, tmp_path, monkeypatch) -> None:
    """`cnnbench run --models lenet5,nosuchnet`: the typo is the one line, before the default study
    looks for MNIST (and asks its mirrors) or says which data it chose."""
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--models", "lenet5,nosuchnet"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nosuchnet'" in err and "MNIST" not in err and "mnist-sample" not in err
    assert not (tmp_path / "studies").exists()
