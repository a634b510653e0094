"""Fine-tuning helpers: classifier, frozen backbone, parameter groups."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnbench.errors import ModelError
from cnnbench.models import create_model, freeze_backbone, get_classifier, param_groups


def test_get_classifier_is_the_final_layer() -> None:
    model = create_model("lenet5", num_classes=7)
    assert get_classifier(model) is model.fc and model.fc.out_features == 7
    squeeze = create_model("squeezenet1_1", num_classes=4, input_size=32)
    assert isinstance(get_classifier(squeeze), nn.Conv2d) and get_classifier(squeeze).out_channels == 4
    with pytest.raises(ModelError, match="needs a model from cnnbench.models.create_model"):
        get_classifier(nn.Linear(2, 2))


def test_frozen_backbone_trains_the_head_only() -> None:
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=3, in_chans=1, input_size=28)
    freeze_backbone(model, True)
    assert not any(p.requires_grad for p in model.features.parameters())
    assert all(p.requires_grad for n, p in model.named_parameters() if not n.startswith("features."))
    model.train()  # the engine calls train() every epoch: the frozen backbone's BN must stay in eval
    bns = [m for m in model.features.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns) and model.fc.training
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(param_groups(model, lr=0.1, weight_decay=1e-4), lr=0.1, momentum=0.9)
    loss = nn.functional.cross_entropy(model(torch.randn(4, 1, 28, 28)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    opt.step()
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"fc.weight", "fc.bias"}  # BN running stats included: the backbone is untouched
    freeze_backbone(model, False)
    assert all(p.requires_grad for p in model.parameters()) and all(m.training for m in bns)


def test_param_groups_split_head_backbone_and_decay() -> None:
    model = create_model("mobilenet_v3_small", num_classes=5, input_size=32)
    groups = param_groups(model, lr=0.01, backbone_lr_scale=0.1, weight_decay=0.05)
    by_name = {g["name"]: g for g in groups}
    assert list(by_name) == ["head", "head_no_decay", "backbone", "backbone_no_decay"]
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))  # every parameter exactly once
    names = {id(p): n for n, p in model.named_parameters()}
    for g in groups:
        for p in g["params"]:
            assert names[id(p)].startswith("features.") == g["name"].startswith("backbone")
            assert (p.ndim <= 1) == g["name"].endswith("no_decay")
    assert by_name["backbone"]["lr"] == pytest.approx(0.001) and by_name["backbone"]["lr_scale"] == 0.1
    assert by_name["head"]["lr"] == 0.01 and by_name["head"]["weight_decay"] == 0.05
    assert by_name["head_no_decay"]["weight_decay"] == 0.0 and by_name["backbone_no_decay"]["weight_decay"] == 0.0
    torch.optim.AdamW(groups, lr=0.01)  # valid optimiser input


def test_helpers_see_through_compile_and_ddp_style_wrappers() -> None:
    model = create_model("lenet5")
    compiled = torch.compile(model)  # not run: wrapping only
    assert get_classifier(compiled) is model.fc
    freeze_backbone(compiled, True)
    assert not model.features.conv1.weight.requires_grad
    assert [g["name"] for g in param_groups(compiled, lr=1.0)] == [
        "head",
        "head_no_decay",
        "backbone",
        "backbone_no_decay",
    ]
