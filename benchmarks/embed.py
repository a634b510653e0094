"""Time of ``cnnbench embed`` per stage, against the issue-6 implementation, and the t-SNE backend comparison.

    python benchmarks/embed.py                         # 10,000 blob points x 512 features, every stage
    python benchmarks/embed.py --data fashion-mnist    # Fashion-MNIST test images (784 pixels) as features
    python benchmarks/embed.py --json result.json      # the result into a file instead of stdout
    python benchmarks/embed.py --run RUN_DIR           # a real run: features + analysis + files
    python benchmarks/embed.py --features RUN_DIR/embedding.npz   # a real model's saved features
    python benchmarks/embed.py --run RUN_DIR --compare-legacy --repeats 2   # new vs old, alternating
    python benchmarks/embed.py --compare-tsne --repeats 3 [--data fashion-mnist]

Goals (issue 19, this project's 2-core CPU): the whole analysis of 10,000 points in <= 45 s; of 1,000
points in <= 3 s per model plus its feature extraction. ``--compare-legacy`` runs the current code and
``AnalysisConfig(legacy=True)`` (the issue-6 recipe: Annoy neighbours from 1,000 points, one t-SNE
thread below 5,000 points, FFT gradients in both t-SNE phases from 5,000, scikit-learn's DBSCAN, BLAS
on every core; every stage in turn) alternately on the same points and seed, prints
each stage's median for both with the ratio, and the KL divergence and cluster scores of both.

The machine is shared: every timing is printed with the 1-minute load average at its start and end,
and a device line says what ran where. Compare ratios measured in the same run, not absolute seconds
from different runs. ``--compare-tsne`` runs openTSNE and scikit-learn alternately with the same
seed, perplexity and iteration count, and scores both maps with one exact KL(P || Q) (same P).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def load_points(data: str, points: int, dim: int, data_dir: str | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) float32 points and (N,) labels: generated blobs, or a dataset's test images as raw pixels
    (found where cnnbench looks: ``--data-dir``, ``$CNNBENCH_DATA/<name>``, ``~/.cache/cnnbench/<name>``)."""
    if data == "blobs":
        from sklearn.datasets import make_blobs

        x, y = make_blobs(points, dim, centers=10, cluster_std=8.0, random_state=seed)
        return x.astype(np.float32), y
    from cnnbench.data import DataConfig, load_dataset
    from cnnbench.errors import DataError

    try:
        test = load_dataset(DataConfig(data, data_dir=data_dir, download=False)).test
    except DataError as exc:
        sys.exit(f"--data {data}: {exc}")
    x = test.images[:points].reshape(min(points, len(test)), -1)
    return x.astype(np.float32) / 255.0, test.labels[:points].astype(np.int64)


#: Issue 19's goals on the 2-core CPU: seconds for the whole analysis of this many points.
GOAL_10K_S = 45.0
GOAL_1K_S = 3.0  # plus the feature extraction (model, data and features stages)


def machine() -> dict:
    from cnnbench.utils.env import versions
    from cnnbench.utils.threads import load_average, usable_cores

    return {
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "omp_spin_count": os.environ.get("GOMP_SPINCOUNT"),
        "load_average_1min": load_average(),
        "versions": {k: v for k, v in versions().items() if k in ("python", "numpy", "scikit-learn", "openTSNE")},
    }


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def device_line(info: dict, device: str = "cpu") -> str:
    """One line: where the features and the analysis ran, and how busy the machine was."""
    return (
        f"device: features on {device}, analysis on CPU ({info['cpu']}, {info['usable_cores']} usable cores); "
        f"GOMP_SPINCOUNT={info['omp_spin_count']}; load 1-min {info['load_average_1min']}"
    )


def host_speed() -> float:
    """Seconds for a fixed workload: 50 Barnes-Hut t-SNE iterations on one thread over 2,000 seeded
    50-D blob points (exact neighbours), the fastest of three (~0.5 s on the development machine).

    This shared host's speed moved by up to 60 % between hours with nothing else running, more than
    some of the changes measured here, so every run prints it: compare figures of different runs
    after dividing by it, or compare ratios from one run.
    """
    from openTSNE import TSNE
    from sklearn.datasets import make_blobs

    x, _ = make_blobs(2000, 50, centers=10, cluster_std=8.0, random_state=0)
    tsne = TSNE(perplexity=30, n_jobs=1, random_state=0, neighbors="exact", negative_gradient_method="bh")
    times = []
    for _ in range(3):  # the fastest of three: what the host can do, less the moments it was taken away
        embedding = tsne.prepare_initial(x.astype(np.float32))
        start = time.perf_counter()
        embedding.optimize(n_iter=50, exaggeration=12, momentum=0.5, inplace=True)
        times.append(time.perf_counter() - start)
    return round(min(times), 3)


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def scores(result) -> dict:
    """KL divergence and cluster scores of an Analysis, flat, for comparing two runs."""
    d = result.to_dict()
    out = {"tsne.kl_divergence": d["tsne"]["kl_divergence"]}
    for space in ("tsne", "raw"):
        if d[space] is None:
            continue
        for method in ("kmeans", "dbscan"):
            for score in ("ari", "nmi", "silhouette"):
                out[f"{space}.{method}.{score}"] = d[space][method][score]
        out[f"{space}.knn_accuracy"] = d[space]["knn_accuracy"]
    return out


