"""A dataset's "Accuracy vs. speed and size" section: the Pareto plots of test accuracy against GPU
throughput (else CPU latency, saying so) and against model size.
"""

from __future__ import annotations

from typing import Any

from cnnbench.report import fig_pareto
from cnnbench.report.aggregate import AggregateRow
from cnnbench.report.document import Paragraph, Section
from cnnbench.report.sections.context import SectionContext


def pareto_section(ctx: SectionContext) -> Section:
    blocks: list[Any] = _pareto_speed_blocks(ctx)
    size = _pareto_points(ctx.finished, "size_mb")
    if len(size) >= 2:
        title = "Accuracy vs. model size"
        blocks.append(_pareto_figure(ctx, "pareto-size", size, "model size (MB, fp32)", False, title, "model size"))
    blocks.append(
        Paragraph(
            "A model is on the frontier (black ring, dashed line) when no other model is both at least as accurate "
            "and at least as fast (or small).",
            "note",
        )
    )
    return Section("Accuracy vs. speed and size" + ctx.suffix, ctx.anchor("pareto"), blocks)


def _pareto_speed_blocks(ctx: SectionContext) -> list[Any]:
    """Accuracy against GPU throughput; against CPU latency (saying so) when no GPU figure was measured."""
    speed = _pareto_points(ctx.finished, "gpu_throughput")
    if len(speed) >= 2:
        title = "Accuracy vs. GPU throughput"
        return [_pareto_figure(ctx, "pareto-speed", speed, "GPU throughput (images/s)", True, title, "GPU throughput")]
    latency = _pareto_points(ctx.finished, "cpu_latency_ms")
    if len(latency) < 2:
        return [Paragraph("No speed was measured for two or more models: no accuracy-vs-speed plot.", "note")]
    return [
        Paragraph(
            "No GPU throughput was measured in this study: the speed axis is CPU latency at batch 1 instead.",
            "note",
        ),
        _pareto_figure(
            ctx,
            "pareto-speed",
            latency,
            "CPU latency at batch 1 (ms)",
            False,
            "Accuracy vs. CPU latency (no GPU throughput measured)",
            "CPU latency",
        ),
    ]


def _pareto_points(rows: list[AggregateRow], key: str) -> list[fig_pareto.ParetoPoint]:
    """One point per aggregate row with a positive ``key`` mean: (that mean, test accuracy in %) ± std."""
    out = []
    for r in rows:
        acc, x = r.stats["test_accuracy"], r.stats[key]
        if acc.mean is None or x.mean is None or x.mean <= 0:
            continue
        out.append(
            fig_pareto.ParetoPoint(
                r.model,
                x.mean,
                acc.mean * 100,
                None if x.std is None else x.std,
                None if acc.std is None else acc.std * 100,
            )
        )
    return out


def _pareto_figure(
    ctx: SectionContext,
    name: str,
    points: list[fig_pareto.ParetoPoint],
    x_label: str,
    maximize_x: bool,
    title: str,
    what: str,
) -> Any:
    return ctx.figs.image(
        ctx.name(name),
        lambda: fig_pareto.fig_pareto(points, ctx.colors, x_label=x_label, maximize_x=maximize_x, title=title),
        f"accuracy against {what} with the Pareto frontier",
    )
