"""A dataset's "Feature analysis" section: the cluster scores (ARI, NMI) of analysis.json and the
t-SNE and k-NN distance figures that ``cnnbench embed`` wrote, from one analysed run per model.
"""

from __future__ import annotations

from typing import Any

from cnnbench.errors import CnnbenchError
from cnnbench.report import fig_features
from cnnbench.report.document import Details, Gallery, Paragraph, Section
from cnnbench.report.records import RunRecord
from cnnbench.report.sections.context import SectionContext
from cnnbench.rundir import RunFiles
from cnnbench.rundir.analysis import ClusterScores, analysis_is_outdated, read_analysis
from cnnbench.rundir.files import read_png


def _epoch(epoch: float | None) -> str:
    return f"epoch {epoch:g}" if epoch is not None else "an earlier epoch"


def _outdated(model: str, run: RunRecord, analysis: ClusterScores) -> Paragraph:
    """The warning for an analysis made from an earlier checkpoint than the run's best one now."""
    best = run.figures.get("best_epoch")
    return Paragraph(
        f"{model}: the feature analysis in {run.path} was made from the checkpoint of "
        f"{_epoch(analysis.checkpoint_epoch)}, older than the run's best checkpoint now"
        f"{f' ({_epoch(best)})' if best is not None else ''}; run cnnbench embed {run.path} again",
        "warn",
    )


def _map_dims_text(scores: dict[str, ClusterScores]) -> str:
    dims = sorted({s.map_dims for s in scores.values()})
    return " or ".join(f"{d}-D" for d in dims) or "2-D"


def features_section(ctx: SectionContext) -> Section:
    blocks: list[Any] = []
    scores: dict[str, ClusterScores] = {}
    panels = []
    knees = []
    for model in ctx.models:
        run = _analysed_run(ctx, model)
        if run is None or run.path is None:
            continue
        try:
            analysis = read_analysis(run.path)
        except CnnbenchError as exc:
            blocks.append(Paragraph(str(exc), "warn"))
            analysis = None
        if analysis is not None:
            scores[model] = analysis
            blocks += [_outdated(model, run, analysis)] if analysis_is_outdated(run.path, analysis) else []
        png = read_png(RunFiles(run.path).tsne_figure)
        if png:
            caption = (
                f"{model} ({run.schedule}, seed {run.seed}): t-SNE of the test-set features, "
                "coloured by true class, by K-means cluster and by DBSCAN cluster"
            )
            panels.append(ctx.figs.raw(ctx.name(f"tsne-{model}"), png, f"{model} t-SNE panels", caption))
        knee = read_png(RunFiles(run.path).knn_figure)
        if knee:
            caption = f"{model}: sorted k-NN distances on the t-SNE map; the knee gives DBSCAN's starting eps"
            knees.append(
                ctx.figs.raw(ctx.name(f"knn-distance-{model}"), knee, f"{model} k-NN distances", caption, False)
            )
    if not scores and not panels:
        text = "No feature analysis in these runs (cnnbench embed RUN_DIR writes analysis.json and tsne.png)."
        return Section("Feature analysis" + ctx.suffix, ctx.anchor("features"), [Paragraph(text, "note")])
    if scores:
        models = [m for m in ctx.models if m in scores]
        blocks.append(
            ctx.figs.image(
                ctx.name("cluster-scores"),
                lambda: fig_features.fig_cluster_scores(models, ctx.colors, scores),
                "ARI and NMI of K-means and DBSCAN per model",
                f"Scores of the {_map_dims_text(scores)} t-SNE map of each model's test-set features. "
                "DBSCAN's eps and min_samples were "
                "chosen by a grid search that maximises ARI, so it uses the labels (as the MNIST study did).",
            )
        )
    if panels:
        blocks.append(Gallery(panels))
    if knees:
        blocks.append(Details("k-NN distance curves (how DBSCAN's eps was found)", [Gallery(knees)]))
    return Section("Feature analysis" + ctx.suffix, ctx.anchor("features"), blocks)


def _analysed_run(ctx: SectionContext, model: str) -> RunRecord | None:
    """The lowest-seed finished run of the selected schedule that has analysis files, else any run of the model."""

    def has(run: RunRecord) -> bool:
        files = RunFiles(run.path) if run.path is not None else None
        return files is not None and (files.analysis.is_file() or files.tsne_figure.is_file())

    preferred = [r for r in ctx.finished_runs(model) if has(r)]
    others = [r for r in ctx.runs if r.model == model and r.ok and has(r)]
    pool = preferred or others
    return min(pool, key=lambda r: (r.schedule, r.seed if r.seed is not None else 0)) if pool else None
