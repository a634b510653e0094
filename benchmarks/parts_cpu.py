"""The CPU parts of ``run_all.py --device cpu``, in the order that matters most.

Planned for the 2-core development machine: the limits add up to more than the default budget
(900 s), so the last parts run only when the first ones take less than their limit.
"""

from __future__ import annotations

from parts import (
    Context,
    Part,
    data_pipeline_args,
    data_pipeline_goals,
    data_pipeline_smoke,
    entry,
    finished,
    imagefolder_args,
    imagefolder_goals,
    imagefolder_smoke,
    pct,
    study_results,
)

CORE = ("sklearn", "scipy", "matplotlib", "openTSNE", "yaml")


def study_args(ctx: Context) -> list[str]:
    return ["--device", "cpu", "--out", str(ctx.work / "study")]


def study_smoke(ctx: Context) -> list[str]:
    tiny = ["--models", "lenet5", "--recipe", "max_steps=20", "--recipe", "lr_find_steps=10"]
    tiny += ["--embed-max-points", "200"]
    return ["--device", "cpu", "--data", "synthetic", *tiny, "--out", str(ctx.work / "study")]


def study_goals(r: dict, ctx: Context) -> list[dict]:
    wall, runs = r["wall_s"], r["per_run"]
    load = f"load {r['load_before'][0]:.2f} → {r['load_after'][0]:.2f}"
    out = [entry("default-study-time", wall, f"{wall:.0f} s ({wall / 60:.1f} min), {len(runs)} runs on {r['data']}, "
                 f"{load}", figure=wall)]  # fmt: skip
    accuracies = [(x["test_accuracy"] or 0.0, x["model"]) for x in runs]
    low, low_model = min(accuracies)
    reached = sum(a >= 0.90 for a, _ in accuracies)
    text = f"{reached} of {len(runs)} runs ≥ 90 % (lowest {low:.1%}, {low_model})"
    out.append(entry("default-study-accuracy", low, text, figure=low))
    analysis = [x["analysis_s"] for x in runs if x.get("analysis_s") is not None]
    if analysis:
        spread = f"{min(analysis):.2f}–{max(analysis):.2f}" if len(analysis) > 1 else f"{analysis[0]:.2f}"
        text = f"{spread} s per model in the default study ({len(analysis)} models)"
        out.append(entry("analysis-1k", max(analysis), text, figure=max(analysis)))
    return out


def study_timeout(ctx: Context, limit: float) -> list[dict]:
    rows = study_results(ctx)
    done = f"{finished(rows)} of {len(rows) or '?'} runs finished"
    met = False if limit >= 600 else None  # past the goal's ten minutes, or stopped before them
    return [entry("default-study-time", None, f"not finished within {limit:.0f} s ({done})", met=met)]


def train_defaults_goals(r: dict, ctx: Context) -> list[dict]:
    rows = r["rows"]
    cells = ", ".join(f"{x['epochs']} epochs {x['test_accuracy']:.1%} in {x['wall_s']:.1f} s" for x in rows)
    verdicts = [x["met"] for x in rows if x["met"] is not None]
    met = all(verdicts) if verdicts else None
    return [entry("train-defaults", None, f"{r['model']}: {cells}", data=r["data"], met=met)]


def engine_args(ctx: Context) -> list[str]:
    sizes = ["--models", "lenet5,resnet18", "--samples", "2000", "--epochs", "3", "--rounds", "2"]
    return ["--device", "cpu", "--data", ctx.data, *sizes]


def engine_smoke(ctx: Context) -> list[str]:
    return ["--device", "cpu", "--data", "synthetic", "--models", "lenet5", "--samples", "256", "--epochs", "2",
            "--rounds", "1"]  # fmt: skip


def engine_goals(r: dict, ctx: Context) -> list[dict]:
    rows = r["rows"]
    worst = max(x["engine_overhead_pct"] for x in rows)
    cells = ", ".join(f"{x['model']} {pct(x['engine_overhead_pct'])}" for x in rows)
    text = f"{cells} ({rows[0]['images']:,} images per epoch, median of {r['rounds']} rounds)"
    return [entry("engine-overhead-cpu", worst, text, data=r["data"], figure=worst)]


def embed_goals(r: dict, ctx: Context) -> list[dict]:
    s = r["seconds"]
    text = (
        f"{s['total']:.1f} s for {r['points']:,} {r['source']} points (t-SNE {s.get('tsne', 0):.1f} s), "
        f"host speed {r['host_speed_s']:.3f} s, load {r['load_start']:.2f} → {r['load_end']:.2f}"
    )
    return [entry("analysis-10k", s["total"], text, figure=s["total"])]


def contention_args(ctx: Context) -> list[str]:
    settings = ["--settings", "libgomp default,cnnbench", "--rounds", "1"]
    return ["--models", "lenet5,resnet18", *settings, "--data", ctx.data]


