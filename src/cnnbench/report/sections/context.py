"""What every section module shares: ``Figures`` (encodes figures to PNG, names and times them),
``SectionContext`` (one dataset's runs, aggregate rows and selected schedules, and how its sections name
anchors and figures), the study's model order, and small helpers over runs and speed records.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cnnbench.report.aggregate import AggregateRow
from cnnbench.report.document import Image
from cnnbench.report.records import Results, RunRecord
from cnnbench.report.significance import DatasetComparison
from cnnbench.report.style import png_bytes


class Figures:
    """Encodes figures to PNG, names them uniquely, and times the work."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.seconds = 0.0
        self.count = 0

    def image(
        self,
        name: str,
        build: Callable[[], Any],
        alt: str,
        caption: str = "",
        wide: bool = True,
        data: dict[str, str] | None = None,
    ) -> Image:
        start = time.perf_counter()
        png = png_bytes(build())
        self.seconds += time.perf_counter() - start
        self.count += 1
        return Image(self._unique(name), png, alt, caption, wide, dict(data or {}))

    def raw(self, name: str, png: bytes, alt: str, caption: str = "", wide: bool = True) -> Image:
        return Image(self._unique(name), png, alt, caption, wide)

    def _unique(self, name: str) -> str:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "figure"
        candidate, i = stem, 2
        while candidate in self.names:
            candidate, i = f"{stem}-{i}", i + 1
        self.names.add(candidate)
        return candidate


@dataclass
class SectionContext:
    dataset: str
    runs: list[RunRecord]
    rows: list[AggregateRow]
    chosen: dict[tuple[str, str], AggregateRow]
    models: list[str]
    shown: list[AggregateRow]  # one per model: the selected schedule
    finished: list[AggregateRow]  # those with at least one finished run
    schedules: list[str]
    colors: dict[str, str]
    figs: Figures
    target: float | None
    suffix: str
    comparison: DatasetComparison | None = None  # which differences hold (cnnbench.report.significance)
    ranked_by_cost: bool = False  # the runs trained to their target: models in order of the cost to reach it

    def anchor(self, name: str) -> str:
        return _anchor(name, self.dataset) if self.suffix else _anchor(name)

    def name(self, name: str) -> str:
        return f"{self.dataset}_{name}" if self.suffix else name

    def finished_runs(self, model: str, schedule: str | None = None) -> list[RunRecord]:
        schedule = schedule or self.chosen[(self.dataset, model)].schedule
        return [r for r in self.runs if r.model == model and r.schedule == schedule and r.ok and r.path is not None]


def _anchor(*parts: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


def model_order(results: Results) -> list[str]:
    """The study's own model order (study.yaml ``models``), then any others alphabetically."""
    order: list[str] = []
    for study in results.studies:
        # cnnbench run writes the resolved names (groups expanded) as resolved_models
        models = study.definition.get("resolved_models") or study.definition.get("models")
        if isinstance(models, list):
            order += [m for m in models if isinstance(m, str) and m not in order]
    return order + [m for m in results.models() if m not in order]


def common_value(values: Any) -> Any:
    present = [v for v in values if v is not None]
    return present[0] if present and all(v == present[0] for v in present) else (max(present) if present else None)


def common_test_batch(runs: Sequence[RunRecord]) -> int | None:
    """The batch size of the timed test pass (summary.json, else config.yaml), when the runs agree."""
    sizes = set()
    for run in runs:
        value = run.summary.get("test_batch_size", run.config.get("test_batch_size"))
        if isinstance(value, int) and not isinstance(value, bool):
            sizes.add(value)
    return sizes.pop() if len(sizes) == 1 else None


def distinct(values: Any) -> str:
    seen: list[str] = []
    for v in values:
        if v and v not in seen:
            seen.append(v)
    return "; ".join(seen)


def gpu_setups(speeds: list[dict[str, Any]]) -> str:
    """The distinct GPU measurement set-ups (name, dtype, batch) of speed records, '; '-joined."""
    return distinct(
        " ".join(
            str(x)
            for x in (
                s.get("gpu_name"),
                s.get("gpu_dtype"),
                f"batch {s['gpu_batch_size']}" if s.get("gpu_batch_size") else None,
            )
            if x
        )
        for s in speeds
        if s.get("gpu_throughput") is not None
    )
