"""Time of ``cnnbench embed`` per stage, and the t-SNE backend comparison behind its default.

    python benchmarks/embed.py                         # 10,000 blob points x 512 features, every stage
    python benchmarks/embed.py --data fashion-mnist    # Fashion-MNIST test images (784 pixels) as features
    python benchmarks/embed.py --run RUN_DIR           # a real run: features + analysis + files
    python benchmarks/embed.py --features RUN_DIR/embedding.npz   # a real model's saved features
    python benchmarks/embed.py --compare-tsne --repeats 3 [--data fashion-mnist]

The goal (issue 6): 10,000 points through t-SNE and all clustering in <= 60 s on a 2-core CPU.
The comparison runs openTSNE and scikit-learn alternately with the same seed, perplexity and
iteration count, and scores both maps with one exact KL(P || Q) (same P), since each library
reports its own approximation.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

FASHION_DIRS = ("/work/shared/data/fashion-mnist", "/usr/share/datasets/fashion-mnist")


def load_points(data: str, points: int, dim: int, data_dir: str | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float32 points and (N,) labels."""
    if data == "blobs":
        from sklearn.datasets import make_blobs

        x, y = make_blobs(points, dim, centers=10, cluster_std=8.0, random_state=seed)
        return x.astype(np.float32), y
    dirs = [data_dir] if data_dir else list(FASHION_DIRS)
    for d in dirs:
        images, labels = Path(d) / "t10k-images-idx3-ubyte.gz", Path(d) / "t10k-labels-idx1-ubyte.gz"
        if images.is_file() and labels.is_file():
            with gzip.open(images) as f:
                x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
            with gzip.open(labels) as f:
                y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
            return (x[:points].astype(np.float32) / 255.0), y[:points]
    sys.exit(f"--data fashion-mnist: t10k-*-ubyte.gz not found in {', '.join(dirs)} (use --data-dir)")


def machine() -> dict:
    from cnnbench.utils.env import versions

    return {
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "versions": {k: v for k, v in versions().items() if k in ("python", "numpy", "scikit-learn", "openTSNE")},
    }


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads: less sensitive than wall time to a busy machine."""
    t = os.times()
    return t.user + t.system


def compare_tsne(x: np.ndarray, repeats: int, perplexity: float, seed: int, max_iter: int) -> dict:
    from cnnbench.analysis.tsne import exact_kl_divergence, tsne_2d

    times: dict[str, list[float]] = {"opentsne": [], "sklearn": []}
    cpu: dict[str, list[float]] = {"opentsne": [], "sklearn": []}
    kls: dict[str, list[float]] = {"opentsne": [], "sklearn": []}
    for r in range(repeats):
        # alternate the order so a neighbour's load on the shared CPU hits both alike
        for backend in ("opentsne", "sklearn") if r % 2 == 0 else ("sklearn", "opentsne"):
            cpu0 = _cpu_seconds()
            res = tsne_2d(x, perplexity=perplexity, seed=seed, backend=backend, max_iter=max_iter)
            cpu[backend].append(_cpu_seconds() - cpu0)
            times[backend].append(res.seconds)
            kls[backend].append(exact_kl_divergence(x, res.coords, perplexity, seed=seed))
            print(
                f"  {backend:8s} run {r + 1}: {res.seconds:6.1f} s wall, {cpu[backend][-1]:6.1f} s CPU, "
                f"exact KL {kls[backend][-1]:.4f}, load {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
            )
    return {
        b: {
            "seconds_median": round(statistics.median(times[b]), 2),
            "seconds": [round(t, 2) for t in times[b]],
            "cpu_seconds_median": round(statistics.median(cpu[b]), 2),
            "exact_kl_median": round(statistics.median(kls[b]), 4),
        }
        for b in times
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=("blobs", "fashion-mnist"), default="blobs")
    p.add_argument("--data-dir", default=None, help="folder with t10k-*-ubyte.gz (fashion-mnist)")
    p.add_argument("--points", type=int, default=10000)
    p.add_argument("--dim", type=int, default=512, help="feature width of the blobs")
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--features", default=None, help="embedding.npz of a run: use its features and labels")
    p.add_argument("--run", default=None, help="benchmark `cnnbench embed` on this run directory instead")
    p.add_argument("--compare-tsne", action="store_true", help="openTSNE vs scikit-learn: time and exact KL")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--tsne-iter", type=int, default=750, help="t-SNE iterations in all, for --compare-tsne")
    args = p.parse_args()

    from cnnbench.analysis import AnalysisConfig, analyze, embed_run

    out = {"benchmark": "embed", **machine()}
    if args.run:
        start = time.perf_counter()
        result = embed_run(args.run, max_points=args.points, perplexity=args.perplexity, seed=args.seed)
        out.update(
            points=len(result.labels),
            source=args.run,
            wall_s=round(time.perf_counter() - start, 2),
            seconds={k: round(v, 2) for k, v in result.seconds.items()},
        )
    else:
        if args.features:
            npz = np.load(args.features)
            x, y = npz["features"][: args.points], npz["labels"][: args.points]
        else:
            x, y = load_points(args.data, args.points, args.dim, args.data_dir, args.seed)
        out.update(points=len(x), dim=int(x.shape[1]), source=args.features or args.data)
        if args.compare_tsne:
            out["tsne_comparison"] = compare_tsne(x, args.repeats, args.perplexity, args.seed, args.tsne_iter)
        else:
            result = analyze(x, y, AnalysisConfig(perplexity=args.perplexity, seed=args.seed))
            d = result.to_dict()
            out["seconds"] = {k: round(v, 2) for k, v in result.seconds.items()}
            out["scores"] = {
                s: {
                    "kmeans_ari": d[s]["kmeans"]["ari"],
                    "dbscan_ari": d[s]["dbscan"]["ari"],
                    "knn_accuracy": d[s]["knn_accuracy"],
                }
                for s in ("tsne", "raw")
            }
    if "seconds" in out:
        secs = out["seconds"]
        clustering = sum(v for k, v in secs.items() if k.startswith(("tsne", "raw_")))
        out["tsne_and_clustering_s"] = round(clustering, 2)
        out["goal_60s_met"] = clustering <= 60.0
        for k, v in secs.items():
            print(f"  {k:16s} {v:7.2f} s", file=sys.stderr)
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
