"""Results → the report ``Document``: the order of its sections. Each is built in its own module:

    Findings                          sections/differences.py  findings_section (which differences hold)
    Study                             sections/header.py    header
    Dataset samples                   sections/dataset.py   samples_section
    then per dataset, in the order of sections/dataset.py's dataset_sections:
      Results                         sections/results.py   results_section (+ sections/differences.py)
      Comparisons, Schedules *        sections/results.py   comparisons_section, schedules_section
      Training curves *               sections/curves.py    curves_section
      Accuracy vs. speed and size *   sections/pareto.py    pareto_section
      Per-class results *             sections/classes.py   classes_section
      Feature analysis *              sections/features.py  features_section
      Model summaries                 sections/runs.py      summaries_section
    Runs                              sections/runs.py      runs_section

    * only when at least one model of the dataset has a finished run

What the sections share (``Figures``, ``SectionContext``, the model order) is in sections/context.py.
One pass per dataset of the study; figures come from ``fig_*`` modules and are encoded to PNG by
``Figures``. Runs that did not finish are listed (with their error) and left out of every mean and figure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from cnnbench.report.aggregate import aggregate
from cnnbench.report.document import Document
from cnnbench.report.intervals import PredictionStore
from cnnbench.report.records import Results
from cnnbench.report.sections.context import Figures, model_order
from cnnbench.report.sections.dataset import dataset_context, dataset_sections, samples_section
from cnnbench.report.sections.differences import findings_section
from cnnbench.report.sections.header import header
from cnnbench.report.sections.runs import runs_section
from cnnbench.report.significance import DatasetComparison
from cnnbench.report.style import model_colors


@dataclass
class Built:
    """The document and what building it found worth telling the caller."""

    document: Document
    colors: dict[str, str]
    seconds: dict[str, float]  # per stage
    comparisons: dict[str, DatasetComparison] = field(default_factory=dict)  # by dataset: which differences hold


def build_document(results: Results, title: str | None = None, sample_grid_dir: Path | None = None) -> Built:
    """Assemble every section of the report from ``results``.

    Args:
        title: the page title; default names the datasets.
        sample_grid_dir: where ``draw_sample_grid`` may write its PNG (the report's figures folder).
    """
    start = time.perf_counter()
    figs = Figures()
    colors = model_colors(r.model for r in results.runs)
    rows = aggregate(results.runs)
    datasets = results.datasets()
    order = model_order(results)
    store = PredictionStore()
    contexts = [
        dataset_context(results, d, [r for r in rows if r.dataset == d], order, colors, figs, len(datasets) > 1, store)
        for d in datasets
    ]
    findings = findings_section(contexts)
    sections = [findings] if findings else []
    sections.append(header(results, datasets))
    samples = samples_section(results, figs, sample_grid_dir)
    if samples:
        sections.append(samples)
    for ctx in contexts:
        sections += dataset_sections(results, ctx)
    sections.append(runs_section(results))
    title = title or "cnnbench study report — " + ", ".join(datasets)
    subtitle = (
        f"{len(results.runs)} runs of {len(results.models())} models on {', '.join(datasets)}; "
        f"written {time.strftime('%Y-%m-%d %H:%M')} from {', '.join(str(d) for d in results.study_dirs)}"
    )
    total = time.perf_counter() - start
    seconds = {"figures": round(figs.seconds, 3), "other": round(total - figs.seconds, 3), "figure_count": figs.count}
    comparisons = {ctx.dataset: ctx.comparison for ctx in contexts if ctx.comparison is not None}
    return Built(Document(title, subtitle, sections), colors, seconds, comparisons)