def contention_smoke(ctx: Context) -> list[str]:
    tiny = ["--settings", "cnnbench", "--rounds", "1", "--busy", "1", "--steps", "3"]
    return ["--models", "lenet5", *tiny, "--data", "synthetic"]


def contention_goals(r: dict, ctx: Context) -> list[dict]:
    ours = [x for x in r["rows"] if x["setting"] == "cnnbench"]
    cells, met = [], True
    for x in ours:
        vs = x["quiet_vs_default"]
        cells.append(f"{x['model']} {x['busy_share']:.0%} of quiet" + (f" (quiet {pct(100 * vs)})" if vs is not None
                                                                       else ""))  # fmt: skip
        met = met and x["busy_share"] >= 0.5 and (vs is None or vs >= -0.05)
    share = min(x["busy_share"] for x in ours)
    return [entry("cpu-contention", share, "busy: " + ", ".join(cells), data=r["data"], figure=share, met=met)]


def tta_args(ctx: Context) -> list[str]:
    return ["--models", "lenet5,resnet18,mobilenet_v3_small", "--steps", "30", "--data", ctx.data]


def tta_smoke(ctx: Context) -> list[str]:
    return ["--models", "lenet5", "--steps", "3", "--workers", "0", "--data", "synthetic"]


def tta_goals(r: dict, ctx: Context) -> list[dict]:
    rows = r["rows"]
    cells = ", ".join(f"{x['model']} {x['ratio']:.2f}× (goal {x['goal_ratio']:g}×)" for x in rows if x["goal_ratio"])
    met = all(x["met"] for x in rows if x["goal_ratio"]) if any(x["goal_ratio"] for x in rows) else None
    worst = min(x["ratio"] / x["goal_ratio"] for x in rows if x["goal_ratio"]) if met is not None else None
    text = f"{rows[0]['measure']}: {cells}"
    return [entry("time-to-accuracy-cpu", worst, text, data=r["data"], met=met)]


def small_maps_goals(r: dict, ctx: Context) -> list[dict]:
    pads = "pads here" if r["engine_pads"] else f"no padding here ({r['vector_isa']})"
    cells = ", ".join(f"{x['model']} {x['speedup']:.2f}×" for x in r["padding"])
    adamw = ", ".join(f"{x['model']} {x['speedup']:.2f}×" for x in r["adamw"])
    text = f"padded vs stock: {cells}; engine {pads}" + (f"; AdamW foreach {adamw}" if adamw else "")
    return [entry("small-maps-cpu", None, text)]


def compile_goals(r: dict, ctx: Context) -> list[dict]:
    cells = []
    for x in r["rows"]:
        if "error" in x:
            cells.append(f"{x['model']} failed")
            continue
        repay = f"repays after {x['repay_epochs']:.1f} epochs" if x["repay_epochs"] is not None else "never repays"
        cells.append(f"{x['model']} {x['speedup']:.2f}× eager, {x['compile_s']:.0f} s to compile: {repay}")
    return [entry("compile-cpu", None, "; ".join(cells) + f" ({r['backend']})")]


CPU_PARTS: tuple[Part, ...] = (
    Part("study", "study_wall_time.py", 600, study_args, study_smoke, study_goals, CORE + ("mlxtend",), 240,
         study_timeout),
    Part("data_pipeline", "data_pipeline.py", 60, data_pipeline_args, data_pipeline_smoke, data_pipeline_goals),
    Part("train_defaults", "train_defaults.py", 60, lambda c: [], lambda c: ["--epochs", "1", "--data", "synthetic"],
         train_defaults_goals, ("mlxtend",)),
    Part("engine_overhead", "train_throughput.py", 150, engine_args, engine_smoke, engine_goals, min_s=60),
    Part("embed", "embed.py", 120, lambda c: ["--points", "10000"], lambda c: ["--points", "300", "--dim", "16"],
         embed_goals, ("sklearn", "openTSNE"), 45),
    Part("time_to_accuracy", "time_to_accuracy.py", 150, tta_args, tta_smoke, tta_goals, min_s=60),
    Part("cpu_contention", "cpu_contention.py", 300, contention_args, contention_smoke, contention_goals, min_s=90),
    Part("imagefolder", "imagefolder_pipeline.py", 120, imagefolder_args, imagefolder_smoke, imagefolder_goals,
         min_s=60),
    Part("small_maps", "small_maps_cpu.py", 60,
         lambda c: ["--models", "mobilenet_v3_small,resnet18", "--optimizer-models", "lenet5", "--steps", "3"],
         lambda c: ["--models", "mobilenet_v3_small", "--optimizer-models", "", "--steps", "1", "--rounds", "1"],
         small_maps_goals),
    Part("compile", "compile_cpu.py", 120, lambda c: ["--models", "lenet5", "--steps", "20"],
         lambda c: ["--models", "lenet5", "--steps", "2", "--backend", "eager"], compile_goals, min_s=60),
)  # fmt: skip
