"""The Caltech-256 transfer study end to end on a generated Caltech-like tree, at tiny size on the CPU."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from cnnbench.models import expected_weight_files
from conftest import run_cli

PRETRAINED = ("inception_resnet_v2", "mobilenet_v2", "efficientnet_b4")


def _jpeg(path: Path, rng: np.random.Generator, mode: str) -> None:
    w, h = int(rng.integers(60, 110)), int(rng.integers(50, 90))
    rgb = rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8)
    image = Image.fromarray(rgb, "RGB")
    if mode != "RGB":
        image = image.convert(mode)  # grayscale "L" and "CMYK" JPEGs, as Caltech-256 has
    image.save(path, "JPEG", quality=85)


def _caltech_tree(root: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    cats = root / "256_ObjectCategories"
    modes = ["RGB", "RGB", "L", "CMYK"]
    for c, name in enumerate(["001.ak47", "002.american-flag", "003.backpack", "257.clutter"]):
        folder = cats / name
        folder.mkdir(parents=True)
        for i in range(12):
            _jpeg(folder / f"{c + 1:03d}_{i + 1:04d}.jpg", rng, modes[i % 4])
    bad = cats / "002.american-flag" / "002_0099.jpg"
    data = (cats / "002.american-flag" / "002_0001.jpg").read_bytes()
    bad.write_bytes(data[: len(data) // 3])  # a truncated JPEG
    (cats / "001.ak47" / "RENAME2").write_text("rename these")
    nested = cats / "003.backpack" / "extra"
    nested.mkdir()
    _jpeg(nested / "003_9999.jpg", rng, "RGB")  # nested folders are ignored
    return cats, bad


def _save_pretrained(weights: Path) -> dict[str, torch.Tensor]:
    """ImageNet-layout checkpoints as torchvision and timm publish them (random values, our own)."""
    import timm
    import torchvision

    weights.mkdir()
    firsts = {}
    files = expected_weight_files(list(PRETRAINED), weights)
    for name in PRETRAINED:
        path = files[name][0]
        torch.manual_seed(1)
        if name == "inception_resnet_v2":
            from safetensors.torch import save_file

            state = timm.create_model("inception_resnet_v2", pretrained=False).state_dict()
            save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        else:
            state = getattr(torchvision.models, name)().state_dict()
            torch.save(state, path)
        firsts[name] = next(v for k, v in state.items() if v.ndim == 4)  # the stem conv of the backbone
    return firsts


@pytest.mark.slow
def test_caltech_transfer_preset_end_to_end(tmp_path, isolated_cache):
    cats, bad = _caltech_tree(tmp_path / "caltech")
    firsts = _save_pretrained(tmp_path / "weights")
    out = tmp_path / "study"
    proc = run_cli(
        "run",
        "--preset",
        "caltech-transfer",
        "--data",
        "caltech256",
        "--data-dir",
        str(cats.parent),
        "--pretrained-dir",
        str(tmp_path / "weights"),
        "--image-size",
        "64",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--per-class",
        "6",
        "--finetune",
        "head",
        "--max-skip-fraction",
        "0.25",
        "--no-embed",
        "--speed",
        "--out",
        str(out),
        "--no-progress",
        timeout=900,
    )
    with (out / "results.csv").open() as f:
        rows = {r["model"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"vgg19", *PRETRAINED}
    for model, row in rows.items():
        assert row["status"] == "completed", (model, row["error"])
        for key in (
            "test_accuracy",
            "test_mean_class_accuracy",
            "test_top5",
            "size_mb",
            "params",
            "flops",
            "train_time_s",
            "test_time_s",
            "cpu_latency_ms",
        ):
            assert row[key] not in ("", None), (model, key)
        assert float(row["test_top5"]) == 1.0  # 3 classes: the top 5 always hold the truth
    run = out / "runs"
    data = json.loads((run / "caltech256__mobilenet_v2__cosine__s0" / "data.json").read_text())
    assert data["num_classes"] == 3  # 257.clutter excluded by default
    assert data["train_size"] + data["val_size"] == 18  # 6 per class
    assert [Path(s["path"]).name for s in data["skipped"]] == [bad.name]  # the truncated JPEG, listed
    # the pretrained weights were loaded: with a frozen backbone the stem conv equals the file's tensor
    for name in PRETRAINED:
        trained = torch.load(run / f"caltech256__{name}__cosine__s0" / "checkpoint" / "best.pt", weights_only=True)
        assert any(t.shape == firsts[name].shape and torch.equal(t, firsts[name]) for t in trained["model"].values())
        notes = json.loads((run / f"caltech256__{name}__cosine__s0" / "summary.json").read_text())
        assert notes["input_size"] == 64
    vgg = yaml.safe_load((run / "caltech256__vgg19__cosine__s0" / "config.yaml").read_text())
    assert vgg["pretrained"] is None and vgg["finetune"] == "full"  # from scratch, as in the study
    html = (out / "report.html").read_text()
    for model in rows:
        assert model in html
    assert "study finished" in proc.stderr


@pytest.mark.slow
def test_missing_weights_are_listed_at_once_before_any_work(tmp_path):
    proc = run_cli(
        "run",
        "--preset",
        "caltech-transfer",
        "--data",
        "caltech256",
        "--data-dir",
        str(tmp_path),
        "--pretrained-dir",
        str(tmp_path / "empty"),
        "--out",
        str(tmp_path / "out"),
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "missing pretrained weights for 3 model(s)" in proc.stderr
    for name in PRETRAINED:
        assert name in proc.stderr
    assert "--pretrained none" in proc.stderr
    assert not (tmp_path / "out").exists()
