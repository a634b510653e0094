"""Every registered model, timm style: forward/backward on small inputs, the contract, adaptation."""

from __future__ import annotations

import pytest
import torch

from cnnbench.models import MIN_FINAL_MAP, ClassifierNet, create_model, default_input_size, list_models, model_info

ALL = list_models()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Batch-2 passes gain nothing from intra-op threads, and with other jobs on the two cores,
    # two OpenMP threads spin-wait on each other (25x slower for LeNet-5 when the CPU is shared).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _check_contract(model: torch.nn.Module, x: torch.Tensor, num_classes: int) -> None:
    # forward is defined once, as forward_head(forward_features(x)); no model may override it
    assert type(model).forward is ClassifierNet.forward
    model.train()
    feats = model.forward_features(x)  # (B, C, h, w)
    assert feats.ndim == 4 and min(feats.shape[2:]) >= MIN_FINAL_MAP
    assert tuple(feats.shape[1:]) == tuple(model.cnnbench_meta.final_feature_map)
    logits = model.forward_head(feats)
    assert logits.shape == (x.shape[0], num_classes)
    assert torch.isfinite(logits).all()
    emb = model.forward_head(feats, pre_logits=True)
    assert emb.shape == (x.shape[0], model.num_features)
    logits.float().pow(2).mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without a gradient: {no_grad[:5]}"
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients: {bad[:5]}"


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_28x28_grey(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=1, input_size=28)
    _check_contract(model, torch.randn(2, 1, 28, 28), 10)


@pytest.mark.parametrize("name", ALL)
def test_forward_backward_64x64_rgb(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_chans=3, input_size=64)
    _check_contract(model, torch.randn(2, 3, 64, 64), 7)


@pytest.mark.parametrize("name", ALL)
def test_native_size_is_untouched_and_params_match_library(name: str) -> None:
    # Shapes only (meta device): the architecture at its native input, 1000 classes, RGB.
    size = default_input_size(name)
    with torch.device("meta"):
        model = create_model(name, input_size=size, in_chans=3 if name != "lenet5" else 1,
                             num_classes=1000 if name != "lenet5" else 10)  # fmt: skip
    assert model.cnnbench_meta.adaptation == []
    params = sum(p.numel() for p in model.parameters())
    info = model_info(name)
    assert params == info.params
    if info.source == "torchvision":
        import torchvision

        with torch.device("meta"):
            kwargs = {"aux_logits": False, "init_weights": True} if name in ("googlenet", "inception_v3") else {}
            ref = torchvision.models.get_model(info.source_name, weights=None, **kwargs)
        assert params == sum(p.numel() for p in ref.parameters())
    elif info.source == "timm":
        import timm

        with torch.device("meta"):
            ref = timm.create_model(info.source_name)
        assert params == sum(p.numel() for p in ref.parameters())


# Published parameter counts (torchvision / timm model cards) at 3×224×224 and 1000 classes.
REFERENCE_PARAMS = {
    "resnet18": 11_689_512,
    "vgg19": 143_667_240,
    "mobilenet_v2": 3_504_872,
    "efficientnet_b0": 5_288_548,
}


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_reference_parameter_counts(name: str) -> None:
    model = create_model(name, num_classes=1000, in_chans=3, input_size=224)
    assert sum(p.numel() for p in model.parameters()) == REFERENCE_PARAMS[name]
    assert model.cnnbench_meta.adaptation == []


def test_lenet5_matches_the_mnist_study() -> None:
    model = create_model("lenet5", num_classes=10, in_chans=1, input_size=28)
    assert sum(p.numel() for p in model.parameters()) == 44_426
    assert model.num_features == 84
    assert model.cnnbench_meta.final_feature_map == (16, 4, 4)


