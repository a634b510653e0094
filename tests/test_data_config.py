"""DataConfig validation: every message names the flag and what is allowed."""

from __future__ import annotations

import pytest

from cnnbench.data import DataConfig, list_datasets
from cnnbench.errors import ConfigError


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "imagenet"}, r"--data 'imagenet': unknown dataset; expected one of mnist, fashion-mnist"),
        ({"name": "imagefolder:"}, r"--data imagefolder: expected imagefolder:PATH"),
        ({"val_fraction": 1.0}, r"--val-fraction 1.0: expected a number ≥ 0 and < 1"),
        ({"split_seed": -1}, r"--split-seed -1: expected a whole number ≥ 0"),
        ({"image_size": 4}, r"--data-image-size 4: expected a whole number ≥ 8"),
        ({"per_class": 0}, r"--per-class 0: expected a whole number ≥ 1"),
        ({"split_ratio": 1.0}, r"--split-ratio 1.0: expected a number > 0 and < 1"),
        ({"max_skip_fraction": 2}, r"--max-skip-fraction 2"),
        ({"download_timeout": 0}, r"--download-timeout 0: expected a number > 0"),
        ({"color_mode": "cmyk"}, r"--color-mode 'cmyk': expected one of rgb, gray"),
        ({"synthetic_channels": 2}, r"--synthetic-channels 2: expected one of 1, 3"),
    ],
)
def test_invalid_values_name_the_flag(changes, message):
    with pytest.raises(ConfigError, match=message):
        DataConfig(**changes)


def test_aliases_and_imagefolder_path():
    assert DataConfig("Fashion_MNIST").name == "fashion-mnist"
    assert DataConfig("CIFAR-10").name == "cifar10"
    cfg = DataConfig("imagefolder:/data/My Photos")
    assert cfg.folder_path == "/data/My Photos" and cfg.base_name == "imagefolder"


def test_round_trip_through_dict_and_unknown_key():
    cfg = DataConfig("synthetic", per_class=30, split_ratio=0.8)
    assert DataConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match=r"data_config: unknown key 'colour'; allowed keys: name, data_dir"):
        DataConfig.from_dict({"colour": "rgb"})


def test_list_datasets_names_every_source():
    names = [d["name"] for d in list_datasets()]
    assert names == ["mnist", "fashion-mnist", "cifar10", "mnist-sample", "caltech256", "imagefolder:PATH", "synthetic"]
    kinds = {d["name"]: d["kind"] for d in list_datasets()}
    assert kinds["caltech256"] == "natural" and kinds["mnist-sample"] == "digits"
