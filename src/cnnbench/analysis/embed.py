"""``cnnbench embed``: the features of a trained run, analysed and written into its run directory.

Only ``cnnbench.runs``, ``cnnbench.data`` and the model contract (``forward_features`` then
``forward_head(pre_logits=True)``) are used: never the engine.
"""

from __future__ import annotations

import dataclasses
import io
import os
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cnnbench.analysis.analyze import Analysis, AnalysisConfig, analyze, uses_side_thread
from cnnbench.errors import CnnbenchError, ConfigError
from cnnbench.rundir import check_split
from cnnbench.utils.env import resolve_device
from cnnbench.utils.io import atomic_write_bytes, atomic_write_json, check_writable_dir
from cnnbench.utils.lock import LockOwner, read_owner, stale_reason

if TYPE_CHECKING:  # annotations only: cnnbench.data and cnnbench.runs are imported on first use
    from cnnbench.data import ArraySplit, Dataset, DeviceLoader
    from cnnbench.runs import CheckpointFile, RunDir

#: Files ``embed_run`` writes into the run directory.
OUTPUT_FILES = ("embedding.npz", "analysis.json", "tsne.png", "knn_distance.png")


def stratified_indices(labels: np.ndarray, max_points: int, seed: int = 0) -> np.ndarray:
    """At most ``max_points`` row indices, sorted, drawn per class in proportion to its size (seeded).

    Every class keeps at least one point when ``max_points`` allows. All rows when there are
    no more than ``max_points``.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if max_points >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    # Largest-remainder allocation of max_points over classes, in proportion to their sizes.
    exact = counts * (max_points / n)
    take = np.floor(exact).astype(np.int64)
    if max_points >= len(classes):
        take = np.maximum(take, 1)
    for i in np.argsort(-(exact - take))[: max(0, max_points - int(take.sum()))]:
        take[i] += 1
    while take.sum() > max_points:  # the floor of 1 per class can overshoot: trim the largest
        take[np.argmax(take)] -= 1
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=int(t), replace=False) for c, t in zip(classes, take, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


@torch.inference_mode()
def extract_features(model: torch.nn.Module, loader) -> tuple[np.ndarray, np.ndarray]:
    """Pooled pre-logit features of every batch of ``loader``.

    Args:
        model: a cnnbench model in eval mode (``forward_features``, ``forward_head(pre_logits=True)``).
        loader: yields ``(x (B, C, H, W) float, y (B,) int64)`` on the model's device.

    Returns:
        features (N, num_features) float32 and labels (N,) int64, on the CPU.
    """
    feats, labels = [], []
    for x, y in loader:
        f = model.forward_head(model.forward_features(x), pre_logits=True)  # (B, num_features)
        feats.append(f.flatten(1).float().cpu())
        labels.append(y.cpu())
    if not feats:
        raise ConfigError("the split has no images to embed")
    return torch.cat(feats).numpy(), torch.cat(labels).numpy().astype(np.int64)


def _device_for(run_config: dict, device: str | torch.device | None, notes: list[str]) -> torch.device:
    if device is not None:
        return resolve_device(device)
    wanted = run_config.get("device", "auto") or "auto"
    try:
        return resolve_device(wanted)
    except ConfigError:
        notes.append(f"the run trained with --device {wanted}, which is not available here; used auto")
        return resolve_device("auto")


def embedding_npz_bytes(analysis: Analysis, indices: np.ndarray | None = None) -> bytes:
    """embedding.npz as bytes: features, coords, labels, cluster labels (keys in docs/analysis.md)."""
    arrays: dict[str, np.ndarray] = {
        "features": analysis.features.astype(np.float32),
        "coords": analysis.coords.astype(np.float32),
        "labels": analysis.labels.astype(np.int64),
        "kmeans": analysis.map.kmeans.labels,
        "dbscan": analysis.map.dbscan.labels,
    }
    if analysis.raw is not None:
        arrays["raw_kmeans"] = analysis.raw.kmeans.labels
        arrays["raw_dbscan"] = analysis.raw.dbscan.labels
    if indices is not None:
        arrays["indices"] = np.asarray(indices, dtype=np.int64)
    if analysis.classes is not None:
        arrays["classes"] = np.asarray(analysis.classes, dtype=str)
    # np.savez_compressed's format (a zip of .npy files, np.load reads it) at deflate level 1: for 1,000
    # AlexNet features (4096-D) 0.33 s instead of 0.79 s, for a file 10 % larger.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    return buf.getvalue()


def write_outputs(
    analysis: Analysis,
    out_dir: str | os.PathLike[str],
    indices: np.ndarray | None = None,
    started: float | None = None,
) -> None:
    """Write the two figures, embedding.npz, then analysis.json (last: its presence means all are there).

    Args:
        indices: (N,) rows of the split the points are, saved in embedding.npz.
        started: ``time.perf_counter()`` at the start of the whole job; ``seconds.total`` is then
            the wall time up to writing analysis.json.
    """
    start = time.perf_counter()
    from cnnbench.analysis.figures import figure_png_bytes, plot_knn_distance, plot_tsne_panels

    # matplotlib, once per process (~0.6 s): with the other imports, not with the figures
    analysis.seconds["imports"] = analysis.seconds.get("imports", 0.0) + time.perf_counter() - start
    out = Path(out_dir)
    what = " · ".join(str(v) for v in (analysis.meta.get("model"), analysis.meta.get("dataset")) if v)

    def npz_bytes() -> tuple[bytes, float]:
        begin = time.perf_counter()
        return embedding_npz_bytes(analysis, indices), time.perf_counter() - begin

    # With two cores, embedding.npz is compressed on a side thread while matplotlib draws: zlib works
    # outside the GIL, the figures inside it (1,000 4096-D points: 0.15-0.2 s of deflate hidden). Only
    # the bytes are made there: the file is written here, after the figures, so that a failed figure
    # (or Ctrl-C) leaves no new embedding.npz beside the previous analysis.json.
    side = uses_side_thread(analysis.config.n_jobs) and not analysis.config.legacy
    with ThreadPoolExecutor(1, thread_name_prefix="cnnbench-npz") if side else nullcontext() as pool:
        npz = pool.submit(npz_bytes) if pool is not None else None
        start = time.perf_counter()
        atomic_write_bytes(out / "tsne.png", figure_png_bytes(plot_tsne_panels(analysis, what or None)))
        atomic_write_bytes(out / "knn_distance.png", figure_png_bytes(plot_knn_distance(analysis, what or None)))
        analysis.seconds["figures"] = time.perf_counter() - start
        data, compress = npz.result() if npz is not None else npz_bytes()
    start = time.perf_counter()
    atomic_write_bytes(out / "embedding.npz", data)
    # compressing (beside the figures when on the side thread) and writing; analysis.json, next, takes milliseconds
    analysis.seconds["files"] = compress + time.perf_counter() - start
    if started is not None:
        analysis.seconds["total"] = time.perf_counter() - started
    atomic_write_json(out / "analysis.json", analysis.to_dict())


def embed_run(
    run_dir: str | os.PathLike[str],
    split: str = "test",
    max_points: int = 10000,
    perplexity: float = 30.0,
    device: str | torch.device | None = None,
    seed: int = 0,
    options: AnalysisConfig | None = None,
    batch_size: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> Analysis:
    """Embed a split with a run's selected checkpoint, analyse it, and write the results into the run.

    Writes ``embedding.npz``, ``analysis.json``, ``tsne.png`` and ``knn_distance.png`` into
    ``run_dir`` atomically.

    Args:
        run_dir: a run directory written by ``cnnbench train``.
        split: test, val or train.
        max_points: at most this many points, a stratified seeded sample of the split.
        perplexity: t-SNE perplexity (overrides ``options.perplexity``).
        device: where the model runs; default the run's own device (``auto`` when it is absent here).
        seed: subsampling, t-SNE and clustering seed (overrides ``options.seed``).
        options: further analysis options (DBSCAN grid, k-NN k, raw-feature scores, ...).
        batch_size: images per forward pass; default the run's ``eval_batch_size`` (else 512).
        data_dir: where the dataset files are, instead of where the run found them (a run records
            ``--data-dir`` as it was given, so a relative one only holds from the directory it trained in).
        force: analyse a run that is still training (its ``.train.lock`` is held), with a note; without
            it that is an error, since its best checkpoint may still change.

    Raises:
        CnnbenchError: a missing or foreign run directory, a bad flag, a damaged checkpoint.
    """
    from cnnbench.data import load_dataset
    from cnnbench.runs import config_count, load_run_model, open_run, run_data_config

    _check_flags(split, max_points)
    options = dataclasses.replace(options or AnalysisConfig(), perplexity=perplexity, seed=seed)
    total_start = time.perf_counter()
    seconds: dict[str, float] = {}
    notes: list[str] = []
    run = open_run(run_dir)
    notes.extend(run.notes)  # config.yaml keys that were ignored
    training = _training_holder(run.path)
    if training is not None and not force:
        raise CnnbenchError(
            f"{run.path} is still training ({training.describe()} holds {training.path}): its best checkpoint "
            "may still change; analyse it once the run has ended, or pass --force to analyse the current one"
        )
    check_writable_dir(run.path, flag="RUN_DIR")
    dev = _device_for(run.config, device, notes)

    start = time.perf_counter()
    model, loaded = load_run_model(run, which="best", device=dev, notes=notes)
    seconds["model"] = time.perf_counter() - start
    _checkpoint_used(run, notes)  # the note when there was no best checkpoint
    if training is not None:
        notes.append(
            f"analysed while the run was still training (--force): the best checkpoint of epoch {loaded.epoch}, "
            "which later epochs may replace"
        )

    start = time.perf_counter()
    data_config = run_data_config(run)
    dataset = load_dataset(data_config if data_dir is None else data_config.replace(data_dir=os.fspath(data_dir)))
    data, indices = _sample_split(getattr(dataset, split), split, max_points, seed, notes)
    if len(data) < 10:  # max_points is at least 10: the split itself is this small
        raise ConfigError(
            f"the {split} split of {run.path} holds {len(data)} image(s); t-SNE and clustering need at least 10 "
            "(a run trained with a larger --max-test-samples, or another --split of cnnbench embed)"
        )
    size = (loaded.model_args or run.config["model_args"]).get("input_size")  # the checkpoint's, as the model
    loader = _eval_loader(dataset, data, dev, batch_size or config_count(run, "eval_batch_size", 512), size)
    seconds["data"] = time.perf_counter() - start

    start = time.perf_counter()
    features, labels = _extract_synchronized(model, loader, dev)
    seconds["features"] = time.perf_counter() - start
    del model

    result = analyze(features, labels, options, classes=dataset.classes)
    _add_job_record(result, seconds, notes, _job_meta(run, dataset, split, loaded, dev))
    write_outputs(result, run.path, indices, started=total_start)
    return result


def _check_flags(split: str, max_points: int) -> None:
    """Check ``--split`` and ``--max-points`` before anything is loaded.

    Raises:
        ConfigError: naming the flag, for an unknown split or fewer than 10 points.
    """
    check_split(split)
    if max_points < 10:
        raise ConfigError(f"--max-points {max_points}: expected at least 10")


def _checkpoint_used(run: RunDir, notes: list[str]) -> Path:
    """The checkpoint ``build_run_model(which="best")`` loaded: the best one, else the last (said in ``notes``)."""
    checkpoint = run.checkpoint_path("best")
    if not checkpoint.is_file():
        checkpoint = run.checkpoint_path("last")
        notes.append("the run has no best checkpoint; used the last one")
    return checkpoint


def _sample_split(
    data: ArraySplit, split: str, max_points: int, seed: int, notes: list[str]
) -> tuple[ArraySplit, np.ndarray]:
    """The split cut to a stratified seeded sample of at most ``max_points`` images (said in ``notes``),
    and the (N,) row indices of the images kept."""
    indices = stratified_indices(data.labels, max_points, seed)
    if len(indices) < len(data):
        notes.append(
            f"{len(indices):,} of the {len(data):,} {split} images, a stratified sample (--max-points, --seed)"
        )
        data = data.subset(indices)
    return data, indices


def _eval_loader(
    dataset: Dataset, data: ArraySplit, device: torch.device, batch_size: int, output_size: int | None
) -> DeviceLoader:
    """Batches of ``data`` on ``device``, normalised and sized as the run's model was trained, never augmented."""
    from cnnbench.data import DeviceLoader

    return DeviceLoader(
        data,
        batch_size=batch_size,
        device=device,
        train=False,
        mean=dataset.mean,
        std=dataset.std,
        output_size=output_size,
    )