@pytest.mark.parametrize(
    ("name", "size", "expected_changes"),
    [
        ("resnet18", 28, ["features.maxpool (MaxPool2d) removed"]),
        ("resnet18", 32, ["features.maxpool (MaxPool2d) removed"]),
        ("resnet18", 64, []),
        (
            "vgg11",
            28,
            [
                "features.20 (MaxPool2d) removed",
                "features.15 (MaxPool2d) removed",
                "global_pool 7×7→3×3 and pre_logits.0 25088→4608 inputs "
                "(the 3×3 map was only repeated to fill the 7×7 grid)",
            ],
        ),
        (
            "alexnet",
            28,
            [
                "features.0 stride 4→2",
                "features.12 (MaxPool2d) removed",
                "global_pool 6×6→2×2 and pre_logits.1 9216→1024 inputs "
                "(the 2×2 map was only repeated to fill the 6×6 grid)",
                "weights initialised as torchvision's VGG (He for convolutions, N(0, 0.01) for linear layers)",
            ],
        ),
        ("mobilenet_v3_small", 32, ["features.0.0 stride 2→1"]),
        ("densenet121", 28, ["features.pool0 (MaxPool2d) removed", "features.conv0 stride 2→1"]),
        ("inception_v3", 64, ["features.Conv2d_1a_3x3.conv stride 2→1"]),
    ],
)
def test_small_input_adaptation_is_recorded(name: str, size: int, expected_changes: list[str]) -> None:
    with torch.device("meta"):
        model = create_model(name, num_classes=10, in_chans=3, input_size=size)
    assert model.cnnbench_meta.adaptation == expected_changes
    fmap = model.cnnbench_meta.final_feature_map
    assert 2 <= min(fmap[1:]) <= 4


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "mobilenet_v2", "lenet5"])
def test_unadapted_models_fail_or_collapse_at_28(name: str) -> None:
    # Why adaptation exists: the library architecture ends on a 1×1 map or raises at 28×28.
    from cnnbench.models import feature_map_shape, get_spec

    spec = get_spec(name)
    with torch.device("meta"):
        raw = spec.builder(num_classes=10, in_chans=1)
    if name == "lenet5":
        assert feature_map_shape(raw, 1, (28, 28)) == (16, 4, 4)
        return
    try:
        shape = feature_map_shape(raw, 1, (28, 28))
    except RuntimeError:
        return
    assert min(shape[1:]) < MIN_FINAL_MAP


def test_non_square_input_and_channels_last() -> None:
    model = create_model("resnet18", num_classes=5, in_chans=3, input_size=(28, 56)).eval()
    x = torch.randn(2, 3, 28, 56)
    with torch.no_grad():
        ref = model(x)
        out = model.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert model.cnnbench_meta.final_feature_map == (512, 2, 4)


@pytest.mark.parametrize("name", ["lenet5", "squeezenet1_1", "mobilenet_v1"])
def test_forward_equals_head_of_features_in_eval(name: str) -> None:
    model = create_model(name, num_classes=4, in_chans=1, input_size=32).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.forward_head(model.forward_features(x)))


def test_alexnet_from_scratch_at_small_inputs_takes_vggs_initialisation_and_stays_torchvisions_at_224():
    torch.manual_seed(0)
    small = create_model("alexnet", num_classes=10, in_chans=1, input_size=28)
    conv = small.features[3]  # 64 -> 192, 5×5: He normal, fan-out
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert float(conv.weight.std()) == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)
    linear = small.fc
    assert float(linear.weight.std()) == pytest.approx(0.01, rel=0.05) and float(linear.bias.abs().max()) == 0
    assert any("initialised as torchvision's VGG" in a for a in small.cnnbench_meta.adaptation)
    torch.manual_seed(0)
    native = create_model("alexnet", num_classes=10, in_chans=3)  # 224: torchvision's own, untouched
    assert native.cnnbench_meta.adaptation == []
    bound = (1 / (native.fc.in_features)) ** 0.5  # PyTorch's default: uniform(±1/sqrt(fan_in))
    assert float(native.fc.weight.abs().max()) <= bound < float(small.fc.weight.abs().max())  # normal tails


@pytest.mark.parametrize("name", ["efficientnet_b0", "mnasnet1_0"])
def test_a_classifier_for_fewer_classes_starts_at_chance_not_at_torchvisions_1000_class_scale(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, in_chans=1, input_size=28)
    bound = 1 / model.fc.in_features**0.5  # PyTorch's default Linear init: uniform(±1/sqrt(fan_in))
    assert float(model.fc.weight.abs().max()) <= bound
    assert any("classifier initialised by its input size" in n for n in model.cnnbench_meta.notes)
    model.train()
    x = torch.randn(32, 1, 28, 28)
    loss = torch.nn.functional.cross_entropy(model(x), torch.randint(0, 10, (32,)))
    assert float(loss) == pytest.approx(2.30, abs=0.25)  # ln 10: a fresh classifier at chance
    with torch.device("meta"):
        native = create_model(name)  # 1,000 classes: torchvision's own rule, no note
    assert not any("classifier initialised" in n for n in native.cnnbench_meta.notes)
