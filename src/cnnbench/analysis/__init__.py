"""Feature analysis: embeddings of a trained model, t-SNE, K-means and DBSCAN scored by ARI/NMI,
k-NN accuracy (``cnnbench embed``).

Names are loaded on first use, so importing the package costs no numpy, scikit-learn or torch import.
The keys of the files it writes (analysis.json, embedding.npz) are in ``cnnbench.rundir.analysis``.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Analysis": "analyze",
    "AnalysisConfig": "analyze",
    "SpaceAnalysis": "analyze",
    "analyze": "analyze",
    "ClusterScores": "clustering",
    "DbscanCandidate": "dbscan",
    "DbscanResult": "dbscan",
    "dbscan_labels": "dbscan",
    "KMeansResult": "clustering",
    "dbscan_search": "dbscan",
    "kmeans_scores": "clustering",
    "score_clustering": "clustering",
    "embed_run": "embed",
    "extract_features": "embed",
    "stratified_indices": "embed",
    "write_outputs": "embed",
    "OUTPUT_FILES": "embed",
    "plot_knn_distance": "figures",
    "plot_tsne_panels": "figures",
    "find_knee": "knee",
    "knn_accuracy": "knn",
    "Neighbors": "neighbors",
    "nearest_neighbors": "neighbors",
    "TsneResult": "tsne",
    "exact_kl_divergence": "tsne",
    "tsne_2d": "tsne",
    "tsne_map": "tsne",
    "TSNE_COMPONENTS": "tsne",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'cnnbench.analysis' has no attribute {name!r}")
    module_name = _EXPORTS[name]
    module = importlib.import_module(f"cnnbench.analysis.{module_name}")
    # Importing a submodule binds its name on this package: ``analyze`` would then be the module
    # cnnbench.analysis.analyze, not the function. Bind every export of that module explicitly.
    for export, home in _EXPORTS.items():
        if home == module_name:
            globals()[export] = getattr(module, export)
    return globals()[name]


def __dir__() -> list[str]:
    return __all__
