"""Architectures from torchvision, wrapped once per head layout into ``ClassifierNet``.

Two layouts cover torchvision's classifiers:

- *named trunk + fc* (ResNet, ResNeXt, Wide ResNet, GoogLeNet, Inception-v3, ShuffleNetV2): the
  trunk's child modules in forward order, then average pool, optional dropout, ``fc``;
- *features + classifier* (AlexNet, VGG, DenseNet, SqueezeNet, MobileNetV2/V3, MNASNet,
  EfficientNet): ``features``, the model's own pool, and its ``classifier`` split into hidden
  layers (``pre_logits``), the dropout before the last layer (``head_drop``) and the last layer.

Auxiliary classifiers of GoogLeNet and Inception-v3 are not built (they only matter for the
original training recipe and would break torch.compile/CUDA graphs).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

from torch import nn

from cnnbench.models._registry import register_model
from cnnbench.models.adapt import adapt_first_conv
from cnnbench.models.net import ClassifierNet

Layout = Callable[[nn.Module], ClassifierNet]
Steps = tuple[tuple[str, str], ...]


def _avg_pool(pool: nn.Module | None = None) -> nn.Sequential:
    # (B, C, h, w) -> (B, C) by default; VGG/AlexNet keep their adaptive 7×7 / 6×6 pool: (B, C·49)
    return nn.Sequential(pool if pool is not None else nn.AdaptiveAvgPool2d(1), nn.Flatten(1))


def trunk_and_fc(names: Sequence[str], first_conv: str, stem_steps: Steps, dropout: str | None = None) -> Layout:
    """Layout of models whose forward calls named children in order, then pool → (dropout) → fc."""

    def layout(raw: nn.Module) -> ClassifierNet:
        features = nn.Sequential(OrderedDict((n, getattr(raw, n)) for n in names))
        return ClassifierNet(
            features,
            _avg_pool(getattr(raw, "avgpool", None)),
            raw.fc,
            head_drop=getattr(raw, dropout) if dropout else None,
            first_conv=f"features.{first_conv}",
            stem_steps=tuple((kind, f"features.{path}") for kind, path in stem_steps),
        )

    return layout


def features_and_classifier(
    first_conv: str,
    stem_steps: Steps | Callable[[nn.Sequential], Steps],
    trunk: str = "features",
    final_relu: bool = False,
) -> Layout:
    """Layout of models with ``features`` (or ``layers``) and a ``classifier`` Sequential."""

    def layout(raw: nn.Module) -> ClassifierNet:
        features: nn.Sequential = getattr(raw, trunk)
        if final_relu:  # DenseNet applies ReLU after norm5 in forward()
            features.add_module("relu5", nn.ReLU(inplace=True))
        layers = list(raw.classifier) if isinstance(raw.classifier, nn.Sequential) else [raw.classifier]
        last = max(i for i, m in enumerate(layers) if isinstance(m, (nn.Linear, nn.Conv2d)))
        fc, after = layers[last], layers[last + 1 :]
        before = layers[:last]
        head_drop = before.pop() if before and isinstance(before[-1], nn.Dropout) else None
        logits_before_pool = isinstance(fc, nn.Conv2d)  # SqueezeNet: [Dropout, Conv2d, ReLU, AdaptiveAvgPool2d]
        pool = next((m for m in after if isinstance(m, nn.AdaptiveAvgPool2d)), getattr(raw, "avgpool", None))
        steps = stem_steps(features) if callable(stem_steps) else stem_steps
        return ClassifierNet(
            features,
            _avg_pool(pool),
            fc,
            pre_logits=nn.Sequential(*before) if before else None,
            head_drop=head_drop,
            first_conv=f"features.{first_conv}",
            stem_steps=tuple((kind, f"features.{path}") for kind, path in steps),
            logits_before_pool=logits_before_pool,
        )

    return layout


def _pools_from_last(features: nn.Sequential) -> Steps:
    # VGG has no stem: drop max-pools from the last one back. Dropping the first ones instead would
    # run the 64/128-channel convs at full resolution, 4-16x the compute at 28x28.
    return tuple(("pool", str(i)) for i, m in reversed(list(enumerate(features))) if isinstance(m, nn.MaxPool2d))


RESNET = trunk_and_fc(
    ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"),
    first_conv="conv1",
    stem_steps=(("pool", "maxpool"), ("stride", "conv1")),
)
GOOGLENET = trunk_and_fc(
    (
        "conv1",
        "maxpool1",
        "conv2",
        "conv3",
        "maxpool2",
        "inception3a",
        "inception3b",
        "maxpool3",
        "inception4a",
        "inception4b",
        "inception4c",
        "inception4d",
        "inception4e",
        "maxpool4",
        "inception5a",
        "inception5b",
    ),  # fmt: skip
    first_conv="conv1.conv",
    stem_steps=(("pool", "maxpool1"), ("stride", "conv1.conv"), ("pool", "maxpool2")),
    dropout="dropout",
)
INCEPTION_V3 = trunk_and_fc(
    (
        "Conv2d_1a_3x3",
        "Conv2d_2a_3x3",
        "Conv2d_2b_3x3",
        "maxpool1",
        "Conv2d_3b_1x1",
        "Conv2d_4a_3x3",
        "maxpool2",
        "Mixed_5b",
        "Mixed_5c",
        "Mixed_5d",
        "Mixed_6a",
        "Mixed_6b",
        "Mixed_6c",
        "Mixed_6d",
        "Mixed_6e",
        "Mixed_7a",
        "Mixed_7b",
        "Mixed_7c",
    ),  # fmt: skip
    first_conv="Conv2d_1a_3x3.conv",
    stem_steps=(("stride", "Conv2d_1a_3x3.conv"), ("pool", "maxpool1"), ("pool", "maxpool2")),
    dropout="dropout",
)
SHUFFLENET = trunk_and_fc(
    ("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5"),
    first_conv="conv1.0",
    stem_steps=(("pool", "maxpool"), ("stride", "conv1.0")),
)
ALEXNET = features_and_classifier(
    "0",
    # conv1 is 11×11 stride 4: halve it first, then drop the last pool (cheaper than the stem pool)
    (("stride", "0"), ("pool", "12"), ("stride", "0"), ("pool", "2")),
)
VGG = features_and_classifier("0", _pools_from_last)
DENSENET = features_and_classifier("conv0", (("pool", "pool0"), ("stride", "conv0")), final_relu=True)
SQUEEZENET = features_and_classifier("0", (("pool", "2"), ("stride", "0")))
MOBILENET = features_and_classifier("0.0", (("stride", "0.0"),))  # MobileNetV2/V3, EfficientNet: stem conv
MNASNET = features_and_classifier("0", (("stride", "0"),), trunk="layers")


def build_torchvision(
    tv_name: str, layout: Layout, *, num_classes: int, in_chans: int, ignore: tuple[str, ...] = (), **kwargs: object
) -> ClassifierNet:
    """Build torchvision's ``tv_name`` (random init, no download) and wrap it with ``layout``.

    Records the map from torchvision's state_dict keys to ours, so that torchvision's published
    checkpoint files load into the wrapper.
    """
    from torchvision import models

    raw = models.get_model(tv_name, weights=None, num_classes=num_classes, **kwargs)
    source_keys = {id(t): k for k, t in raw.state_dict(keep_vars=True).items()}
    model = layout(raw)
    model.source_key_map = {
        source_keys[id(t)]: k for k, t in model.state_dict(keep_vars=True).items() if id(t) in source_keys
    }
    model.ignored_source_prefixes = ignore
    adapt_first_conv(model, in_chans)
    return model


def _he_init(model: nn.Module) -> str:
    """torchvision's VGG initialisation (He normal, fan-out, for convolutions; N(0, 0.01) for linear layers;
    zero biases) in place of PyTorch's default, which shrinks the signal of an 8-layer ReLU net without
    normalisation at every layer: AlexNet from scratch at 28×28 then spends its first ~100 steps near chance.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    return "weights initialised as torchvision's VGG (He for convolutions, N(0, 0.01) for linear layers)"


