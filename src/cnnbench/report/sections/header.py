"""The "Study" section at the top of the report: study directories, runs, command, times, device and
CPU load, GPU set-ups, data, budget and recipe; the warnings a reader needs before comparing numbers
(unfinished runs, unreadable files, timed work, several recipes, duplicate seeds, deliberate deviations);
library versions and each study definition.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from cnnbench.errors import CnnbenchError
from cnnbench.report.aggregate import aggregate
from cnnbench.report.document import Bullets, Code, Details, Paragraph, Section, Table
from cnnbench.report.records import Results, RunRecord
from cnnbench.report.sections.context import distinct, gpu_setups
from cnnbench.report.tables import key_value_table
from cnnbench.rundir import RunFiles, StudyFiles
from cnnbench.rundir.files import read_data_info
from cnnbench.rundir.layout import STUDY_FILE

# config.yaml keys that state a run's budget and recipe in the header
_RECIPE_KEYS = (
    "epochs",
    "max_steps",
    "time_budget_s",
    "patience",
    "target_accuracy",
    "stop_at_target",
    "val_every_steps",
    "lr_find_steps",
    "max_train_samples",
    "batch_size",
    "lr",
    "optimizer",
    "weight_decay",
    "warmup_epochs",
    "drop_rate",
    "label_smoothing",
    "augment",
    "amp",
    "image_size",
    "pretrained",
    "finetune",
    "test_batch_size",
)


def header(results: Results, datasets: Sequence[str]) -> Section:
    blocks: list[Any] = [key_value_table("study-header", _header_items(results, datasets))]
    not_ok = [r for r in results.runs if not r.ok]
    if not_ok:
        blocks.append(
            Paragraph(
                f"{len(not_ok)} of {len(results.runs)} runs did not finish "
                f"({', '.join(sorted({r.status for r in not_ok}))}); they are listed under Runs and left out of "
                "every mean and figure.",
                "warn",
            )
        )
    if results.problems:
        blocks.append(Paragraph("Files that could not be read, or were read twice:", "warn"))
        blocks.append(Bullets(results.problems, "warn"))
    blocks += _recipe_blocks(results)
    versions = _versions_table(results)
    if versions is not None:
        blocks.append(Details("Library versions", [versions]))
    for study in results.studies:
        if study.text:
            blocks.append(Details(f"Study definition: {StudyFiles(study.path).study}", [Code(study.text)]))
    return Section("Study", "study", blocks)


def _header_items(results: Results, datasets: Sequence[str]) -> list[tuple[str, str]]:
    """The study header's rows: what ran, when, on what, with which data and budget."""
    items: list[tuple[str, str]] = [
        ("Study directories", ", ".join(str(d) for d in results.study_dirs)),
        ("Runs", ", ".join(f"{n} {status}" for status, n in results.status_counts().items())),
        ("Datasets", ", ".join(datasets)),
        ("Models", ", ".join(results.models())),
        ("Schedules", ", ".join(results.schedules())),
        ("Seeds", ", ".join(str(s) for s in sorted({r.seed for r in results.runs if r.seed is not None}))),
    ]
    command = _first_key(results, ("command", "cmd"))
    items.append(("Command", command or f"not recorded in {STUDY_FILE}"))
    created = _first_key(results, ("created", "started", "date"))
    if created:
        items.append(("Study started", created))
    finished = _finish_times(results.runs)
    if finished:
        items.append(("Runs finished", finished))
    items.append(("Report written", time.strftime("%Y-%m-%d %H:%M:%S %Z")))
    device = distinct(_device_text(r.summary.get("device")) for r in results.runs if r.summary)
    items.append(("Device", device or "not recorded"))
    cpu = _cpu_text([r.summary.get("device") for r in results.runs if r.summary])
    if cpu:
        items.append(("CPU threads and load", cpu))
    items += _speed_devices(results)
    for dataset in datasets:
        info = _data_info(results.for_dataset(dataset))
        if info:
            items.append((f"Data: {dataset}", info))
    budget = _budget_text(results)
    if budget:
        items.append(("Budget and recipe", budget))
    return items


