"""Pretrained weights from local files and caches, with checkpoints the tests write themselves.

conftest sets CNNBENCH_OFFLINE=1: nothing here downloads (test_models_download.py does, from 127.0.0.1).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cnnbench.errors import ModelError, WeightsNotFoundError
from cnnbench.models import (
    check_pretrained_available,
    create_model,
    expected_weight_files,
    find_weights,
    read_state_dict,
)
from cnnbench.models.adapt import adapt_conv_weight


@pytest.fixture
def empty_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point torch hub and the Hugging Face cache at empty folders (never the user's ~/.cache)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


def _torchvision_resnet18_file(folder: Path) -> tuple[torch.nn.Module, Path]:
    import torchvision

    torch.manual_seed(1)
    ref = torchvision.models.resnet18().eval()
    path = folder / "resnet18-f37072fd.pth"  # the basename of torchvision's download URL
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(ref.state_dict(), path)
    return ref, path


def test_torchvision_round_trip_to_grey_input_and_new_classes(tmp_path: Path) -> None:
    ref, _ = _torchvision_resnet18_file(tmp_path)
    model = create_model("resnet18", num_classes=10, in_chans=1, input_size=64, pretrained=tmp_path).eval()
    report = model.cnnbench_meta.load_report
    assert report.loaded == report.total - 2 and report.unexpected == []
    assert report.missing == ["fc.weight", "fc.bias"]
    assert [s.split(":")[0] for s in report.skipped] == ["fc.weight", "fc.bias"]
    assert report.adapted == ["features.conv1.weight: 1 input channel(s) summed over the file's 3"]
    # A grey image through the adapted model == the same image replicated to RGB through the original.
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        r = ref.layer4(
            ref.layer3(ref.layer2(ref.layer1(ref.maxpool(ref.relu(ref.bn1(ref.conv1(x.repeat(1, 3, 1, 1))))))))
        )
        torch.testing.assert_close(model.forward_features(x), r, rtol=1e-4, atol=1e-4)
    assert model.fc.out_features == 10
    assert model.cnnbench_meta.pretrained == str(tmp_path / "resnet18-f37072fd.pth")


def test_timm_round_trip_from_hugging_face_layout_with_mlp_head(tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(2)
    ref = timm.create_model("mobilenetv1_100").eval()
    repo = tmp_path / "mobilenetv1_100.ra4_e3600_r224_in1k"
    repo.mkdir()
    save_file(ref.state_dict(), str(repo / "model.safetensors"))
    model = create_model("mobilenet_v1", num_classes=5, in_chans=1, input_size=64, pretrained=tmp_path, head="mlp")
    model.eval()
    report = model.cnnbench_meta.load_report
    assert report.unexpected == [] and report.adapted and not any("features." in m for m in report.missing)
    assert sorted(report.missing) == ["fc.bias", "fc.weight", "pre_logits.0.bias", "pre_logits.0.weight"]
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            model.forward_features(x), ref.forward_features(x.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-4
        )
    assert model(x).shape == (2, 5)


def test_pretrained_true_offline_reads_the_torch_hub_cache_only(empty_caches: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as err:
        create_model("resnet18", num_classes=10, pretrained=True)
    expected = empty_caches / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    message = str(err.value)
    assert str(expected) in message and "--pretrained none" in message and "CNNBENCH_OFFLINE=1" in message
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in message
    _torchvision_resnet18_file(expected.parent)
    assert find_weights("resnet18", True) == expected
    assert find_weights("resnet18", "none") is None and find_weights("resnet18", False) is None


def test_pretrained_true_reads_the_hugging_face_cache(empty_caches: Path) -> None:
    snapshot = empty_caches / "hf" / "models--timm--inception_resnet_v2.tf_in1k" / "snapshots" / "abc123"
    with pytest.raises(WeightsNotFoundError, match="not in the Hugging Face cache"):
        find_weights("inception_resnet_v2", True)
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").write_bytes(b"")
    assert find_weights("inception_resnet_v2", "cache") == snapshot / "model.safetensors"


def test_missing_file_in_a_directory_names_the_expected_path(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as err:
        create_model("vgg19", pretrained=tmp_path)
    message = str(err.value)
    assert f"expected {tmp_path / 'vgg19-dcbb9e9d.pth'}" in message
    assert "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in message
    assert "--pretrained none" in message
    with pytest.raises(WeightsNotFoundError, match="do not exist"):
        create_model("vgg19", pretrained=tmp_path / "nowhere.pth")


def test_check_pretrained_available_lists_every_missing_file_in_one_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as err:
        check_pretrained_available("seed-caltech", tmp_path)
    lines = str(err.value).splitlines()
    assert lines[0] == "missing pretrained weights for 4 model(s):"
    for name, file in [
        ("vgg19", "vgg19-dcbb9e9d.pth"),
        ("inception_resnet_v2", "inception_resnet_v2.tf_in1k.safetensors"),
        ("mobilenet_v2", "mobilenet_v2-7ebf99e0.pth"),
        ("efficientnet_b4", "efficientnet_b4_rwightman-23ab8bcd.pth"),
    ]:
        assert any(line.strip().startswith(f"{name}: expected {tmp_path / file}") for line in lines), name
    assert "--pretrained none" in lines[-1]
    expected = expected_weight_files("seed-caltech", tmp_path)
    for paths in expected.values():
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        paths[0].write_bytes(b"")  # presence is all the check looks at
    assert check_pretrained_available("seed-caltech", tmp_path) == {k: v[0] for k, v in expected.items()}


def test_lenet5_has_no_published_weights(empty_caches: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="lenet5: has no published pretrained weights"):
        create_model("lenet5", pretrained=True)


def test_cnnbench_checkpoint_round_trip_is_exact(tmp_path: Path) -> None:
    torch.manual_seed(3)
    first = create_model("squeezenet1_1", num_classes=10, in_chans=1, input_size=28).eval()
    path = tmp_path / "best.pt"
    torch.save({"format": "cnnbench-checkpoint-v1", "model": first.state_dict(), "ema": None}, path)
    second = create_model("squeezenet1_1", num_classes=10, in_chans=1, input_size=28, pretrained=path).eval()
    report = second.cnnbench_meta.load_report
    assert (report.loaded, report.missing, report.unexpected, report.skipped) == (report.total, [], [], [])
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(first(x), second(x))
    # The module structure never depends on `pretrained`: a run's checkpoint loads into a plain rebuild.
    plain = create_model("squeezenet1_1", num_classes=10, in_chans=1, input_size=28)
    plain.load_state_dict(second.state_dict())


def test_weights_of_another_model_are_refused(tmp_path: Path) -> None:
    lenet = create_model("lenet5")
    torch.save(lenet.state_dict(), tmp_path / "lenet.pth")
    with pytest.raises(ModelError, match=r"does not hold weights for squeezenet1_1: only 0 of \d+ backbone tensors"):
        create_model("squeezenet1_1", pretrained=tmp_path / "lenet.pth")


def test_damaged_weights_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "resnet18-f37072fd.pth"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ModelError, match=f"weights file {bad}: it is text"):
        create_model("resnet18", pretrained=tmp_path)
    torch.save([1, 2, 3], tmp_path / "list.pth")
    with pytest.raises(ModelError, match="holds no state_dict"):
        read_state_dict(tmp_path / "list.pth")


def test_ddp_and_compile_prefixes_are_stripped(tmp_path: Path) -> None:
    lenet = create_model("lenet5")
    state = {f"module._orig_mod.{k}": v for k, v in lenet.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "w.pth")
    again = create_model("lenet5", pretrained=tmp_path / "w.pth")
    assert again.cnnbench_meta.load_report.loaded == len(state)
    assert torch.equal(again.fc.weight, lenet.fc.weight)


def test_adapt_conv_weight_keeps_the_response_to_equal_channels() -> None:
    w = torch.randn(4, 3, 3, 3)
    grey = torch.rand(1, 1, 8, 8)
    ref = torch.nn.functional.conv2d(grey.repeat(1, 3, 1, 1), w)
    torch.testing.assert_close(torch.nn.functional.conv2d(grey, adapt_conv_weight(w, 1)), ref)
    torch.testing.assert_close(torch.nn.functional.conv2d(grey.repeat(1, 6, 1, 1), adapt_conv_weight(w, 6)), ref)
    assert adapt_conv_weight(w, 5).shape == (4, 5, 3, 3)
    assert torch.equal(adapt_conv_weight(w, 3), w)
