"""embed_run and `cnnbench embed` on a real run directory: the engine's tiny LeNet-5 run (conftest ``engine_run``)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnbench.analysis.embed import OUTPUT_FILES, embed_run, stratified_indices
from cnnbench.errors import CheckpointError, CnnbenchError, ConfigError
from cnnbench.rundir.analysis import EMBEDDING_KEYS
from conftest import run_cli

N_TEST = 300


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, engine_run):
    """A copy of the session's real engine run (LeNet-5 on 600 generated shapes, 300 test), embedded here."""
    from cnnbench.checkpoints import build_run_model, run_data_config
    from cnnbench.data import load_dataset

    root = tmp_path_factory.mktemp("embed")
    run_dir = Path(shutil.copytree(engine_run, root / "run"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNBENCH_CACHE", str(root / "cache"))
        mp.setenv("CNNBENCH_DATA", str(root / "data-home"))
        model, ds = build_run_model(run_dir), load_dataset(run_data_config(run_dir))
        result = embed_run(run_dir, max_points=10000, perplexity=30, device="cpu", seed=0)
        yield run_dir, model, ds, result


@pytest.mark.slow
def test_writes_the_four_files_and_analysis_json_is_the_result(tiny_run):
    run_dir, _, _, result = tiny_run
    for name in OUTPUT_FILES:
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0
    on_disk = json.loads((run_dir / "analysis.json").read_text())
    expected = json.loads(json.dumps(result.to_dict()))
    assert on_disk == expected
    assert on_disk["model"] == "lenet5" and on_disk["dataset"] == "synthetic" and on_disk["split"] == "test"
    assert on_disk["points"] == N_TEST and on_disk["checkpoint"].endswith("best.pt")
    assert {"model", "data", "features", "tsne", "raw_dbscan", "figures", "total"} <= set(on_disk["seconds"])
    assert (run_dir / "tsne.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_features_are_the_models_pooled_pre_logits_in_split_order(tiny_run):
    run_dir, model, ds, _ = tiny_run
    npz = np.load(run_dir / "embedding.npz")
    assert set(npz.files) == set(EMBEDDING_KEYS)
    n, d = npz["features"].shape
    assert n == N_TEST and d == model.num_features
    assert npz["coords"].shape == (n, 2)
    for key in ("kmeans", "dbscan", "raw_kmeans", "raw_dbscan", "labels", "indices"):
        assert npz[key].shape == (n,)
    np.testing.assert_array_equal(npz["labels"], ds.test.labels[npz["indices"]])
    assert list(npz["classes"]) == list(ds.classes)
    # recompute 8 rows independently: (uint8 / 255 - mean) / std through the model contract
    rows = npz["indices"][:8]
    x = torch.from_numpy(ds.test.images[rows].astype(np.float32) / 255.0)
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.std).view(1, -1, 1, 1)
    with torch.inference_mode():
        expected = model.forward_head(model.forward_features((x - mean) / std), pre_logits=True)
    np.testing.assert_allclose(npz["features"][:8], expected.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_trained_features_separate_the_classes(tiny_run):
    d = tiny_run[3].to_dict()
    assert d["knn_accuracy"] > 0.5  # chance is 0.1
    assert d["raw"]["kmeans"]["ari"] > 0.1 and d["tsne"]["kmeans"]["ari"] > 0.1


@pytest.mark.slow
def test_max_points_takes_a_stratified_sample_and_says_so(tiny_run, tmp_path):
    run_dir, _, ds, _ = tiny_run
    result = embed_run(run_dir, max_points=100, device="cpu", seed=1, perplexity=10)
    assert len(result.labels) == 100
    assert set(np.unique(result.labels)) == set(range(ds.num_classes))
    assert any("100 of the 300 test images" in n for n in result.notes)


def test_stratified_indices_keep_class_proportions():
    labels = np.repeat(np.arange(4), [400, 300, 200, 100])
    idx = stratified_indices(labels, 100, seed=0)
    assert len(idx) == 100 and np.all(np.diff(idx) > 0)
    assert list(np.bincount(labels[idx])) == [40, 30, 20, 10]
    assert len(stratified_indices(labels, 5000)) == 1000
    tiny = stratified_indices(np.repeat(np.arange(10), [91] + [1] * 9), 10, seed=0)
    assert len(np.unique(np.repeat(np.arange(10), [91] + [1] * 9)[tiny])) == 10  # every class kept


@pytest.mark.slow
def test_user_errors_name_the_flag_or_file(tiny_run, tmp_path):
    run_dir = tiny_run[0]
    with pytest.raises(ConfigError, match="--split 'dev'"):
        embed_run(run_dir, split="dev")
    with pytest.raises(ConfigError, match="--max-points 3"):
        embed_run(run_dir, max_points=3)
    with pytest.raises(CnnbenchError, match="does not exist"):
        embed_run(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    (broken / "checkpoint").mkdir()
    (broken / "checkpoint" / "best.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="best.pt"):
        embed_run(broken)


@pytest.mark.slow  # three subprocesses, each importing torch: ~10 s on 2 busy cores
def test_cli_json_prints_one_object_and_errors_exit_2(tiny_run, tmp_path):
    run_dir = tiny_run[0]
    # the module fixture's CNNBENCH_CACHE / CNNBENCH_DATA stay set, so the subprocess finds the same data
    proc = run_cli(
        "embed", str(run_dir), "--json", "--max-points", "120", "--perplexity", "15", "--no-raw", "--threads", "1"
    )
    out = json.loads(proc.stdout)  # exactly one JSON object, nothing else on stdout
    assert out["points"] == 120 and out["raw"] is None and out["tsne"]["perplexity"] == 15
    assert "embedding" in proc.stderr
    bad = run_cli("embed", str(run_dir), "--perplexity", "-1", check=False)
    assert bad.returncode == 2 and "--perplexity -1" in bad.stderr and bad.stdout == ""
    missing = run_cli("embed", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 2 and "nope" in missing.stderr


@pytest.mark.slow
def test_3d_tsne_from_the_cli_with_the_seeds_flag_spelling(tiny_run, tmp_path, capsys, monkeypatch):
    import shutil

    from PIL import Image

    from cnnbench.cli import main

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run[0], run_dir, ignore=shutil.ignore_patterns(*OUTPUT_FILES))
    # feature_analysis.py --perplexity 30 --n_components 3, as the MNIST study's test.sh spells it
    proc = run_cli("embed", str(run_dir), "--n_components", "3", "--perplexity", "15", "--max-points", "120")
    assert "3-D t-SNE map" in proc.stdout and "3-D t-SNE" in proc.stderr
    analysis = json.loads((run_dir / "analysis.json").read_text())
    assert analysis["tsne"]["n_components"] == 3 and analysis["points"] == 120
    assert analysis["tsne"]["knn_accuracy"] > 0.5 and analysis["tsne"]["kmeans"]["ari"] > 0.1  # chance: 0.1, 0
    with np.load(run_dir / "embedding.npz") as npz:
        assert npz["coords"].shape == (120, 3)
    with Image.open(run_dir / "tsne.png") as im3, Image.open(tiny_run[0] / "tsne.png") as im2:
        assert im3.height > 0.8 * im3.width  # three rows of three projections
        assert im2.height < 0.5 * im2.width  # the 2-D default: one row of three panels
    assert json.loads((tiny_run[0] / "analysis.json").read_text())["tsne"]["n_components"] == 2
    monkeypatch.setattr("sys.argv", ["cnnbench"])
    with pytest.raises(SystemExit) as exc:
        main(["embed", str(run_dir), "--n-components", "4"])
    assert exc.value.code == 2 and "--n-components/--n_components: invalid choice: 4" in capsys.readouterr().err


@pytest.mark.slow
def test_data_dir_finds_the_files_of_a_run_trained_with_a_relative_data_dir(tmp_path, monkeypatch, isolated_cache):
    """A run keeps ``--data-dir`` as given: relative, it holds only from where the run trained. From
    elsewhere the error names it, and ``--data-dir`` points the analysis at the files."""
    import dataclasses

    from cnnbench.data import catalog
    from cnnbench.data.idx import write_idx
    from cnnbench.engine import TrainConfig, fit

    rng = np.random.default_rng(0)
    digits = tmp_path / "trained" / "digits"
    digits.mkdir(parents=True)
    for split, n in (("train", 300), ("t10k", 100)):
        write_idx(digits / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(digits / f"{split}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    # nothing is fetched from outside: the mirrors are a closed port on this machine
    spec = dataclasses.replace(catalog.SPECS["mnist"], mirrors=("http://127.0.0.1:9/",), system_paths=())
    monkeypatch.setitem(catalog.SPECS, "mnist", spec)
    monkeypatch.chdir(tmp_path / "trained")
    cfg = TrainConfig(
        model="lenet5", data="mnist", data_dir="digits", epochs=1, precise_bn_samples=0, device="cpu", progress=False
    )
    assert fit(cfg, tmp_path / "run", quiet=True)["status"] == "completed"
    monkeypatch.chdir(tmp_path)  # elsewhere: no "digits" here
    with pytest.raises(CnnbenchError, match=r"digits[\s\S]*--data-dir"):
        embed_run(tmp_path / "run", max_points=60, device="cpu")
    result = embed_run(tmp_path / "run", max_points=60, device="cpu", data_dir=digits)
    assert result.features.shape[0] == 60 and (tmp_path / "run" / "analysis.json").is_file()