def _recipe_blocks(results: Results) -> list[Any]:
    """What a reader must know before comparing numbers: timed work, several recipes, duplicate seeds,
    and where the study's recipe differs on purpose from the seed study it reproduces."""
    blocks: list[Any] = []
    procedure = _procedure_text([r for r in results.runs if r.ok])
    if procedure:
        blocks.append(Paragraph(procedure))
    budgets = sorted({float(r.config["time_budget_s"]) for r in results.runs if r.config.get("time_budget_s")})
    if budgets:
        blocks.append(
            Paragraph(
                f"Equal-time study (--time-budget {' / '.join(f'{b:g}' for b in budgets)} s per run): the number "
                "of optimiser steps of each run was fixed by timing a few steps on this machine, so its accuracies "
                "depend on the machine and on how busy it was. Runs with fixed epochs or steps do not.",
                "warn",
            )
        )
    variants = sorted({(r.arch, r.variant) for r in results.runs if r.variant})
    if variants:
        blocks.append(
            Paragraph(
                "Some models were trained under more than one recipe; each recipe is its own row, labelled with "
                "the settings that differ, and runs of different recipes are never averaged together:",
                "warn",
            )
        )
        blocks.append(Bullets([f"{arch} [{label}]" for arch, label in variants], "warn"))
    duplicates = [
        f"{row.model} ({row.schedule}): {', '.join(row.duplicates)} repeat(s) a seed already counted; left out of means"
        for row in aggregate(results.runs)
        if row.duplicates
    ]
    if duplicates:
        blocks.append(Paragraph("Runs with the same recipe and the same seed (counted once):", "warn"))
        blocks.append(Bullets(duplicates, "warn"))
    for study in results.studies:
        deviations = study.definition.get("deviations")
        if isinstance(deviations, list) and deviations:
            name = study.definition.get("preset") or study.definition.get("name") or study.path.name
            blocks.append(Paragraph(f"Where this study ({name}) differs on purpose from the seed study's recipe:"))
            blocks.append(Bullets([str(d) for d in deviations]))
    return blocks


def _procedure_text(runs: Sequence[RunRecord]) -> str | None:
    """The procedure every model went through, when it is more than fixed work: the range test that picked
    each learning rate, and the target each run trained to (None for fixed-length runs with given rates)."""
    tuned = [r for r in runs if isinstance(r.summary.get("lr_find"), dict)]
    to_target = [r for r in runs if r.config.get("stop_at_target") is True]
    if not tuned and not to_target:
        return None

    def values(rs: Sequence[RunRecord], get) -> str:
        return " / ".join(dict.fromkeys(str(get(r)) for r in rs))

    def share(rs: Sequence[RunRecord]) -> str:
        return "every run" if len(rs) == len(runs) else f"{len(rs)} of {len(runs)} runs"

    parts = ["Procedure, the same for every model of a comparison (its fairness rule: equal procedure, not equal "
             "constants):"]  # fmt: skip
    if tuned:
        steps = values(tuned, lambda r: r.summary["lr_find"].get("steps"))
        parts.append(
            f"{share(tuned)} took its learning rate from a range test of {steps} optimiser steps with the same "
            "ramp and pick rule (the Tuning section shows each curve and pick);"
        )
    if to_target:
        target = values(to_target, lambda r: f"{float(r.config.get('target_accuracy') or 0):.0%}")
        every = values(to_target, lambda r: f"{r.config['val_every_steps']} steps" if r.config.get("val_every_steps")
                       else "epoch")  # fmt: skip
        cap = values(to_target, lambda r: f"{r.config['max_steps']} steps" if r.config.get("max_steps")
                     else f"{r.config.get('epochs')} epochs")  # fmt: skip
        parts.append(
            f"{share(to_target)} trained until its validation accuracy first reached {target} (validated every "
            f"{every}, at most {cap}) and stopped there, so the results rank the models by the images "
            "and seconds it took (as DAWNBench and MLPerf Training rank), with test accuracy at the stop."
        )
    else:
        parts.append("then trained for the recipe's fixed length.")
    return " ".join(parts)


def _first_key(results: Results, keys: Sequence[str]) -> str | None:
    for study in results.studies:
        for key in keys:
            value = study.definition.get(key)
            if value:
                return " ".join(value) if isinstance(value, list) else str(value)
    return None


def _finish_times(runs: Sequence[RunRecord]) -> str | None:
    stamps = []
    for run in runs:
        if run.path is not None and RunFiles(run.path).summary.is_file():
            stamps.append(RunFiles(run.path).summary.stat().st_mtime)
    if not stamps:
        return None
    lo, hi = min(stamps), max(stamps)
    fmt = "%Y-%m-%d %H:%M"
    return time.strftime(fmt, time.localtime(lo)) + (
        "" if hi - lo < 60 else " to " + time.strftime(fmt, time.localtime(hi))
    )


