"""The speed and memory goals of the issues, one entry each: what docs/benchmarks.md's table lists.

``benchmarks/run_all.py`` measures them (each result names its goal by ``key``) and
``benchmarks/render.py`` writes the table from the latest result of each. A goal's ``target`` and
``higher_is_better`` say how a figure is judged; a goal without a target keeps a figure that
informs a decision (``torch.compile`` left off on the CPU) and is never "met" or "not met".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    key: str  # what a result's goal entry names; stable, never reused
    issue: str  # the tracker's label of the issue that set it
    text: str  # the goal as one short line
    device: str  # "cpu" or "cuda": where the goal applies
    script: str  # the script that measures it, as a person runs it
    history: str  # the section of docs/benchmarks.md (or another page) with its earlier figures
    target: float | None = None  # the threshold the figure is judged against
    higher_is_better: bool = True
    data: str | None = "fashion-mnist"  # the dataset the goal names; a figure on another is not judged
    by_hand: bool = False  # too long for run_all's budget: measured by running its script


GOALS: tuple[Goal, ...] = (
    Goal("default-study-time", "[1/5] trust", "default `cnnbench run` ≤ 10 min on a quiet 2-core CPU", "cpu",
         "study_wall_time.py --device cpu", "#default-study-wall-time", 600.0, False, None),
    Goal("default-study-accuracy", "[1/5] trust", "every run of the default study ≥ 90 % test accuracy", "cpu",
         "study_wall_time.py --device cpu", "#default-study-wall-time", 0.90, True, None),
    Goal("train-defaults", "[1/5] train", "`cnnbench train --model lenet5 --data mnist-sample`: 15 epochs ≥ 97.5 % "
         "in ≤ 60 s; 2 epochs ≥ 90 %", "cpu", "train_defaults.py", "#cnnbench-train-defaults-on-lenet-5-15", None,
         True, "mnist-sample"),
    Goal("recipe-efficiency", "[1/5] recipes", "steps to 90 %: the quick preset ≤ 0.5 × the seed's recipe for every "
         "model; its seconds ≤ 0.6 × the quick preset before the range test", "cpu",
         "recipe_efficiency.py (about 30 minutes)", "#steps-to-90--under-three-recipes-15", None, True, None, True),
    Goal("data-loader-cpu", "#2 data", "augmented Fashion-MNIST epoch ≥ 3× torchvision+PIL", "cpu",
         "data_pipeline.py", "#data-pipeline-2", 3.0),
    Goal("engine-overhead-cpu", "#4 engine", "engine overhead ≤ 10 % against a bare loop", "cpu",
         "train_throughput.py", "#engine-overhead-4", 10.0, False),
    Goal("analysis-10k", "[after 5/5] analysis", "10,000 points through t-SNE and all clustering ≤ 45 s", "cpu",
         "embed.py", "#feature-analysis-of-1000-and-10000-points-after-55", 45.0, False, None),
    Goal("analysis-1k", "[after 5/5] analysis", "1,000 points ≤ 3 s per model (feature extraction aside)", "cpu",
         "study_wall_time.py --device cpu", "#feature-analysis-of-1000-and-10000-points-after-55", 3.0, False, None),
    Goal("time-to-accuracy-cpu", "[4/5] CPU", "time to 90 % vs the seed's pipeline: lenet5 ≥ 5×, resnet18 and "
         "mobilenet_v3_small ≥ 2×", "cpu", "time_to_accuracy.py",
         "#time-to-accuracy-against-the-seeds-pipeline-45-item-4", 1.0),
    Goal("cpu-contention", "[4/5] CPU", "`cnnbench train` beside 2 busy processes ≥ 50 % of quiet; quiet ≤ 5 % "
         "below libgomp's default", "cpu", "cpu_contention.py", "#cpu-contention-45", 0.50),
    Goal("imagefolder-train-cpu", "#10 Caltech", "training epoch from JPEGs within 10 % of pre-generated tensors",
         "cpu", "imagefolder_pipeline.py", "#image-folder-pipeline-10", 10.0, False, None),
    Goal("small-maps-cpu", "[4/5] CPU", "padding small-map convolutions where oneDNN runs its AVX2 kernels",
         "cpu", "small_maps_cpu.py", "#convolutions-on-small-maps-and-adamw-on-the-cpu", None, True, None),
    Goal("compile-cpu", "[4/5] CPU", "`torch.compile` on the CPU: on only where it repays", "cpu",
         "compile_cpu.py", "#torchcompile-on-the-cpu-45-item-3", None, True, None),
    Goal("gpu-epochs", "#9 GPU", "every seed-mnist epoch ≥ 20× the naive pipeline", "cuda",
         "gpu_speed.py --device cuda", "#gpu-speed-9", 20.0),
    Goal("gpu-resnet18-93", "#9 GPU", "resnet18 to 93 % Fashion-MNIST validation accuracy ≤ 5 s", "cuda",
         "gpu_speed.py --device cuda", "#gpu-speed-9", 5.0, False),
    Goal("gpu-speed-vs-timm", "#9 GPU", "`cnnbench speed` ≥ timm eager, every model", "cuda",
         "gpu_speed.py --device cuda", "#gpu-speed-9", 1.0, True, None),
    Goal("gpu-speed-compiled", "#9 GPU", "`cnnbench speed --compile` against eager", "cuda",
         "gpu_speed.py --device cuda --compile", "#gpu-speed-9", None, True, None),
    Goal("data-loader-gpu", "#2 data", "augmented Fashion-MNIST epoch ≥ 20× torchvision+PIL", "cuda",
         "data_pipeline.py --device cuda", "#data-pipeline-2", 20.0),
    Goal("imagefolder-loader-gpu", "#10 Caltech", "JPEG loader ≥ 20× ImageFolder+DataLoader", "cuda",
         "imagefolder_pipeline.py --device cuda", "#image-folder-pipeline-10", 20.0, True, None),
    Goal("imagefolder-train-gpu", "#10 Caltech", "training epoch from JPEGs within 10 % of pre-generated tensors",
         "cuda", "imagefolder_pipeline.py --device cuda", "#image-folder-pipeline-10", 10.0, False, None),
    Goal("gpu-study", "#5 studies", "`mnist-study` on Fashion-MNIST ≤ 10 min on one H100", "cuda",
         "study_wall_time.py --device cuda --preset mnist-study", "#default-study-wall-time", 600.0, False),
    Goal("engine-vs-naive-gpu", "#4 engine", "every seed-mnist epoch ≥ 10× the naive pipeline, engine defaults",
         "cuda", "train_throughput.py --device cuda --naive", "#engine-overhead-4", 10.0),
)  # fmt: skip

BY_KEY = {g.key: g for g in GOALS}


def judge(goal: Goal, figure: float | None) -> bool | None:
    """Met (True), not met (False), or None where the goal has no target or there is no figure."""
    if goal.target is None or figure is None:
        return None
    return figure >= goal.target if goal.higher_is_better else figure <= goal.target
