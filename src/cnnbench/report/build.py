"""``build_report(study_dirs, out_dir)``: results.csv, aggregate.csv, report.html, report.md and figures/."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnbench.errors import ConfigError
from cnnbench.report.collect import collect
from cnnbench.report.content import build_document
from cnnbench.report.html import render_html
from cnnbench.report.markdown import render_markdown
from cnnbench.report.records import Results
from cnnbench.report.results_csv import ResultsFiles, write_results
from cnnbench.report.sections.dataset import REPORT_TEMP_PREFIX
from cnnbench.rundir.layout import FIGURES_DIR, REPORT_HTML, REPORT_MD
from cnnbench.utils.io import atomic_write_bytes, atomic_write_text, check_writable_dir, remove_dead_temp_files
from cnnbench.utils.lock import DirectoryLock, lock_wait_seconds


@dataclass(frozen=True)
class ReportPaths:
    """Where the report went, and what it found."""

    html: Path
    markdown: Path
    results_csv: Path
    aggregate_csv: Path
    figures_dir: Path
    figures: tuple[Path, ...]
    status_counts: dict[str, int] = field(default_factory=dict)  # runs per status
    seconds: float = 0.0  # wall time of the whole build
    # by dataset: intervals, tests and the sentence of which differences hold (DatasetComparison.to_dict)
    statistics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "html": str(self.html),
            "markdown": str(self.markdown),
            "results_csv": str(self.results_csv),
            "aggregate_csv": str(self.aggregate_csv),
            "figures_dir": str(self.figures_dir),
            "figures": [str(p) for p in self.figures],
            "runs": self.status_counts,
            "seconds": round(self.seconds, 2),
            "statistics": self.statistics,
        }


def default_out_dir(study_dirs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str] | None) -> Path:
    """``--out``, or the study directory itself when there is exactly one.

    Raises:
        ConfigError: several study directories (shards) and no ``--out``.
    """
    if out_dir is not None:
        return Path(out_dir)
    if len(study_dirs) == 1:
        return Path(study_dirs[0])
    raise ConfigError(
        f"--out is required when merging {len(study_dirs)} study directories (where should the merged report go?)"
    )


REPORT_LOCK = ".report.lock"
REPORT_LOCK_WAIT_S = 600.0  # a report takes seconds; longer means the other build hangs ($CNNBENCH_LOCK_WAIT)


def _write_files(results: Results, out: Path, title: str | None) -> ReportPaths:
    """results.csv, aggregate.csv, the figures, report.html and report.md (under the report lock)."""
    _remove_dead_scratch(out)
    files = write_results(results, out)
    figures_dir = out / FIGURES_DIR
    built = build_document(results, title=title, sample_grid_dir=out)
    written = []
    for image in built.document.images():
        path = figures_dir / f"{image.name}.png"
        atomic_write_bytes(path, image.png)
        written.append(path)
    html_path, md_path = out / REPORT_HTML, out / REPORT_MD
    atomic_write_text(html_path, render_html(built.document, built.colors))
    atomic_write_text(md_path, render_markdown(built.document, FIGURES_DIR))
    _remove_stale_figures(figures_dir, written)
    return ReportPaths(
        html=html_path,
        markdown=md_path,
        results_csv=files.results_csv,
        aggregate_csv=files.aggregate_csv,
        figures_dir=figures_dir,
        figures=tuple(written),
        status_counts=results.status_counts(),
        statistics={dataset: c.to_dict() for dataset, c in built.comparisons.items()},
    )


def _remove_stale_figures(figures_dir: Path, written: list[Path]) -> None:
    """Figures of an earlier report that this one did not draw (a model or dataset since removed, fewer
    sample grids): left there, they would look current beside report.md. Only PNGs are the report's."""
    keep = {p.name for p in written}
    if not figures_dir.is_dir():
        return
    for path in figures_dir.glob("*.png"):
        if path.name not in keep:
            with contextlib.suppress(OSError):
                path.unlink()


def _remove_dead_scratch(out: Path) -> None:
    """Scratch folders and temporary files of report builds that were killed (this build holds the lock)."""
    for path in out.glob(f"{REPORT_TEMP_PREFIX}*"):
        shutil.rmtree(path, ignore_errors=True)
    remove_dead_temp_files(out / FIGURES_DIR)


def update_results(study_dir: str | os.PathLike[str]) -> ResultsFiles:
    """Rewrite ``results.csv`` and ``aggregate.csv`` of one study directory from its run directories.

    What ``cnnbench run`` passes to ``run_study(on_results=...)``: cheap (no figures), so it runs
    after every finished run and a killed study still has a complete results.csv.
    """
    return write_results(collect([study_dir]), study_dir)


def build_report(
    study_dirs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    strict: bool = False,
    title: str | None = None,
    results: Results | None = None,
) -> ReportPaths:
    """Read the study directories and write the whole report into ``out_dir``.

    Args:
        study_dirs: one study directory, or several (shards) to merge.
        out_dir: where to write; default: the study directory (required for several).
        strict: an unreadable result file is an error instead of a listed problem.
        title: page title; default names the datasets.
        results: already collected results (skips reading the directories again).

    Raises:
        ResultsError: a directory is missing or holds no runs; with ``strict``, an unreadable file.
        OutputError: ``out_dir`` cannot be written (checked before any work).
    """
    start = time.perf_counter()
    if isinstance(study_dirs, (str, os.PathLike)):
        study_dirs = [study_dirs]
    out_path = default_out_dir(study_dirs, out_dir)
    if results is None:
        results = collect(study_dirs, strict=strict)  # fast: fails on a missing study before creating --out
    out = check_writable_dir(out_path, "--out")
    # one report build at a time per directory (`cnnbench report` beside a study that writes its own):
    # each removes the figures the other would not write
    lock = DirectoryLock(out, REPORT_LOCK)
    lock.acquire(wait_s=lock_wait_seconds(REPORT_LOCK_WAIT_S))
    try:
        paths = _write_files(results, out, title)
    finally:
        lock.release()
    return dataclasses.replace(paths, seconds=time.perf_counter() - start)