def _extract_synchronized(
    model: torch.nn.Module, loader: DeviceLoader, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """``extract_features``, then a wait for a GPU's queued work, so that the time taken is all its own."""
    features, labels = extract_features(model, loader)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return features, labels


def _job_meta(
    run: RunDir, dataset: Dataset, split: str, checkpoint: CheckpointFile, device: torch.device
) -> dict[str, Any]:
    """What was embedded, from where, and on what: ``Analysis.meta``, the head of analysis.json."""
    return {
        "model": run.config["model_args"].get("name"),
        "dataset": dataset.name,
        "split": split,
        "run_dir": str(run.path),
        "checkpoint": str(checkpoint.path),
        "checkpoint_epoch": checkpoint.epoch,
        "checkpoint_sha256": checkpoint.sha256,
        "device": str(device),
    }


def _training_holder(run_dir: Path) -> LockOwner | None:
    """The process training ``run_dir`` now (its ``.train.lock`` is held by a live process), or None."""
    owner = read_owner(run_dir / ".train.lock")
    return owner if owner is not None and stale_reason(owner) is None else None


def _add_job_record(result: Analysis, seconds: dict[str, float], notes: list[str], meta: dict[str, Any]) -> None:
    """The job's own stage times and notes go ahead of the analysis's, and ``meta`` becomes its meta. The
    analysis's ``total`` is dropped: ``write_outputs`` sets it over the whole job."""
    result.seconds = {**seconds, **{k: v for k, v in result.seconds.items() if k != "total"}}
    result.notes = notes + result.notes
    result.meta = meta