def _classifier_by_inputs(model: ClassifierNet) -> str:
    """The last layer initialised by its inputs (PyTorch's default, as timm's reset_classifier leaves a new
    head) instead of torchvision's EfficientNet/MNASNet rule, whose range grows as the classes shrink:
    1/√classes, meant for 1,000, starts 10 classes with logits 10× too large (an initial loss of 3.9
    and 6.9 instead of ln 10 = 2.3)."""
    model.fc.reset_parameters()
    return "classifier initialised by its input size (torchvision scales it by the number of classes, for 1,000)"


def _with_classifier_by_inputs(model: ClassifierNet) -> ClassifierNet:
    model.head_init = _classifier_by_inputs  # applied by create_model for any number of classes but 1,000
    return model


@register_model(source="torchvision", weights="alexnet")
def alexnet(**kw) -> ClassifierNet:
    """AlexNet (Krizhevsky et al. 2012), torchvision's single-GPU variant without LRN."""
    model = build_torchvision("alexnet", ALEXNET, **kw)
    model.small_input_init = _he_init  # from scratch below 224 px (docs/models.md, "Small inputs")
    return model


@register_model(source="torchvision", weights="vgg11")
def vgg11(**kw) -> ClassifierNet:
    """VGG-11 without batch norm (Simonyan & Zisserman 2014)."""
    return build_torchvision("vgg11", VGG, **kw)


@register_model(source="torchvision", weights="vgg16")
def vgg16(**kw) -> ClassifierNet:
    """VGG-16 without batch norm."""
    return build_torchvision("vgg16", VGG, **kw)