def stage_table(runs: dict[str, list[dict]]) -> list[str]:
    """Median seconds per stage of each variant, and the ratio legacy / new."""
    from cnnbench.rundir.analysis import SECONDS_KEYS

    med = {
        v: {k: statistics.median(r["seconds"].get(k, 0.0) for r in rs) for k in SECONDS_KEYS} for v, rs in runs.items()
    }
    loads = {v: statistics.median(r["load_start"] for r in rs) for v, rs in runs.items()}
    lines = [f"{'stage':18s} {'legacy s':>9s} {'new s':>9s} {'legacy/new':>10s}"]
    for k in SECONDS_KEYS:
        old, new = med["legacy"][k], med["new"][k]
        if old == 0.0 and new == 0.0:
            continue
        ratio = f"{old / new:10.2f}" if new > 0.005 else f"{'-':>10s}"
        lines.append(f"{k:18s} {old:9.2f} {new:9.2f} {ratio}")
    cpu = {v: statistics.median(r["cpu_s"] for r in rs) for v, rs in runs.items()}
    lines.append(
        f"{'CPU time (all threads)':18s} {cpu['legacy']:9.2f} {cpu['new']:9.2f} {cpu['legacy'] / cpu['new']:10.2f}"
    )
    lines.append(f"{'load 1-min (median)':18s} {loads['legacy']:9.2f} {loads['new']:9.2f}")
    return lines


def goal_lines(points: int, seconds: dict) -> list[str]:
    """Issue 19's goal for this many points, met or not, by the given stage seconds."""
    if points >= 10000:
        return [
            f"goal: whole analysis of {points:,} points <= {GOAL_10K_S:.0f} s: {seconds['total']:.1f} s "
            f"({'met' if seconds['total'] <= GOAL_10K_S else 'NOT met'})"
        ]
    if points <= 1000:
        # Per model, as a study runs it: the imports (openTSNE, scikit-learn, matplotlib) are paid once per
        # process, by the first model of a study only, so they are shown beside the figure, not in it.
        analysis = seconds["total"] - sum(seconds.get(k, 0.0) for k in ("model", "data", "features", "imports"))
        return [
            f"goal: {points:,} points <= {GOAL_1K_S:.0f} s per model plus feature extraction: {analysis:.2f} s "
            f"({'met' if analysis <= GOAL_1K_S else 'NOT met'}; imports {seconds.get('imports', 0.0):.1f} s "
            "besides, once per process)"
        ]
    return []


def _number(value: float | None) -> str:
    return f"{value:9.4f}" if isinstance(value, float) else f"{'null':>9s}"


