"""cnnbench embed: t-SNE, K-means and DBSCAN of a trained run's features (the MNIST study's §4.3)."""

from __future__ import annotations

import argparse

from cnnbench.cli.common import add_json_flag, add_threads_flag, emit_json, note, print_table
from cnnbench.rundir import SPLITS


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: expected a positive integer")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `cnnbench train`")
    parser.add_argument("--split", default="test", choices=SPLITS, help="split to embed (default: test)")
    parser.add_argument(
        "--max-points",
        type=_positive_int,
        default=10000,
        metavar="N",
        help="at most N points, a stratified seeded sample of the split (default: 10000)",
    )
    parser.add_argument("--perplexity", type=float, default=30.0, metavar="P", help="t-SNE perplexity (default: 30)")
    parser.add_argument(
        "--n-components",
        "--n_components",  # the MNIST study's feature_analysis.py spelling
        dest="n_components",
        type=int,
        choices=(2, 3),
        default=2,
        help="dimensions of the t-SNE map: 2 (default) or 3, drawn as its three 2-D projections in tsne.png",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample, t-SNE and K-means (default: 0)")
    parser.add_argument(
        "--device", default=None, help="auto, cpu, cuda or cuda:N for the forward pass (default: the run's device)"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="directory holding the dataset files (default: where the run found them; a relative --data-dir "
        "of `cnnbench train` holds only from the directory it trained in)",
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=None, help="images per forward pass (default: the run's eval batch)"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="analyse a run that is still training (its best checkpoint may still change; analysis.json "
        "records which one was used)",
    )
    _add_analysis_flags(parser)
    add_threads_flag(parser)
    add_json_flag(parser)


def _add_analysis_flags(parser: argparse.ArgumentParser) -> None:
    """How the features are analysed: the t-SNE implementation, the k-NN vote, the raw-feature scores."""
    parser.add_argument(
        "--tsne-backend",
        default="opentsne",
        choices=("opentsne", "sklearn"),
        help="t-SNE implementation (default: opentsne, the faster here; see docs/analysis.md)",
    )
    parser.add_argument(
        "--knn-k", type=_positive_int, default=10, help="neighbours voting in the k-NN accuracy (default: 10)"
    )
    parser.add_argument(
        "--no-raw",
        dest="raw",
        action="store_false",
        help="score the 2-D map only, not the raw high-dimensional features",
    )


def run(args: argparse.Namespace) -> int:
    from cnnbench.analysis import AnalysisConfig, embed_run

    # built first, so a bad flag is reported before torch and the model are loaded
    options = AnalysisConfig(
        perplexity=args.perplexity,
        n_components=args.n_components,
        seed=args.seed,
        tsne_backend=args.tsne_backend,
        knn_k=args.knn_k,
        raw=args.raw,
    )
    note(
        f"embedding {args.run_dir} ({args.split} split, up to {args.max_points:,} points, {args.n_components}-D t-SNE)",
        markup=False,
    )
    result = embed_run(
        args.run_dir,
        split=args.split,
        max_points=args.max_points,
        perplexity=args.perplexity,
        device=args.device,
        seed=args.seed,
        options=options,
        batch_size=args.batch_size,
        data_dir=args.data_dir,
        force=args.force,
    )
    d = result.to_dict()
    if args.json:
        emit_json(d)
        return 0
    _print_tables(d)
    for line in d["notes"]:
        note(f"note: {line}", markup=False)
    note(f"wrote embedding.npz, analysis.json, tsne.png, knn_distance.png in {d['run_dir']}", markup=False)
    return 0


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _print_tables(d: dict) -> None:
    rows = []
    for space, label in (("tsne", f"{d['tsne'].get('n_components', 2)}-D t-SNE map"), ("raw", "raw features")):
        s = d.get(space)
        if not s:
            continue
        km, db = s["kmeans"], s["dbscan"]
        rows.append(["K-means", label, _fmt(km["ari"]), _fmt(km["nmi"]), _fmt(km["silhouette"]), f"k = {km['k']}"])
        details = (
            f"eps = {db['eps']:.3g}, min_samples = {db['min_samples']}, {db['clusters']} clusters, "
            f"{db['noise_points']:,} noise"
            if db["valid"]
            else "no grid point gave ≥ 2 clusters"
        )
        rows.append(["DBSCAN*", label, _fmt(db["ari"]), _fmt(db["nmi"]), _fmt(db["silhouette"]), details])
        rows.append([f"{d['knn_k']}-NN accuracy", label, "", "", "", _fmt(s["knn_accuracy"], 4)])
    title = (
        f"{d.get('model') or '?'} on {d.get('dataset') or '?'} ({d['split']}): "
        f"{d['points']:,} points × {d['feature_dim']} features, {d['num_classes']} classes"
    )
    print_table(title, ["method", "space", "ARI", "NMI", "silhouette", "details"], rows)
    note("* DBSCAN's (eps, min_samples) are chosen by the highest ARI against the true labels.")
    print_table("seconds per stage", ["stage", "seconds"], [[k, f"{v:.2f}"] for k, v in d["seconds"].items()])
