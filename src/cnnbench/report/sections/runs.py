"""A dataset's "Model summaries" section (facts and layers from model.json), and the closing "Runs"
section: the runs that did not finish, then every run.
"""

from __future__ import annotations

from typing import Any

from cnnbench.errors import CnnbenchError
from cnnbench.report.document import Details, Paragraph, Section, Table
from cnnbench.report.records import Results
from cnnbench.report.sections.context import SectionContext
from cnnbench.report.tables import fmt_number, runs_table
from cnnbench.rundir import RunFiles
from cnnbench.rundir.files import read_model_summary


def summaries_section(ctx: SectionContext) -> Section:
    from cnnbench.report.document import Cell, Column

    blocks: list[Any] = []
    for model in ctx.models:
        runs = [r for r in ctx.runs if r.model == model and r.path is not None and RunFiles(r.path).model.is_file()]
        if not runs:
            continue
        run = min(runs, key=lambda r: (not r.ok, r.seed if r.seed is not None else 0))
        try:
            summary = read_model_summary(run.path)  # type: ignore[arg-type]
        except CnnbenchError as exc:
            blocks.append(Paragraph(str(exc), "warn"))
            continue
        if not summary:
            continue
        facts = []
        for key, kind in (("params", "count"), ("trainable_params", "count"), ("size_mb", "mb"), ("flops", "count")):
            if isinstance(summary.get(key), (int, float)):
                facts.append(f"{key.replace('_', ' ')}: {fmt_number(summary[key], kind)}")
        if summary.get("final_feature_map"):
            facts.append(f"final feature map: {summary['final_feature_map']}")
        inner: list[Any] = [Paragraph("; ".join(facts), "p")] if facts else []
        adaptation = summary.get("adaptation") or []
        inner.append(
            Paragraph("Small-input adaptation: " + ("; ".join(map(str, adaptation)) if adaptation else "none"), "note")
        )
        layers = summary.get("layers") or []
        if layers:
            keys = [k for k in ("name", "type", "output_shape", "params") if any(k in layer for layer in layers)]
            rows = [
                [
                    Cell(
                        _layer_text(layer.get(k)),
                        layer.get(k) if isinstance(layer.get(k), (int, float)) else _layer_text(layer.get(k)),
                    )
                    for k in keys
                ]
                for layer in layers
                if isinstance(layer, dict)
            ]
            inner.append(
                Table(ctx.anchor(f"layers-{model}"), [Column(k.replace("_", " ")) for k in keys], rows, sortable=False)
            )
        blocks.append(Details(f"{model} — {len(layers)} layers", inner))
    if not blocks:
        blocks.append(Paragraph("No model.json in these runs.", "note"))
    return Section("Model summaries" + ctx.suffix, ctx.anchor("models"), blocks)


def _layer_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def runs_section(results: Results) -> Section:
    blocks: list[Any] = []
    bad = [r for r in results.runs if not r.ok]
    if bad:
        blocks.append(Paragraph(f"{len(bad)} runs did not finish; they are left out of every mean and figure.", "warn"))
        blocks.append(runs_table("runs-failed", bad))
    else:
        blocks.append(Paragraph(f"All {len(results.runs)} runs finished.", "note"))
    blocks.append(Details(f"All {len(results.runs)} runs", [runs_table("runs-all", results.runs)]))
    return Section("Runs", "runs", blocks)
