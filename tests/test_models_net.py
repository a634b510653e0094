"""The ClassifierNet contract: traceable without graph breaks, copyable, mode handling."""

from __future__ import annotations

import copy

import pytest
import torch

from cnnbench.models import create_model


@pytest.mark.parametrize("name", ["lenet5", "squeezenet1_1"])
def test_forward_has_no_graph_breaks(name: str) -> None:
    # torch.compile / CUDA graphs need forward without data-dependent Python control flow or host syncs.
    import torch._dynamo

    torch._dynamo.reset()
    model = create_model(name, num_classes=10, in_chans=1, input_size=28)
    x = torch.randn(2, 1, 28, 28)
    for fn, args, kwargs in [
        (model, (x,), {}),
        (model.forward_head, (model.forward_features(x),), {"pre_logits": True}),
    ]:
        explanation = torch._dynamo.explain(fn)(*args, **kwargs)
        assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons


def test_deepcopy_keeps_meta_and_weights() -> None:
    model = create_model("lenet5", num_classes=10)
    twin = copy.deepcopy(model)  # the engine's EMA is a deepcopy
    assert twin.cnnbench_meta == model.cnnbench_meta and twin.num_features == 84
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), twin.state_dict().values(), strict=True))
    assert twin.fc.weight.data_ptr() != model.fc.weight.data_ptr()


def test_meta_to_dict_is_plain_data() -> None:
    import json

    meta = create_model("resnet18", num_classes=10, in_chans=1, input_size=28).cnnbench_meta.to_dict()
    assert json.loads(json.dumps(meta))["adaptation"] == ["features.maxpool (MaxPool2d) removed"]
    assert meta["final_feature_map"] == (512, 2, 2) and meta["source"] == "torchvision"
