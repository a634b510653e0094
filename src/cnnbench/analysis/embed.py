"""``cnnbench embed``: the features of a trained run, analysed and written into its run directory.

Only ``cnnbench.checkpoints``, ``cnnbench.data`` and the model contract (``forward_features`` then
``forward_head(pre_logits=True)``) are used: never the engine.
"""

from __future__ import annotations

import contextlib
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
from cnnbench.checkpoints import CheckpointFile, RunDir, config_count, load_run_model, open_run
from cnnbench.errors import CnnbenchError, ConfigError
from cnnbench.rundir import RunFiles, check_split
from cnnbench.rundir.layout import EMBED_FILES, TRAIN_LOCK_FILE
from cnnbench.utils.env import resolve_device
from cnnbench.utils.io import atomic_write_bytes, atomic_write_json, check_writable_dir
from cnnbench.utils.lock import LockOwner, read_owner, stale_reason

if TYPE_CHECKING:  # annotations only: cnnbench.data is imported on first use
    from cnnbench.data import ArraySplit, Dataset, DeviceLoader

#: Files ``embed_run`` writes into the run directory.
OUTPUT_FILES = EMBED_FILES


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
    out = RunFiles(out_dir)
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
        atomic_write_bytes(out.tsne_figure, figure_png_bytes(plot_tsne_panels(analysis, what or None)))
        atomic_write_bytes(out.knn_figure, figure_png_bytes(plot_knn_distance(analysis, what or None)))
        analysis.seconds["figures"] = time.perf_counter() - start
        data, compress = npz.result() if npz is not None else npz_bytes()
    start = time.perf_counter()
    atomic_write_bytes(out.embedding, data)
    # compressing (beside the figures when on the side thread) and writing; analysis.json, next, takes milliseconds
    analysis.seconds["files"] = compress + time.perf_counter() - start
    if started is not None:
        analysis.seconds["total"] = time.perf_counter() - started
    atomic_write_json(out.analysis, analysis.to_dict())


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

    Writes ``embedding.npz``, ``analysis.json``, ``tsne.png`` and ``knn_distance.png`` into ``run_dir``.

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
    _check_flags(split, max_points)
    total_start, seconds = time.perf_counter(), {}
    run, training, notes = _open_run(run_dir, force)
    dev = _device_for(run.config, device, notes)
    with _stage(seconds, "model"):
        model, loaded = _load_model(run, dev, training is not None, notes)
    with _stage(seconds, "data"):
        dataset, data, indices = _sample_run_data(run, split, (max_points, seed), data_dir, notes)
        loader = _eval_loader(run, loaded, (dataset, data), dev, batch_size)
    with _stage(seconds, "features"):
        features, labels = _extract_synchronized(model, loader, dev)
    del model
    options = dataclasses.replace(options or AnalysisConfig(), perplexity=perplexity, seed=seed)
    result = analyze(features, labels, options, classes=dataset.classes)
    _add_job_record(result, seconds, notes, _job_meta(run, dataset, split, loaded, dev))
    write_outputs(result, run.path, indices, started=total_start)
    return result


@contextlib.contextmanager
def _stage(seconds: dict[str, float], name: str):
    """``seconds[name]``: the wall time of the block."""
    start = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - start


def _sample_run_data(run: RunDir, split: str, sample: tuple[int, int], data_dir, notes: list[str]):
    """(dataset, the split cut to ``sample`` = (max points, seed), row indices kept) of the run's own data."""
    from cnnbench.checkpoints import run_data_config
    from cnnbench.data import load_dataset

    data_config = run_data_config(run)
    dataset = load_dataset(data_config if data_dir is None else data_config.replace(data_dir=os.fspath(data_dir)))
    data, indices = _sample_split(getattr(dataset, split), split, *sample, notes)
    if len(data) < 10:  # max_points is at least 10: the split itself is this small
        raise ConfigError(
            f"the {split} split of {run.path} holds {len(data)} image(s); t-SNE and clustering need at least 10 "
            "(a run trained with a larger --max-test-samples, or another --split of cnnbench embed)"
        )
    return dataset, data, indices


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
    run: RunDir, loaded: CheckpointFile, data: tuple[Dataset, ArraySplit], device: torch.device, batch_size: int | None
) -> DeviceLoader:
    """Batches of the split ``data = (dataset, split)`` on ``device``, normalised and sized as the checkpoint's
    model was trained (its own input size), never augmented; ``batch_size`` else the run's eval batch, else 512."""
    from cnnbench.data import DeviceLoader

    dataset, split = data
    return DeviceLoader(
        split,
        batch_size=batch_size or config_count(run, "eval_batch_size", 512),
        device=device,
        train=False,
        normalize=(dataset.mean, dataset.std),
        output_size=(loaded.model_args or run.config["model_args"]).get("input_size"),
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


def _load_model(run: RunDir, dev: torch.device, training: bool, notes: list[str]):
    """(the model of the run's best checkpoint, which checkpoint it was), with notes: no best checkpoint
    (the last one used), a run still training (``--force``), config.yaml values the checkpoint overrode."""
    model, loaded = load_run_model(run, which="best", device=dev, notes=notes)
    _checkpoint_used(run, notes)
    if training:
        notes.append(
            f"analysed while the run was still training (--force): the best checkpoint of epoch {loaded.epoch}, "
            "which later epochs may replace"
        )
    return model, loaded


def _open_run(run_dir: str | os.PathLike[str], force: bool) -> tuple[RunDir, LockOwner | None, list[str]]:
    """(the run directory to analyse (writable), the process still training it if one is, the notes so far:
    the keys of its config.yaml that were ignored)."""
    run = open_run(run_dir)
    training = _training_holder(run.path, force)
    check_writable_dir(run.path, flag="RUN_DIR")
    return run, training, list(run.notes)


def _training_holder(run_dir: Path, force: bool) -> LockOwner | None:
    """The process training ``run_dir`` now (its train lock is held by a live process), or None.

    Raises:
        CnnbenchError: the run is still training and ``force`` is not given.
    """
    owner = read_owner(Path(run_dir) / TRAIN_LOCK_FILE)
    if owner is None or stale_reason(owner) is not None:
        return None
    if not force:
        raise CnnbenchError(
            f"{run_dir} is still training ({owner.describe()} holds {owner.path}): its best checkpoint "
            "may still change; analyse it once the run has ended, or pass --force to analyse the current one"
        )
    return owner


def _add_job_record(result: Analysis, seconds: dict[str, float], notes: list[str], meta: dict[str, Any]) -> None:
    """The job's own stage times and notes go ahead of the analysis's, and ``meta`` becomes its meta. The
    analysis's ``total`` is dropped: ``write_outputs`` sets it over the whole job."""
    result.seconds = {**seconds, **{k: v for k, v in result.seconds.items() if k != "total"}}
    result.notes = notes + result.notes
    result.meta = meta
