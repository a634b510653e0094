"""Labels for the recipes of one dataset × architecture trained under several: ``lenet5 [lr=0.002]``."""

from __future__ import annotations

from cnnbench.report.records import RunRecord
from cnnbench.rundir import describe_recipe, recipe_differences


def label_recipes(runs: list[RunRecord], several_studies: bool) -> None:
    """Give every dataset × architecture trained under more than one recipe a label per recipe.

    The label names the recipe keys that differ (``lr=0.002``), preceded by the study directory when
    the runs come from several studies; a difference outside the recipe values (a run directory
    without config.yaml) falls back to the hash.
    """
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for run in runs:
        if run.path is not None:
            groups.setdefault((run.dataset, run.arch), []).append(run)
    for run in runs:
        # a run the study defines but nobody started belongs with its siblings when they share one recipe
        siblings = {r.recipe for r in groups.get((run.dataset, run.arch), [])}
        if run.path is None and run.recipe is None and len(siblings) == 1:
            run.recipe = next(iter(siblings))
    for members in groups.values():
        by_recipe: dict[str | None, list[RunRecord]] = {}
        for run in members:
            by_recipe.setdefault(run.recipe, []).append(run)
        if len(by_recipe) < 2:
            continue
        samples = {h: next((r.config for r in rs if r.config), {}) for h, rs in by_recipe.items()}
        keys = recipe_differences([c for c in samples.values() if c])
        studies = {h: sorted({r.study_dir.name for r in rs}) for h, rs in by_recipe.items()}
        for h, rs in by_recipe.items():
            parts = []
            if several_studies and len({tuple(v) for v in studies.values()}) > 1:
                parts.append(",".join(studies[h]))
            described = describe_recipe(samples[h], keys) if samples[h] and keys else ""
            parts.append(described or f"recipe {h or 'unknown'}")
            label = "; ".join(parts)
            for run in rs:
                run.variant = label
                run.model = f"{run.arch} [{label}]"
