"""Architectures that torchvision lacks, from timm (Inception-ResNet-v2, MobileNetV1).

timm models already follow the contract; ``TimmNet`` only moves the classifier out to ``fc`` so
that every model's head has the same names.
"""

from __future__ import annotations

from torch import nn

from cnnbench.models._registry import register_model
from cnnbench.models.net import TimmNet


def build_timm(timm_name: str, *, num_classes: int, in_chans: int, stem_steps: tuple[tuple[str, str], ...]) -> TimmNet:
    """Build timm's ``timm_name`` (random init, no download) and wrap it; timm adapts ``in_chans`` itself."""
    import timm

    # drop_rate=0: cnnbench owns the head dropout (TimmNet.head_drop), the same way for every model
    raw = timm.create_model(timm_name, pretrained=False, num_classes=num_classes, in_chans=in_chans, drop_rate=0.0)
    source_keys = {id(t): k for k, t in raw.state_dict(keep_vars=True).items()}
    first_conv = raw.pretrained_cfg["first_conv"]
    fc = raw.get_classifier()
    raw.reset_classifier(0)  # forward_head(pre_logits=True) now ends at the pooled features
    model = TimmNet(
        raw,
        nn.Identity(),
        fc,
        first_conv=f"features.{first_conv}",
        stem_steps=tuple((kind, f"features.{path}") for kind, path in stem_steps),
    )
    model.source_key_map = {
        source_keys[id(t)]: k for k, t in model.state_dict(keep_vars=True).items() if id(t) in source_keys
    }
    return model


@register_model(source="timm", input_size=299, weights="inception_resnet_v2.tf_in1k")
def inception_resnet_v2(**kw) -> TimmNet:
    """Inception-ResNet-v2 (Szegedy et al. 2017), timm's port of the TensorFlow model."""
    steps = (("stride", "conv2d_1a.conv"), ("pool", "maxpool_3a"), ("pool", "maxpool_5a"))
    return build_timm("inception_resnet_v2", stem_steps=steps, **kw)


@register_model(source="timm", source_name="mobilenetv1_100", weights="mobilenetv1_100.ra4_e3600_r224_in1k")
def mobilenet_v1(**kw) -> TimmNet:
    """MobileNetV1 1.0× (depthwise-separable convolutions), timm's ``mobilenetv1_100``."""
    return build_timm("mobilenetv1_100", stem_steps=(("stride", "conv_stem"),), **kw)