@register_model(source="torchvision", weights="vgg19")
def vgg19(**kw) -> ClassifierNet:
    """VGG-19 without batch norm (the Caltech-256 study's from-scratch baseline)."""
    return build_torchvision("vgg19", VGG, **kw)


@register_model(source="torchvision", weights="googlenet")
def googlenet(**kw) -> ClassifierNet:
    """GoogLeNet / Inception-v1 with batch norm, without auxiliary classifiers."""
    return build_torchvision(
        "googlenet", GOOGLENET, aux_logits=False, init_weights=True, ignore=("aux1.", "aux2."), **kw
    )


@register_model(source="torchvision", input_size=299, weights="inception_v3")
def inception_v3(**kw) -> ClassifierNet:
    """Inception-v3 without the auxiliary classifier."""
    return build_torchvision(
        "inception_v3", INCEPTION_V3, aux_logits=False, init_weights=True, ignore=("AuxLogits.",), **kw
    )


@register_model(source="torchvision", weights="resnet18")
def resnet18(**kw) -> ClassifierNet:
    """ResNet-18 (He et al. 2015)."""
    return build_torchvision("resnet18", RESNET, **kw)


@register_model(source="torchvision", weights="resnet34")
def resnet34(**kw) -> ClassifierNet:
    """ResNet-34."""
    return build_torchvision("resnet34", RESNET, **kw)


@register_model(source="torchvision", weights="resnet50")
def resnet50(**kw) -> ClassifierNet:
    """ResNet-50 (bottleneck blocks)."""
    return build_torchvision("resnet50", RESNET, **kw)


@register_model(source="torchvision", weights="resnext50_32x4d")
def resnext50_32x4d(**kw) -> ClassifierNet:
    """ResNeXt-50 32×4d (grouped bottlenecks)."""
    return build_torchvision("resnext50_32x4d", RESNET, **kw)


@register_model(source="torchvision", weights="wide_resnet50_2")
def wide_resnet50_2(**kw) -> ClassifierNet:
    """Wide ResNet-50-2 (bottlenecks twice as wide)."""
    return build_torchvision("wide_resnet50_2", RESNET, **kw)


@register_model(source="torchvision", weights="densenet121")
def densenet121(**kw) -> ClassifierNet:
    """DenseNet-121 (Huang et al. 2017)."""
    return build_torchvision("densenet121", DENSENET, **kw)


@register_model(source="torchvision", weights="squeezenet1_1")
def squeezenet1_1(**kw) -> ClassifierNet:
    """SqueezeNet 1.1 (fire modules, 1×1-conv classifier)."""
    return build_torchvision("squeezenet1_1", SQUEEZENET, **kw)


@register_model(source="torchvision", weights="shufflenet_v2_x1_0")
def shufflenet_v2_x1_0(**kw) -> ClassifierNet:
    """ShuffleNetV2 1.0× (channel split and shuffle)."""
    return build_torchvision("shufflenet_v2_x1_0", SHUFFLENET, **kw)


@register_model(source="torchvision", weights="mobilenet_v2")
def mobilenet_v2(**kw) -> ClassifierNet:
    """MobileNetV2 (inverted residuals, linear bottlenecks)."""
    return build_torchvision("mobilenet_v2", MOBILENET, **kw)


@register_model(source="torchvision", weights="mobilenet_v3_small")
def mobilenet_v3_small(**kw) -> ClassifierNet:
    """MobileNetV3-Small."""
    return build_torchvision("mobilenet_v3_small", MOBILENET, **kw)


@register_model(source="torchvision", weights="mobilenet_v3_large")
def mobilenet_v3_large(**kw) -> ClassifierNet:
    """MobileNetV3-Large."""
    return build_torchvision("mobilenet_v3_large", MOBILENET, **kw)


@register_model(source="torchvision", weights="mnasnet1_0")
def mnasnet1_0(**kw) -> ClassifierNet:
    """MNASNet 1.0 (platform-aware NAS)."""
    return _with_classifier_by_inputs(build_torchvision("mnasnet1_0", MNASNET, **kw))


@register_model(source="torchvision", weights="efficientnet_b0")
def efficientnet_b0(**kw) -> ClassifierNet:
    """EfficientNet-B0 (Tan & Le 2019)."""
    return _with_classifier_by_inputs(build_torchvision("efficientnet_b0", MOBILENET, **kw))


@register_model(source="torchvision", input_size=380, weights="efficientnet_b4")
def efficientnet_b4(**kw) -> ClassifierNet:
    """EfficientNet-B4, native 380×380."""
    return _with_classifier_by_inputs(build_torchvision("efficientnet_b4", MOBILENET, **kw))


@register_model(source="torchvision", input_size=384, weights="efficientnet_v2_s")
def efficientnet_v2_s(**kw) -> ClassifierNet:
    """EfficientNetV2-S, native 384×384."""
    return _with_classifier_by_inputs(build_torchvision("efficientnet_v2_s", MOBILENET, **kw))
