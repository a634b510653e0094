"""Registry: names, groups, resolution, duplicates, model_info, argument validation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnbench.errors import ConfigError, ModelError
from cnnbench.models import (
    ClassifierNet,
    create_model,
    default_input_size,
    list_models,
    model_groups,
    model_info,
    register_model,
    resolve_model_names,
)
from cnnbench.models import _registry as registry

REQUIRED = [
    "lenet5",
    "alexnet",
    "vgg11",
    "vgg16",
    "vgg19",
    "googlenet",
    "inception_v3",
    "inception_resnet_v2",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnext50_32x4d",
    "wide_resnet50_2",
    "densenet121",
    "squeezenet1_1",
    "shufflenet_v2_x1_0",
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "mnasnet1_0",
    "efficientnet_b0",
    "efficientnet_b4",
    "efficientnet_v2_s",
]


def test_every_required_model_is_registered() -> None:
    assert set(REQUIRED) <= set(list_models())


def test_list_models_filters_with_fnmatch_and_sorts() -> None:
    assert list_models("mobilenet*") == ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]
    assert list_models("vgg1?") == ["vgg11", "vgg16", "vgg19"]
    assert list_models("nothing*") == []


def test_groups_name_registered_models_in_the_studies_order() -> None:
    groups = model_groups()
    assert groups["seed-mnist"] == [
        "lenet5", "alexnet", "vgg11", "googlenet", "resnet18",
        "squeezenet1_1", "shufflenet_v2_x1_0", "mobilenet_v3_small", "mnasnet1_0", "efficientnet_b0",
    ]  # fmt: skip
    assert groups["seed-caltech"] == ["vgg19", "inception_resnet_v2", "mobilenet_v2", "efficientnet_b4"]
    registered = set(list_models())
    for name, members in groups.items():
        assert set(members) <= registered, name
    assert {"classic", "lightweight"} <= set(groups)


def test_resolve_expands_groups_names_and_patterns_without_duplicates() -> None:
    names = resolve_model_names("seed-mnist, resnet50,resnet18")
    assert names[:10] == model_groups()["seed-mnist"] and names[10:] == ["resnet50"]
    assert resolve_model_names("efficientnet*") == ["efficientnet_b0", "efficientnet_b4", "efficientnet_v2_s"]
    assert resolve_model_names(["vgg11", "lenet5"]) == ["vgg11", "lenet5"]
    assert resolve_model_names("all") == list_models()


def test_resolve_unknown_name_lists_close_matches() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'resnet19'.*resnet18"):
        resolve_model_names("seed-mnist,resnet19")
    with pytest.raises(ModelError, match="matches no registered model"):
        resolve_model_names("xception*")
    with pytest.raises(ModelError, match="no model named"):
        resolve_model_names(" , ")


def test_a_group_where_one_model_is_expected_is_named_as_a_group() -> None:
    with pytest.raises(ModelError, match=r"'seed-mnist' is a group of 10 models .*takes one model"):
        registry.get_spec("seed-mnist")


def test_duplicate_registration_raises() -> None:
    def resnet18(**kw):  # same name as the registered torchvision builder
        raise AssertionError("never built")

    with pytest.raises(ModelError, match="already registered"):
        register_model(source="torchvision")(resnet18)


def test_a_new_builder_gets_the_whole_pipeline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    @register_model(input_size=32)
    def tiny_cnn(num_classes: int, in_chans: int) -> ClassifierNet:
        features = nn.Sequential(nn.Conv2d(in_chans, 8, 3, stride=2, padding=1), nn.MaxPool2d(2), nn.MaxPool2d(2))
        pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        steps = (("pool", "features.2"), ("pool", "features.1"), ("stride", "features.0"))
        return ClassifierNet(features, pool, nn.Linear(8, num_classes), first_conv="features.0", stem_steps=steps)

    assert "tiny_cnn" in list_models() and default_input_size("tiny_cnn") == 32
    model = create_model("tiny_cnn", num_classes=3, in_chans=1, input_size=16)
    # 16 -> 8 (conv) -> 4 -> 2 (pools): already 2×2, nothing changes; a width of 8 would end on 1.
    assert model.cnnbench_meta.adaptation == []
    model = create_model("tiny_cnn", num_classes=3, in_chans=1, input_size=(16, 8))
    assert model.cnnbench_meta.adaptation == ["features.2 (MaxPool2d) removed"]
    assert model.cnnbench_meta.final_feature_map == (8, 4, 2)
    assert model(torch.randn(2, 1, 16, 8)).shape == (2, 3)
    model = create_model("tiny_cnn", num_classes=3, in_chans=1, input_size=(8, 12))
    assert model.cnnbench_meta.final_feature_map == (8, 2, 3)  # 8 -> 4 -> 2: one pool removed


def test_model_info_reports_source_params_input_groups_and_weights() -> None:
    info = model_info("mobilenet_v2")
    assert (info.source, info.params, info.default_input) == ("torchvision", 3_504_872, [3, 224, 224])
    assert info.groups == ["seed-caltech", "lightweight"]
    assert info.weights_file == "mobilenet_v2-7ebf99e0.pth"
    timm_info = model_info("inception_resnet_v2")
    assert (timm_info.source, timm_info.default_input) == ("timm", [3, 299, 299])
    assert timm_info.weights_file == "inception_resnet_v2.tf_in1k.safetensors"
    lenet = model_info("lenet5")
    assert (lenet.params, lenet.default_input, lenet.weights_file) == (44_426, [1, 28, 28], None)
    assert default_input_size("efficientnet_b4") == 380


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 0}, "num_classes 0"),
        ({"in_chans": 0}, "in_chans 0"),
        ({"drop_rate": 1.5}, "drop_rate 1.5"),
        ({"head": "conv"}, "head 'conv': expected one of linear, mlp"),
        ({"input_size": "big"}, "input_size 'big'"),
        ({"input_size": 4}, "input_size 4"),
    ],
)
def test_bad_arguments_name_the_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_model("lenet5", **kwargs)


def test_input_too_small_for_any_adaptation_is_a_model_error() -> None:
    with (
        torch.device("meta"),
        pytest.raises(ModelError, match=r"inception_v3 at input 3×16×16 ends on a 1×1 map even after .*at least 28×28"),
    ):
        create_model("inception_v3", num_classes=10, input_size=16)
    with pytest.raises(ModelError, match=r"lenet5 at input 1×8×8 ends on an error"):
        create_model("lenet5", num_classes=10, in_chans=1, input_size=8)


def test_dropout_is_configurable_and_added_where_missing() -> None:
    lenet = create_model("lenet5", num_classes=10, drop_rate=0.3)
    assert [m.p for m in lenet.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    with torch.device("meta"):
        resnet = create_model("resnet18", num_classes=10, input_size=28, drop_rate=0.2)
        plain = create_model("resnet18", num_classes=10, input_size=28)
    assert isinstance(resnet.head_drop, nn.Dropout) and resnet.head_drop.p == 0.2
    assert isinstance(plain.head_drop, nn.Identity)


def test_mlp_head_is_the_caltech_study_head() -> None:
    with torch.device("meta"):
        model = create_model("efficientnet_b4", num_classes=257, head="mlp")
    assert model.num_features == 1000 and model.fc.out_features == 257
    assert isinstance(model.head_drop, nn.Dropout) and model.head_drop.p == 0.5
    layers = [type(m) for m in model.pre_logits]
    assert layers == [nn.Linear, nn.ReLU] and model.pre_logits[0].in_features == 1792
    real = create_model("lenet5", num_classes=7, head="mlp", drop_rate=0.1)
    assert real.forward_head(torch.randn(2, 16, 4, 4), pre_logits=True).shape == (2, 1000)
    assert real.head_drop.p == 0.1
