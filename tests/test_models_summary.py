"""summarize: parameters, size, FLOPs (2 × MACs, grouped/depthwise correct), final map, layer table."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnbench.models import create_model, summarize


def test_lenet5_summary_matches_the_mnist_study_table() -> None:
    model = create_model("lenet5", num_classes=10, in_chans=1, input_size=28)
    s = summarize(model, (1, 28, 28))
    assert (s.params, s.trainable_params) == (44_426, 44_426)
    assert s.size_mb == pytest.approx(44_426 * 4 / 2**20, abs=1e-4)
    # MACs: conv1 6·24·24·25 + conv2 16·8·8·150 + fc 256·120 + 120·84 + 84·10 = 281,640
    assert s.flops == 2 * 281_640 and s.macs == 281_640
    assert s.final_feature_map == [16, 4, 4] and s.num_features == 84 and s.adaptation == []
    rows = {r["name"]: r for r in s.layers}
    assert rows["features.conv1"]["output_shape"] == [6, 24, 24] and rows["features.conv1"]["params"] == 156
    assert rows["pre_logits.fc1"]["params"] == 30_840 and rows["fc"]["output_shape"] == [10]
    assert sum(r["params"] for r in s.layers if r["depth"] == 1) == 44_426
    d = s.to_dict()
    assert {"params", "trainable_params", "size_mb", "flops", "final_feature_map", "adaptation", "layers"} <= set(d)


def test_depthwise_and_grouped_convolutions_are_counted_per_group() -> None:
    model = nn.Sequential(
        nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False),  # depthwise: 8·10·10·9 MACs
        nn.Conv2d(8, 16, 3, padding=1, groups=4, bias=False),  # grouped: 16·10·10·(2·9) MACs
    )
    s = summarize(model, (8, 10, 10), layers=False)
    assert s.flops == 2 * (8 * 100 * 9 + 16 * 100 * 18)


@pytest.mark.parametrize(
    ("name", "gmacs"),
    # torchvision's published operation counts (weights.meta["_ops"], GMACs at 3×224×224)
    [("resnet18", 1.814), ("mobilenet_v2", 0.301), ("shufflenet_v2_x1_0", 0.145), ("efficientnet_b0", 0.386)],
)
def test_flops_match_torchvision_published_counts(name: str, gmacs: float) -> None:
    with torch.device("meta"):  # shapes only: no weights allocated
        model = create_model(name)
    assert summarize(model, (3, 224, 224), layers=False).flops / 2e9 == pytest.approx(gmacs, abs=0.001)


def test_summary_at_small_input_reports_the_adaptation_and_trainable_params() -> None:
    from cnnbench.models import freeze_backbone

    model = create_model("resnet18", num_classes=10, in_chans=1, input_size=28)
    freeze_backbone(model)
    s = summarize(model, (1, 28, 28), layers=False)
    assert s.adaptation == ["features.maxpool (MaxPool2d) removed"] and s.final_feature_map == [512, 2, 2]
    assert s.trainable_params == 512 * 10 + 10 and s.layers == []
    assert model.training  # summarize restores the mode it found


def test_meta_and_real_probes_agree() -> None:
    model = create_model("squeezenet1_1", num_classes=10, in_chans=1, input_size=32)
    meta = summarize(model, (1, 32, 32))
    real = summarize(model, (1, 32, 32), device="cpu")
    assert meta.to_dict() == real.to_dict()
    assert meta.final_feature_map == [512, 3, 3]
