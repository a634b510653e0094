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
    ],
)
def test_invalid_options_name_the_flag(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**values)


def test_target_accuracy_accepts_percent():
    assert TrainConfig(target_accuracy=99).target_accuracy == pytest.approx(0.99)
    assert TrainConfig(target_accuracy=0.9).target_accuracy == pytest.approx(0.9)


def test_from_dict_rejects_unknown_keys_listing_allowed():
    with pytest.raises(ConfigError, match="unknown key 'epoch'.*allowed keys: model, data"):
        TrainConfig.from_dict({"epoch": 3}, "study.yaml: recipe")


def test_hash_ignores_progress_but_not_recipe():
    a = TrainConfig()
    assert a.hash() == TrainConfig(progress=False).hash()
    assert a.hash() != TrainConfig(lr=0.01).hash()
