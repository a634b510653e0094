import re

import pytest

from cnnbench.engine.config import TrainConfig
from cnnbench.errors import ConfigError


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"epochs": -1}, "--epochs -1: expected a whole number ≥ 1"),
        ({"schedule": "linear"}, "--schedule 'linear': expected one of none, cosine, plateau, onecycle, step"),
        ({"optimizer": "lion"}, "--optimizer 'lion': expected one of sgd, adam, adamw"),
        ({"lr": 0}, "--lr 0"),
        ({"val_fraction": 1.0}, "--val-fraction 1.0"),
        ({"finetune": "head"}, "--finetune head: needs --pretrained"),
        ({"label_smoothing": 1.5}, "--label-smoothing 1.5"),
        # data flags are checked by DataConfig, under the same flag names, when the recipe is built
        ({"per_class": 0}, "--per-class 0: expected a whole number ≥ 1"),
        ({"max_train_samples": 2.5}, "--max-train-samples 2.5: expected a whole number ≥ 1"),
        ({"data_image_size": 4}, "--data-image-size 4: expected a whole number ≥ 8"),
        ({"val_fraction": 0}, "--val-fraction 0: a training run validates on a held-out slice of train"),
        ({"data": "fashon-mnist"}, "--data 'fashon-mnist': unknown dataset (did you mean fashion-mnist?)"),
    ],
)
def test_invalid_options_name_the_flag(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainConfig(**values)


def test_target_accuracy_accepts_percent():
    assert TrainConfig(target_accuracy=99).target_accuracy == pytest.approx(0.99)
    assert TrainConfig(target_accuracy=0.9).target_accuracy == pytest.approx(0.9)


@pytest.mark.parametrize(
    "value, message",
    [
        (1.5, "--target-accuracy 1.5: ambiguous"),  # was read silently as 1.5 %, stopping at the first pass
        (150, "--target-accuracy 150: expected a number > 0 and ≤ 100"),  # the value typed, not 1.5
        (0, "--target-accuracy 0: expected a number > 0"),
    ],
)
def test_a_target_that_is_neither_a_fraction_nor_a_percentage_is_refused_as_typed(value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        TrainConfig(target_accuracy=value)


def test_from_dict_rejects_unknown_keys_listing_allowed():
    with pytest.raises(ConfigError, match="unknown key 'epoch'.*allowed keys: model, data"):
        TrainConfig.from_dict({"epoch": 3}, "study.yaml: recipe")


def test_hash_ignores_progress_but_not_recipe():
    a = TrainConfig()
    assert a.hash() == TrainConfig(progress=False).hash()
    assert a.hash() != TrainConfig(lr=0.01).hash()


def test_data_flags_are_defined_once_by_data_config():
    """TrainConfig's data fields take DataConfig's defaults, and ``cnnbench data``'s flags do too."""
    import argparse
    import dataclasses

    from cnnbench.cli.data import add_data_arguments
    from cnnbench.data.config import RUN_DATA_FLAGS, DataConfig

    train_fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    data_fields = {f.name: f for f in dataclasses.fields(DataConfig)}
    parser = argparse.ArgumentParser()
    add_data_arguments(parser)
    cli_defaults = vars(parser.parse_args([]))
    for flag, field in RUN_DATA_FLAGS.items():
        assert train_fields[flag].default == data_fields[field].default, flag
        if flag in cli_defaults and flag != "data":
            assert cli_defaults[flag] == data_fields[field].default, flag
    cfg = TrainConfig(data="Fashion_MNIST", val_fraction=0.2, strict_data=True, data_image_size=64)
    data = cfg.data_config()
    assert (data.name, data.val_fraction, data.strict, data.image_size) == ("fashion-mnist", 0.2, True, 64)
    assert data.split_seed == 0  # every run of a study sees the same split


def test_a_range_test_of_a_billion_steps_is_refused_before_it_starts():
    with pytest.raises(ConfigError, match=re.escape("--lr-find-steps 1000000000: expected a number ≥ 10 and ≤ 10000")):
        TrainConfig(lr_find_steps=1_000_000_000)
