"""The GPU parts of ``run_all.py --device cuda``, in the order that matters most.

The goals of issue #9 first (cheap, and never measured), then the loaders, then one seed of the
MNIST study (it alone could take the whole budget: it gets what is left, and a study that runs out
of time still says how far it got), then the figures no goal depends on.
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
    span,
    study_results,
)

SMOKE_TRAIN = ["--device", "cpu", "--data", "synthetic", "--models", "lenet5", "--batch-size", "256"]
SMOKE_INFER = ["--device", "cpu", "--parts", "inference", "--inference-models", "resnet18", "--max-size", "32",
               "--iters", "2", "--infer-batch", "4"]  # fmt: skip
STUDY_SEEDS_OF = 3  # the MNIST study's seeds; the part times one of them


def epochs_args(ctx: Context) -> list[str]:
    return ["--device", "cuda", "--parts", "epochs", "--data", ctx.data, "--epochs", "2", "--naive-batches", "100"]


def epochs_smoke(ctx: Context) -> list[str]:
    return [*SMOKE_TRAIN, "--parts", "epochs", "--epochs", "2", "--naive-batches", "2", "--workers", "0"]


def epochs_goals(r: dict, ctx: Context) -> list[dict]:
    rows = sorted(r["epochs"], key=lambda x: x["speedup"])
    low, high = rows[0], rows[-1]
    text = (
        f"{span(low['speedup'], low['model'], high['speedup'], high['model'])}; "
        f"batch {r['batch_size']}, {r['dtype']}, {len(rows)} models"
    )
    return [entry("gpu-epochs", low["speedup"], text, data=r["data"], figure=low["cnnbench_epoch_s"],
                  baseline=low["naive_epoch_s"], ratio=low["speedup"])]  # fmt: skip


def target_args(ctx: Context) -> list[str]:
    return ["--device", "cuda", "--parts", "target", "--models", "lenet5,resnet18", "--data", ctx.data]


def target_smoke(ctx: Context) -> list[str]:
    return [*SMOKE_TRAIN, "--parts", "target", "--target-model", "lenet5", "--target-epochs", "1"]


def target_goals(r: dict, ctx: Context) -> list[dict]:
    t = r["target"]["resnet18_93"]
    seconds = t["time_to_target_s"]
    if seconds is None:
        text = f"93 % not reached in {t['epochs_run']} epochs (test {t['test_accuracy']:.1%})"
        return [entry("gpu-resnet18-93", None, text, data=r["data"], met=False)]
    text = f"{seconds:.1f} s of training (epoch {t['epochs_to_target']}), test {t['test_accuracy']:.1%}"
    if r["target"]["model"] != "resnet18":
        text += f" ({r['target']['model']}, not resnet18)"
    return [entry("gpu-resnet18-93", seconds, text, data=r["data"], figure=seconds)]


def inference_goals(r: dict, ctx: Context) -> list[dict]:
    rows = [x for x in r["inference"] if "ratio_vs_timm" in x]
    failed = [x["model"] for x in r["inference"] if "error" in x]
    if not rows:
        return [entry("gpu-speed-vs-timm", None, f"every model failed: {', '.join(failed)}", met=False)]
    low = min(rows, key=lambda x: x["ratio_vs_timm"])
    cells = ", ".join(f"{x['model']} {x['ratio_vs_timm']:.2f}×" for x in rows)
    text = f"{cells}; batch {r['infer_batch']}, {r['dtype']}" + (f"; failed: {', '.join(failed)}" if failed else "")
    return [entry("gpu-speed-vs-timm", low["ratio_vs_timm"], text, figure=low["cnnbench_img_s"],
                  baseline=low["timm_eager_img_s"], ratio=low["ratio_vs_timm"])]  # fmt: skip


def compiled_goals(r: dict, ctx: Context) -> list[dict]:
    rows = [x for x in r["inference"] if "cnnbench_compiled_img_s" in x]
    cells = ", ".join(
        f"{x['model']} {x['cnnbench_compiled_img_s'] / x['cnnbench_img_s']:.2f}× eager "
        f"({x['compile_and_measure_s']:.0f} s to compile and measure)"
        for x in rows
    )
    return [entry("gpu-speed-compiled", None, cells or "no model compiled")]


def study_args(ctx: Context) -> list[str]:
    return ["--device", "cuda", "--preset", "mnist-study", "--data", ctx.data, "--seeds", "1", "--naive-batches", "0",
            "--out", str(ctx.work / "study")]  # fmt: skip


def study_smoke(ctx: Context) -> list[str]:
    tiny = ["--models", "lenet5", "--schedules", "cosine", "--seeds", "1", "--recipe", "epochs=1"]
    return ["--device", "cpu", "--preset", "mnist-study", "--data", "synthetic", *tiny, "--embed-max-points", "200",
            "--naive-batches", "2", "--workers", "0", "--out", str(ctx.work / "study")]  # fmt: skip


def study_goals(r: dict, ctx: Context) -> list[dict]:
    seeds, wall = len(r["seeds"]), r["wall_s"]
    whole = wall * STUDY_SEEDS_OF / seeds
    how = f"{r['runs']} runs in {wall:.0f} s" + (f" → ≈ {whole:.0f} s for {STUDY_SEEDS_OF} seeds" if seeds < 3 else "")
    text = f"{r['preset']}, {seeds} seed(s): {how}"
    return [entry("gpu-study", whole, text, data=r["data"], figure=wall)]


def study_timeout(ctx: Context, limit: float) -> list[dict]:
    rows = study_results(ctx)
    # one seed past a third of the goal cannot make three seeds fit it
    met = False if limit * STUDY_SEEDS_OF > 600 else None
    text = f"one seed not finished within {limit:.0f} s ({finished(rows)} of {len(rows) or '?'} runs finished)"
    return [entry("gpu-study", None, text, data=ctx.data, met=met)]


def engine_args(ctx: Context) -> list[str]:
    return ["--device", "cuda", "--data", ctx.data, "--models", "seed-mnist", "--naive", "--batch-size", "512",
            "--naive-batches", "50", "--rounds", "1", "--epochs", "3", "--workers", "8"]  # fmt: skip


def engine_smoke(ctx: Context) -> list[str]:
    return ["--device", "cpu", "--data", "synthetic", "--models", "lenet5", "--naive", "--naive-batches", "2",
            "--workers", "0", "--samples", "256", "--epochs", "2", "--rounds", "1"]  # fmt: skip


def engine_goals(r: dict, ctx: Context) -> list[dict]:
    rows = sorted(r["rows"], key=lambda x: x["speedup_vs_naive"])
    low, high = rows[0], rows[-1]
    text = (
        f"{span(low['speedup_vs_naive'], low['model'], high['speedup_vs_naive'], high['model'])}; "
        f"batch {r['batch_size']}, engine defaults"
    )
    ratio = low["speedup_vs_naive"]
    return [entry("engine-vs-naive-gpu", ratio, text, data=r["data"], figure=low["engine_full_epoch_s"],
                  baseline=low["naive_epoch_s"], ratio=ratio)]  # fmt: skip


GPU_PARTS: tuple[Part, ...] = (
    Part("gpu_epochs", "gpu_speed.py", 180, epochs_args, epochs_smoke, epochs_goals, min_s=60),
    Part("gpu_target", "gpu_speed.py", 120, target_args, target_smoke, target_goals, min_s=45),
    Part("gpu_inference", "gpu_speed.py", 90, lambda c: ["--device", "cuda", "--parts", "inference"],
         lambda c: SMOKE_INFER, inference_goals),
    Part("imagefolder", "imagefolder_pipeline.py", 150, imagefolder_args, imagefolder_smoke, imagefolder_goals,
         min_s=60),
    Part("data_pipeline", "data_pipeline.py", 60, data_pipeline_args, data_pipeline_smoke, data_pipeline_goals),
    Part("study", "study_wall_time.py", 300, study_args, study_smoke, study_goals,
         ("sklearn", "scipy", "matplotlib", "openTSNE", "yaml"), 120, study_timeout),
    Part("engine_vs_naive", "train_throughput.py", 150, engine_args, engine_smoke, engine_goals, min_s=60),
    Part("gpu_compiled", "gpu_speed.py", 150,
         lambda c: ["--device", "cuda", "--parts", "inference", "--inference-models", "resnet18,mobilenet_v2",
                    "--compile"],
         lambda c: [*SMOKE_INFER, "--compile", "--compile-backend", "eager"], compiled_goals, min_s=90),
)  # fmt: skip