def _device_text(device: Any) -> str | None:
    if device is None:
        return None
    if isinstance(device, dict):
        name = device.get("name") or device.get("type")
        memory = f"{device['memory_gb']} GB" if device.get("memory_gb") else None
        return " ".join(str(x) for x in (name, memory) if x)
    return str(device)


def _cpu_text(devices: list[Any]) -> str | None:
    """Threads, OpenMP spin setting and the 1-minute load average at the end of training, over the runs.

    Accuracies do not depend on the load (the work is fixed); times and throughputs do.
    """
    cpu = [d for d in devices if isinstance(d, dict) and d.get("type") == "cpu" and d.get("torch_threads")]
    if not cpu:
        return None
    threads = distinct(str(d["torch_threads"]) for d in cpu)
    spin = distinct(
        f"OMP_WAIT_POLICY={d['omp_wait_policy']}"
        if d.get("omp_wait_policy")
        else f"GOMP_SPINCOUNT={d['omp_spin_count']}"
        for d in cpu
        if d.get("omp_wait_policy") or d.get("omp_spin_count")
    )
    loads = [float(d["load_average"]) for d in cpu if d.get("load_average") is not None]
    load = (
        f"load average {min(loads):.1f}–{max(loads):.1f} at the end of training on {_cores_text(cpu)} cores"
        if loads
        else "load not recorded"
    )
    return "; ".join(x for x in (f"{threads} torch threads", spin, load) if x) + " (times depend on the load)"


def _cores_text(cpu: list[dict[str, Any]]) -> str:
    return distinct(str(d.get("cpu_count")) for d in cpu) or "?"


def _speed_devices(results: Results) -> list[tuple[str, str]]:
    gpus = gpu_setups(_speeds(results))
    out = []
    if gpus:
        out.append(("GPU throughput measured on", gpus))
    if len(gpus.split("; ")) > 1:
        out.append(("Warning", "GPU throughput comes from different GPUs or settings: compare it only within one"))
    return out


def _speeds(results: Results) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for s in results.speed_files:
        seen[s.get("_path", str(id(s)))] = s
    for r in results.runs:
        if r.speed:
            seen[r.speed.get("_path", str(id(r.speed)))] = r.speed
    return list(seen.values())


def _data_info(runs: Sequence[RunRecord]) -> str | None:
    for run in runs:
        if run.path is None:
            continue
        try:
            info = read_data_info(run.path)
        except CnnbenchError:
            continue
        if info:
            return _flatten(info)
    return None


def _flatten(info: dict[str, Any], limit: int = 14) -> str:
    """The scalar facts of a data.json, one level deep: "source: ...; train: 54000; ..."."""
    parts = []
    for key, value in info.items():
        if isinstance(value, dict):
            inner = [
                f"{k}={v}" for k, v in value.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)
            ]
            if inner:
                parts.append(f"{key}: " + ", ".join(inner[:8]))
        elif isinstance(value, (list, tuple)):
            if 0 < len(value) <= 4 and all(isinstance(v, (int, float)) for v in value):
                parts.append(f"{key}: {list(value)}")
            elif key in ("classes", "skipped", "notes"):
                parts.append(f"{key}: {len(value)}")
        elif value is not None and not isinstance(value, bool):
            parts.append(f"{key}: {value}")
    return "; ".join(parts[:limit])


def _budget_text(results: Results) -> str | None:
    values: dict[str, list[str]] = defaultdict(list)
    for run in results.runs:
        config = run.config
        for key in _RECIPE_KEYS:
            if key in config and config[key] is not None:
                text = str(config[key])
                if text not in values[key]:
                    values[key].append(text)
    for study in results.studies:
        for key, value in study.definition.items():
            if "budget" in str(key) and value is not None and str(value) not in values[str(key)]:
                values[str(key)].append(str(value))
    parts = [f"{k} = {' / '.join(v)}" for k, v in values.items() if v]
    return "; ".join(parts) if parts else None


def _versions_table(results: Results) -> Table | None:
    versions: dict[str, list[str]] = defaultdict(list)
    for run in results.runs:
        for lib, ver in (run.summary.get("versions") or {}).items():
            if ver is not None and str(ver) not in versions[lib]:
                versions[lib].append(str(ver))
    if not versions:
        return None
    return key_value_table("versions", [(lib, ", ".join(v)) for lib, v in versions.items()])
