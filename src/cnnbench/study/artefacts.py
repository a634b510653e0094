"""What a study writes beside its runs: study.yaml, the sample images and the augmentation preview of the
report, the speed of each model (speed/<model>.json), and the feature analysis of each model's best run.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from cnnbench.errors import CnnbenchError
from cnnbench.rundir import STATUS_OK, RunFiles, StudyFiles
from cnnbench.rundir.analysis import best_checkpoint_differs
from cnnbench.rundir.files import read_json_file
from cnnbench.rundir.summary import read_summary_json
from cnnbench.study.datasets import dataset_for
from cnnbench.study.plan import PlannedRun
from cnnbench.study.spec import StudySpec
from cnnbench.utils.io import atomic_write_json, atomic_write_text, read_json


def write_study_file(spec: StudySpec, out: Path, models, runs: list[PlannedRun], shard, command) -> None:
    """study.yaml: the resolved definition, the models and runs it expands to, and how it was started."""
    resolved = spec.to_dict()
    resolved.update(resolved_models=models, shard=list(shard) if shard else None, command=command)
    resolved["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    resolved["runs"] = [r.run_id for r in runs]
    atomic_write_text(StudyFiles(out).study, yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True))


def measure_speed(spec: StudySpec, planned: PlannedRun, out: Path, log) -> None:
    """Speed of each model at its run's input size, once per study (speed/<model>.json)."""
    from cnnbench.bench import measure_model

    summary = read_summary_json(StudyFiles(out).run(planned.run_id))
    size = summary.get("input_size")
    path = StudyFiles(out).speed(planned.model)
    if path.exists():
        try:
            if read_json(path).get("input", [None, None])[1] == size:
                return
        except CnnbenchError:
            pass
    dataset = dataset_for(planned.config)
    c = dataset.image_shape[0]
    try:
        result = measure_model(
            planned.model,
            (c, size, size),
            num_classes=dataset.num_classes,
            device=planned.config.device,
            onnx=spec.onnx,
        )
    except Exception as exc:  # a speed measurement never fails the study
        log(f"speed of {planned.model} could not be measured: {type(exc).__name__}: {exc}")
        return
    atomic_write_json(path, result.to_dict())


def embed_best_runs(spec: StudySpec, out: Path, log) -> None:
    """t-SNE + clustering for the best run (by validation accuracy) of each dataset × model."""
    from cnnbench.analysis import embed_run

    best: dict[tuple[str, str], tuple[float, Path]] = {}
    for run_dir in sorted(StudyFiles(out).runs.glob("*")):
        if not RunFiles(run_dir).summary.exists():
            continue
        try:
            s = read_summary_json(run_dir)
        except CnnbenchError:
            continue
        if s.get("status") not in STATUS_OK or s.get("best_val_accuracy") is None:
            continue
        key = (s["dataset"], s["model"])
        if key not in best or s["best_val_accuracy"] > best[key][0]:
            best[key] = (s["best_val_accuracy"], run_dir)
    for (_, model), (_, run_dir) in sorted(best.items()):
        if _analysis_is_current(run_dir):
            continue
        t0 = time.perf_counter()
        try:
            embed_run(run_dir, max_points=spec.embed_max_points)
        except Exception as exc:  # analysis of one model never fails the study
            reason = str(exc) if isinstance(exc, CnnbenchError) else f"{type(exc).__name__}: {exc}"
            log(
                f"feature analysis of {run_dir.name} failed: {reason}; the study goes on "
                f"(--embed-max-points sets the points analysed per model, --no-embed skips the analysis)"
            )
            continue
        log(f"feature analysis of {model} ({run_dir.name}): {time.perf_counter() - t0:.1f} s")


def _analysis_is_current(run_dir: Path) -> bool:
    """An analysis.json newer than the run's summary, made from the run's best checkpoint as it is now."""
    files = RunFiles(run_dir)
    if not files.analysis.exists() or files.analysis.stat().st_mtime < files.summary.stat().st_mtime:
        return False
    try:
        recorded = read_json_file(files.analysis).get("checkpoint_sha256")
    except (CnnbenchError, AttributeError):
        return False  # unreadable: analysed again
    return not best_checkpoint_differs(run_dir, recorded if isinstance(recorded, str) else None)


def write_augmented(runs: list[PlannedRun], out: Path) -> None:
    """The first run's augmentation applied to a few training images (the report's augmentation figure)."""
    from cnnbench.data.augment import training_augment_kind
    from cnnbench.data.preview import AUGMENTED_FILE, preview_augmentation

    if (out / AUGMENTED_FILE).exists() or not runs:
        return
    cfg = runs[0].config
    dataset = dataset_for(cfg)
    kind = training_augment_kind(cfg.augment, dataset.kind)
    # A study without augmentation still gets the figure, marked unused: what the dataset's family of
    # augmentation would do (the seed's Figure 32), so a reader can judge whether to turn it on.
    used = kind != "none"
    preview = preview_augmentation(dataset, kind if used else "auto", cfg.seed, output_size=cfg.image_size)
    if preview is not None:
        preview.used = used
        preview.save(out / AUGMENTED_FILE)


def write_samples(spec: StudySpec, runs: list[PlannedRun], out: Path, notes: list[str], log) -> None:
    """A few training images per class of the first dataset (the report's sample grid)."""
    if StudyFiles(out).samples.exists() or not runs:
        return
    import io

    import numpy as np

    from cnnbench.utils.io import atomic_write_bytes

    dataset = dataset_for(runs[0].config)
    for line in dataset.notes:
        log(line)
        notes.append(line)
    labels = np.asarray(dataset.train.labels)
    per_class = 8 if dataset.num_classes <= 20 else 1
    picks = []
    for c in range(dataset.num_classes):
        idx = np.flatnonzero(labels == c)[:per_class]
        picks.extend(idx.tolist())
    picks = np.array(sorted(picks), dtype=np.int64)[:256]
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        images=np.asarray(dataset.train.images[picks]),
        labels=labels[picks],
        classes=np.array(dataset.classes),
        dataset=np.array(dataset.name),
    )
    atomic_write_bytes(StudyFiles(out).samples, buf.getvalue())