def compare_legacy(run_once, warm_up, repeats: int, perplexity: float, seed: int) -> dict:
    """Run the new and the legacy analysis alternately ``repeats`` times each; their stage times and scores.

    Args:
        run_once: ``run_once(legacy) -> Analysis``.
        warm_up: a small untimed analysis first, so that neither variant pays the imports and first calls.
    """
    from cnnbench.analysis.tsne import exact_kl_divergence

    warm_up()
    runs: dict[str, list[dict]] = {"legacy": [], "new": []}
    for r in range(repeats):
        # alternate the order so a neighbour's load on the shared CPU hits both alike
        for variant in ("legacy", "new") if r % 2 == 0 else ("new", "legacy"):
            load0, cpu0 = _load(), _cpu_seconds()
            result = run_once(variant == "legacy")
            load1, cpu = _load(), _cpu_seconds() - cpu0
            sc = scores(result)
            sc["tsne.exact_kl"] = exact_kl_divergence(result.features, result.coords, perplexity, seed)
            # the same with P from exact neighbours: the two recipes' own P differ from 1,000 points
            sc["tsne.exact_kl_exact_p"] = exact_kl_divergence(
                result.features, result.coords, perplexity, seed, neighbors="exact"
            )
            runs[variant].append(
                {"seconds": dict(result.seconds), "cpu_s": cpu, "load_start": load0, "load_end": load1, "scores": sc}
            )
            secs = result.seconds
            print(
                f"  {variant:6s} run {r + 1}: total {secs['total']:6.1f} s, t-SNE {secs.get('tsne', 0):6.1f} s, "
                f"raw DBSCAN {secs.get('raw_dbscan', 0):5.1f} s, CPU {cpu:6.1f} s, load {load0:.2f} -> {load1:.2f}",
                file=sys.stderr,
            )
    for line in stage_table(runs):
        print("  " + line, file=sys.stderr)
    print(f"  {'score (first run)':26s} {'legacy':>9s} {'new':>9s}", file=sys.stderr)
    for key, old in runs["legacy"][0]["scores"].items():
        new = runs["new"][0]["scores"].get(key)
        print(f"  {key:26s} {_number(old)} {_number(new)}", file=sys.stderr)
    differing = sorted({k for r in runs["new"] for k, v in r["scores"].items() if v != runs["new"][0]["scores"][k]})
    print(
        f"  new runs give identical scores: {not differing}{'' if not differing else f' ({differing})'}",
        file=sys.stderr,
    )
    return {
        v: {
            "seconds_median": {
                k: round(statistics.median(r["seconds"].get(k, 0.0) for r in rs), 2) for k in rs[0]["seconds"]
            },
            "cpu_seconds_median": round(statistics.median(r["cpu_s"] for r in rs), 2),
            "load_start": [r["load_start"] for r in rs],
            "scores": rs[0]["scores"],
        }
        for v, rs in runs.items()
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


def _emit(out: dict, dest: str | None) -> None:
    """The result as JSON: on stdout (the default, and ``--json``), or into ``--json PATH``."""
    from benchio import emit_json

    emit_json(out, dest or "-")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=("blobs", "fashion-mnist", "mnist-sample", "synthetic"), default="blobs")
    p.add_argument("--data-dir", default=None, help="the dataset's folder (default: where cnnbench looks)")
    p.add_argument("--points", type=int, default=10000)
    p.add_argument("--dim", type=int, default=512, help="feature width of the blobs")
    p.add_argument("--perplexity", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--features", default=None, help="embedding.npz of a run: use its features and labels")
    p.add_argument(
        "--run",
        default=None,
        help="benchmark `cnnbench embed` on this run directory instead (it rewrites the run's analysis files; "
        "with --compare-legacy they are the last run's)",
    )
    p.add_argument("--compare-legacy", action="store_true", help="new vs issue-6 analysis, alternating")
    p.add_argument("--compare-tsne", action="store_true", help="openTSNE vs scikit-learn: time and exact KL")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--tsne-iter", type=int, default=750, help="t-SNE iterations in all, for --compare-tsne")
    p.add_argument("--json", nargs="?", const="-", default=None, metavar="PATH", help="the JSON into PATH")
    args = p.parse_args(argv)

    # As the cnnbench CLI does before anything loads OpenMP: bounded spinning (utils/threads.py).
    from cnnbench.utils.threads import configure_cpu_threads

    configure_cpu_threads()
    from cnnbench.analysis import AnalysisConfig, analyze, embed_run

    out = {"benchmark": "embed", **machine()}
    device = "cpu"
    if args.run:

        def run_once(legacy: bool, points: int = args.points):
            return embed_run(
                args.run,
                max_points=points,
                perplexity=args.perplexity,
                seed=args.seed,
                options=AnalysisConfig(legacy=legacy),
            )

        def warm_up():
            run_once(False, points=200)

        out["source"] = args.run
    else:
        if args.features:
            npz = np.load(args.features)
            x, y = npz["features"][: args.points], npz["labels"][: args.points]
        else:
            x, y = load_points(args.data, args.points, args.dim, args.data_dir, args.seed)
        out.update(dim=int(x.shape[1]), source=args.features or args.data)

        def run_once(legacy: bool):
            return analyze(x, y, AnalysisConfig(perplexity=args.perplexity, seed=args.seed, legacy=legacy))

        def warm_up():
            analyze(x[:200], y[:200], AnalysisConfig(seed=args.seed))

        if args.compare_tsne:
            out["points"] = len(x)
            print(device_line(out, device), file=sys.stderr)
            out["tsne_comparison"] = compare_tsne(x, args.repeats, args.perplexity, args.seed, args.tsne_iter)
            out["host_speed_s"] = host_speed()
            print(f"host speed: fixed t-SNE workload {out['host_speed_s']:.3f} s", file=sys.stderr)
            _emit(out, args.json)
            return 0
    print(device_line(out, device), file=sys.stderr)
    if args.compare_legacy:
        out["comparison"] = compare_legacy(run_once, warm_up, args.repeats, args.perplexity, args.seed)
        secs = out["comparison"]["new"]["seconds_median"]
    else:
        load0 = _load()
        result = run_once(False)
        secs = {k: round(v, 2) for k, v in result.seconds.items()}
        out.update(seconds=secs, load_start=load0, load_end=_load(), scores=scores(result))
        for k, v in secs.items():
            print(f"  {k:18s} {v:7.2f} s", file=sys.stderr)
        print(f"  load 1-min {load0:.2f} at the start, {_load():.2f} at the end", file=sys.stderr)
    if args.run:
        meta = json.loads((Path(args.run) / "analysis.json").read_text())
        out["points"], device = meta["points"], meta["device"]
    else:
        out["points"] = len(x)
    for line in goal_lines(out["points"], secs):
        print("  " + line, file=sys.stderr)
    # measured last, so that the timed runs above paid their own imports (openTSNE, scikit-learn)
    out["host_speed_s"] = host_speed()
    print(f"host speed: fixed t-SNE workload {out['host_speed_s']:.3f} s (lower is faster)", file=sys.stderr)
    print(device_line({**out, "load_average_1min": _load()}, device), file=sys.stderr)
    _emit(out, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
